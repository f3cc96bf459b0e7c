use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Parsed first: the log format is a flag. clap's own errors print
    // without tracing.
    let cli = griot_registry::cli::args::Cli::parse();
    griot_registry::cli::telemetry::init(cli.log_format);
    griot_registry::cli::run(cli)
}
