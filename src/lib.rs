//! rchat: a two-person chat over TCP that shows what encryption does on a network, and an
//! analyser that reads saved captures and tells readable traffic from ciphertext.
//!
//! Layout, one module per concern:
//! - [`cli`]: the command line as parsed (no validation).
//! - [`error`]: the error type every command returns and the one place that prints it.
//! - [`crypto`]: keys, key files, fingerprints, RSA-OAEP and RSA-PSS.
//! - [`protocol`]: the wire format of the encrypted mode (frames, handshake, messages).
//! - [`chat`]: `host`, `join` and `demo`: sockets, the session loop, the terminal,
//!   `--record` capture files.
//! - [`analyze`]: `analyze`: capture files, TCP reassembly, classification, reports.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

pub mod analyze;
pub mod chat;
pub mod cli;
pub mod crypto;
pub mod error;
pub mod protocol;

use std::process::ExitCode;

pub use error::{Error, Result};

/// The cores this process may use, looked up once (at least 1): asking the system reads
/// several files on some, too much to do for every message received.
pub(crate) fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Run one parsed command line and return the exit status on success.
pub fn run(cli: cli::Cli) -> Result<ExitCode> {
    match cli.command {
        cli::Command::Host(args) => chat::host(args),
        cli::Command::Join(args) => chat::join(args),
        cli::Command::Keygen(args) => crypto::keygen_command(&args),
        cli::Command::Fingerprint(args) => crypto::fingerprint_command(&args),
        cli::Command::Analyze(args) => analyze::run(&args),
        cli::Command::Demo(args) => chat::demo::run(&args),
    }
}
