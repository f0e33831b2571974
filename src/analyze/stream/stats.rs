//! The counters of one direction of a connection: what reassembly saw, lost and repeated.
//!
//! [`HalfStats`] is what the report reads. While a connection is open its direction keeps
//! `Counters`: the two counters every segment touches, and the others boxed, made at the
//! first loss, repetition or cut (a capture of thousands of clean connections keeps none).

/// A range of bytes missing from a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Gap {
    /// Stream offset of the first missing byte.
    pub offset: u64,
    /// How many bytes are missing.
    pub length: u64,
}

/// Counters of one direction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HalfStats {
    /// Segments seen in this direction (with or without payload).
    pub packets: u64,
    /// Reassembled bytes delivered.
    pub bytes: u64,
    /// Bytes missing from the capture (sum of the gaps).
    pub missing_bytes: u64,
    /// The gaps, up to a limit.
    pub gaps: Vec<Gap>,
    /// Payload bytes that arrived again after a first copy.
    pub retransmitted_bytes: u64,
    /// Retransmitted segments whose bytes differed from the first copy, among those still
    /// buffered out of order (the sink counts the others).
    pub conflicting_retransmissions: u64,
    /// Payload bytes a short snaplen kept out of the file.
    pub snaplen_cut_bytes: u64,
    /// Payload bytes sent before the point where the capture picked the stream up.
    pub before_start_bytes: u64,
}

/// The counters an open direction keeps: see the module's documentation.
#[derive(Debug, Default)]
pub(super) struct Counters {
    /// [`HalfStats::packets`].
    pub(super) packets: u64,
    /// [`HalfStats::bytes`].
    pub(super) bytes: u64,
    /// The others (its `packets` and `bytes` unused), from the first that is not zero.
    rare: Option<Box<HalfStats>>,
}

impl Counters {
    /// The counters that seldom count, for adding to.
    pub(super) fn rare(&mut self) -> &mut HalfStats {
        self.rare.get_or_insert_default()
    }

    /// All of them, as the report reads them.
    pub(super) fn to_stats(&self) -> HalfStats {
        let rare = self.rare.as_deref().cloned().unwrap_or_default();
        HalfStats { packets: self.packets, bytes: self.bytes, ..rare }
    }
}
