//! The first bytes of a direction as the report shows them, and where bytes were missing in
//! them.
//!
//! Without `--full` the report shows a direction's first [`PREVIEW`] bytes. With thousands of
//! connections open at once, a copy of them was one of the largest things a short direction
//! kept. A [`Preview`] that may read the capture file back notes where its first pieces are in
//! it instead (up to [`NOTES`] pieces that came straight from a mapped window of the file, or
//! are a copy of bytes that did, whatever their length), and reads them back when the direction
//! ends: a short direction keeps a few positions. A piece that did not come from the file, or
//! one more than the notes hold, makes it read back what it noted and copy from then on. With
//! `--full` it copies everything. Either way [`Preview::finish`] gives the same bytes; if the
//! file cannot give noted bytes back any more (it was cut short since), the preview ends where
//! they would have started and is marked truncated.

use std::fs::File;

use crate::analyze::input::{Captured, read_back};

/// Bytes of each direction kept for the preview without `--full`.
pub const PREVIEW: usize = 256;
/// Pieces noted by their position in the file at most.
pub const NOTES: usize = 2;
/// Gaps marked inside a preview.
const MAX_PREVIEW_GAPS: usize = 1000;

/// A direction's first bytes, copied or noted by their place in the capture file.
#[derive(Debug)]
pub struct Preview {
    /// `--full`: no limit.
    full: bool,
    /// The file could not give noted bytes back: nothing more is taken.
    stopped: bool,
    /// Whether pieces may be noted by position (a file to read them back from, no `--full`).
    may_note: bool,
    /// Every byte kept, once copying; empty while only noting.
    copied: Vec<u8>,
    /// Where the noted pieces are in the file, the first `noted` of them, in order; every one
    /// comes before any copied byte.
    at: [u64; NOTES],
    /// Their lengths (at most [`PREVIEW`] in all).
    lens: [u16; NOTES],
    noted: u8,
    /// Whether there is more than the preview shows.
    truncated: bool,
    /// Where bytes are missing: (position in the preview, bytes missing).
    gaps: Vec<(usize, u64)>,
}

/// What a finished [`Preview`] shows.
#[derive(Debug)]
pub struct Shown {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Where bytes are missing inside them: (position, bytes missing).
    pub gaps: Vec<(usize, u64)>,
    /// Whether there is more than they show.
    pub truncated: bool,
}

impl Preview {
    /// A preview of [`PREVIEW`] bytes (everything if `full`), noting pieces by position where
    /// it can when `file` is given.
    pub fn new(full: bool, file: bool) -> Self {
        Preview {
            full,
            stopped: false,
            may_note: file && !full,
            copied: Vec::new(),
            at: [0; NOTES],
            lens: [0; NOTES],
            noted: 0,
            truncated: false,
            gaps: Vec::new(),
        }
    }

    /// Bytes kept at most.
    fn limit(&self) -> usize {
        if self.stopped {
            self.copied.len()
        } else if self.full {
            usize::MAX
        } else {
            PREVIEW
        }
    }

    /// Bytes kept so far.
    fn len(&self) -> usize {
        let noted: usize = self.lens.iter().take(self.noted.into()).map(|&l| usize::from(l)).sum();
        noted + self.copied.len()
    }

    /// The direction's next in-order bytes; `file` is the capture file, to read noted bytes
    /// back from should it have to copy from here on.
    #[inline]
    pub fn push(&mut self, bytes: Captured<'_>, file: Option<&File>) {
        let (len, limit) = (self.len(), self.limit());
        if len >= limit {
            self.truncated |= !bytes.is_empty();
            return;
        }
        let take = (limit - len).min(bytes.len());
        if take < bytes.len() {
            self.truncated = true;
        }
        if take == 0 {
            return;
        }
        let i = usize::from(self.noted);
        if self.may_note
            && self.copied.is_empty()
            && let Some(at) = bytes.file_at()
        {
            // `take` is at most PREVIEW here, so it fits.
            let take16 = take as u16;
            match i.checked_sub(1) {
                Some(last) if self.at[last] + u64::from(self.lens[last]) == at => {
                    self.lens[last] += take16;
                    return;
                }
                _ if i < NOTES => {
                    self.at[i] = at;
                    self.lens[i] = take16;
                    self.noted += 1;
                    return;
                }
                _ => {}
            }
        }
        if self.noted > 0 && !self.read_back_notes(file, PREVIEW) {
            return;
        }
        if self.copied.capacity() == 0 && !self.full {
            // A preview that will be copied gets room for all of it at once.
            self.copied.reserve_exact(PREVIEW);
        }
        self.copied.extend_from_slice(bytes.bytes().get(..take).unwrap_or(&[]));
    }

    /// Copy the noted pieces into `copied`, which is empty, with room for `room` bytes: false
    /// if the file cannot give them back (the preview then ends before the first piece it
    /// could not read).
    fn read_back_notes(&mut self, file: Option<&File>, room: usize) -> bool {
        let len = self.len();
        let noted = usize::from(std::mem::take(&mut self.noted));
        let mut out = Vec::with_capacity(room.max(len));
        for (&at, &len) in self.at.iter().zip(&self.lens).take(noted) {
            let from = out.len();
            out.resize(from + usize::from(len), 0);
            let read = match (file, out.get_mut(from..)) {
                (Some(file), Some(dst)) => read_back(file, at, dst),
                _ => false,
            };
            if !read {
                out.truncate(from);
                self.copied = out;
                // Nothing more is taken: what follows would not be where it belongs.
                self.stopped = true;
                self.truncated = true;
                return false;
            }
        }
        self.copied = out;
        true
    }

