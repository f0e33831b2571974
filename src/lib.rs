//! rchat: a two-person chat over TCP that shows what encryption does on a network, and an
//! analyser that reads saved captures and tells readable traffic from ciphertext.
//!
//! Layout: commands on top, libraries below that never import them.
//! - [`cli`]: the command line as parsed (no validation).
//! - [`cmd`]: one file per command family; turns flags into a library's settings, runs it,
//!   prints.
//! - [`error`]: the error every command returns, its exit status and the one place that
//!   prints it; it depends on the libraries' error types, never the reverse.
//! - [`crypto`]: keys, key files, fingerprints, RSA-OAEP and RSA-PSS.
//! - [`protocol`]: the wire format of the encrypted mode (frames, handshake, messages).
//! - [`chat`]: `host`, `join` and `demo`: sockets, the session loop, the terminal,
//!   `--record` capture files.
//! - [`escape`]: the one way text from a peer or a capture is shown.
//! - [`analyze`]: `analyze`: capture files, TCP reassembly, classification, reports.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs)]

pub mod analyze;
pub mod chat;
pub mod cli;
pub mod cmd;
pub mod crypto;
pub mod error;
pub mod escape;
pub mod protocol;

pub use cmd::run;
pub use error::{Error, Result};

/// The cores this process may use, looked up once (at least 1): asking the system reads
/// several files on some, too much to do for every message received.
pub(crate) fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}
