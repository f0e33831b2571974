//! `rchat analyze`: read saved captures, rebuild the chat's TCP streams and say whether an
//! eavesdropper could read them.

pub mod classify;

use std::process::ExitCode;

use crate::cli::AnalyzeArgs;

/// Why a capture could not be analysed.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    /// Placeholder until the analyser lands.
    #[error("analyze is not built yet")]
    NotBuilt,
}

/// Run `rchat analyze`.
pub fn run(_args: &AnalyzeArgs) -> crate::Result<ExitCode> {
    Err(AnalyzeError::NotBuilt.into())
}