    /// Bytes of `len` are missing here (`snaplen` or lost: the preview marks either).
    pub fn gap(&mut self, len: u64) {
        if self.len() < self.limit() && !self.truncated && self.gaps.len() < MAX_PREVIEW_GAPS {
            self.gaps.push((self.len(), len));
        }
    }

    /// The bytes, read back from `file` where they were only noted.
    pub fn finish(mut self, file: Option<&File>) -> Shown {
        if self.noted > 0 {
            // Kept until the report: no room to spare.
            self.read_back_notes(file, 0);
        } else if self.copied.capacity() > self.copied.len() + 32 {
            self.copied.shrink_to_fit();
        }
        Shown { bytes: self.copied, gaps: self.gaps, truncated: self.truncated }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A file of `n` known bytes.
    fn file_of(n: usize) -> (tempfile::TempDir, File, Vec<u8>) {
        let dir = tempfile::Builder::new().prefix("rchat-preview-").tempdir().unwrap();
        let path = dir.path().join("file.bin");
        let content: Vec<u8> = (0..n as u32).map(|i| (i * 13 + i / 7) as u8).collect();
        std::fs::File::create(&path).unwrap().write_all(&content).unwrap();
        let file = File::options().read(true).write(true).open(&path).unwrap();
        (dir, file, content)
    }

    /// The preview of `pieces` (position in the file, length, whether it says where it came
    /// from), with the file or without, and what a plain copy of their first bytes is.
    fn both(file: &File, content: &[u8], pieces: &[(usize, usize, bool)]) -> (Shown, Shown) {
        let mut noting = Preview::new(false, true);
        let mut copying = Preview::new(false, false);
        for &(at, len, known) in pieces {
            let bytes = &content[at..at + len];
            let captured = Captured::copied_from(bytes, known.then_some(at as u64));
            noting.push(captured, Some(file));
            copying.push(Captured::from(bytes), None);
        }
        (noting.finish(Some(file)), copying.finish(None))
    }

    #[test]
    fn noted_pieces_come_back_as_a_copy_would() {
        let (_dir, file, content) = file_of(10_000);
        let cases: &[&[(usize, usize, bool)]] = &[
            &[],
            &[(100, 60, true)],
            &[(100, 60, true), (900, 140, true)],
            // Adjacent pieces share a note; a third note makes it copy.
            &[(0, 10, true), (10, 20, true), (50, 5, true), (70, 5, true), (80, 300, true)],
            // A piece not from the file, then one that is.
            &[(5, 30, true), (700, 40, false), (2000, 100, true)],
            &[(3000, 1448, true), (6000, 1448, true)],
            &[(3000, 250, true), (4000, 1, true), (4100, 9, true)],
        ];
        for pieces in cases {
            let (noted, copied) = both(&file, &content, pieces);
            assert_eq!(noted.bytes, copied.bytes, "{pieces:?}");
            assert_eq!(noted.truncated, copied.truncated, "{pieces:?}");
            let all: Vec<u8> =
                pieces.iter().flat_map(|&(at, len, _)| content[at..at + len].to_vec()).collect();
            assert_eq!(copied.bytes, all[..all.len().min(PREVIEW)], "{pieces:?}");
            assert_eq!(copied.truncated, all.len() > PREVIEW, "{pieces:?}");
        }
    }

    #[test]
    fn gaps_are_marked_where_they_fall() {
        let (_dir, file, content) = file_of(1000);
        let mut p = Preview::new(false, true);
        p.push(Captured::copied_from(&content[..10], Some(0)), Some(&file));
        p.gap(7);
        p.push(Captured::copied_from(&content[20..30], Some(20)), Some(&file));
        let shown = p.finish(Some(&file));
        assert_eq!(shown.gaps, vec![(10, 7)]);
        assert_eq!(shown.bytes, [&content[..10], &content[20..30]].concat());
    }

    #[test]
    fn bytes_the_file_lost_end_the_preview() {
        let (_dir, file, content) = file_of(1000);
        let mut p = Preview::new(false, true);
        p.push(Captured::copied_from(&content[..10], Some(0)), Some(&file));
        p.push(Captured::copied_from(&content[900..950], Some(900)), Some(&file));
        file.set_len(500).unwrap();
        let shown = p.finish(Some(&file));
        assert_eq!(shown.bytes, content[..10]);
        assert!(shown.truncated);
    }

    #[test]
    fn full_copies_everything() {
        let (_dir, file, content) = file_of(5000);
        let mut p = Preview::new(true, true);
        p.push(Captured::copied_from(&content[..3000], Some(0)), Some(&file));
        p.push(Captured::copied_from(&content[3000..], Some(3000)), Some(&file));
        let shown = p.finish(None);
        assert_eq!(shown.bytes, content);
        assert!(!shown.truncated);
    }
}
