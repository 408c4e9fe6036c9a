//! The `curvine-fluid` binary: parse the command line, capture the environment, set up
//! logging, hand off to the library, and turn the outcome into an exit code.

use clap::Parser;
use curvine_fluid::{app, cli::Cli, env::EnvSnapshot, telemetry};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env = EnvSnapshot::capture();
    telemetry::init(cli.log_format, &env, cli.prints_result());
    match app::run(cli, env) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.one_line());
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
