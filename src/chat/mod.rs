//! `rchat host` and `rchat join`: sockets, the handshake, the session loop, the terminal.

use std::process::ExitCode;

use crate::cli::{HostArgs, JoinArgs};

/// Why a chat ended badly.
#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// Placeholder until the chat lands.
    #[error("chat is not built yet")]
    NotBuilt,
}

/// Run `rchat host`.
pub fn host(_args: HostArgs) -> crate::Result<ExitCode> {
    Err(ChatError::NotBuilt.into())
}

/// Run `rchat join`.
pub fn join(_args: JoinArgs) -> crate::Result<ExitCode> {
    Err(ChatError::NotBuilt.into())
}
