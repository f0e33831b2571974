//! The error every command returns, its exit status, and the one function that prints it.
//!
//! Library code never prints errors and never exits: it returns its own error type
//! ([`crate::crypto::KeyError`], [`crate::chat::ChatError`], [`crate::analyze::AnalyzeError`]),
//! which converts into an [`Error`] here, in the commands. Messages are lowercase, name the
//! thing at fault and say what to do next.

use std::fmt;
use std::io;

/// Result with rchat's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can end a command early.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line asks for something impossible (exit status 2).
    #[error("{0}")]
    Usage(String),
    /// A key file could not be read, written or parsed, or a key is unfit.
    #[error(transparent)]
    Key(#[from] crate::crypto::KeyError),
    /// The network or the peer failed (exit status 1).
    #[error(transparent)]
    Chat(#[from] crate::chat::ChatError),
    /// A capture could not be analysed (exit status 1).
    #[error(transparent)]
    Analyze(#[from] crate::analyze::AnalyzeError),
    /// An operating-system error with what we were doing at the time.
    #[error("{context}: {source}")]
    Io {
        /// What rchat was doing.
        context: String,
        /// The underlying error.
        source: io::Error,
    },
}

impl Error {
    /// Build an [`Error::Io`] with a description of what was being done.
    pub fn io(context: impl fmt::Display, source: io::Error) -> Self {
        Error::Io { context: context.to_string(), source }
    }

    /// The process exit status for this error: 2 for bad usage, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 2,
            Error::Key(e) | Error::Chat(crate::chat::ChatError::Key(e)) if e.is_usage() => 2,
            _ => 1,
        }
    }
}

/// Print an error the way every rchat command does: one line on stderr.
pub fn print(err: &Error) {
    eprintln!("rchat: error: {err}");
}
