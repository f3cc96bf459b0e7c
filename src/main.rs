use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    griot_registry::telemetry::init();
    let cli = griot_registry::config::Cli::parse();
    griot_registry::cli::run(cli)
}
