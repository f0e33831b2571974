//! The commands: each file turns one family's parsed flags ([`crate::cli`]) into the settings
//! of the library that does the work, runs it, and prints what it returns. This is the only
//! layer that knows both the command line and the libraries; the libraries below it (`chat`,
//! `analyze`, `protocol`, `crypto`) never import it, `cli` or `error`.

pub mod analyze;
pub mod chat;
pub mod keys;

use std::process::ExitCode;

use crate::Result;
use crate::cli::{Cli, Command};

/// Run one parsed command line and return the exit status on success.
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Host(args) => chat::host(args),
        Command::Join(args) => chat::join(args),
        Command::Keygen(args) => keys::keygen(&args),
        Command::Fingerprint(args) => keys::fingerprint(&args),
        Command::Analyze(args) => analyze::run(&args),
        Command::Demo(args) => chat::demo(&args),
    }
}
