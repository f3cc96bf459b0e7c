//! Logs on stderr, filtered by GRIOT_LOG (or RUST_LOG), `info` by default:
//! human-readable lines, or one JSON object per line with `--log-format
//! json`.

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt};

use crate::cli::args::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("GRIOT_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // A second init (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        // Colour codes only for a person at a terminal, not in log files.
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
}
