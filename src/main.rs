//! The `rchat` binary: parse the command line, run it, print any error once, exit.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = rchat::cli::Cli::parse();
    match rchat::run(cli) {
        Ok(code) => code,
        Err(err) => {
            rchat::error::print(&err);
            ExitCode::from(err.exit_code())
        }
    }
}
