//! Stage 5, the engine: how the work on each direction's bytes is done, and where.

pub mod cache;
pub mod digest;
pub mod direction;
pub mod parallel;
pub mod recent;

/// In-order bytes of one direction, as [`Sink::data`](crate::analyze::stream::Sink::data) gets them.
#[derive(Debug, Clone, Copy)]
pub struct Delivered<'a> {
    /// Stream offset of the first byte.
    pub offset: u64,
    /// The bytes.
    pub bytes: &'a [u8],
    /// See [`Sink::data`](crate::analyze::stream::Sink::data).
    pub new_run: bool,
    /// Where the bytes are in the capture file, when they are read straight from it (a
    /// mapped window) or are a copy of bytes that were: the sink may read them back later
    /// instead of keeping a copy.
    pub file_at: Option<u64>,
}
