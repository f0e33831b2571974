//! The first bytes of a stream that the classifier keeps for its encoding checks.
//!
//! The checks for base64, hex and decimal text look at the first [`SAMPLE_LIMIT`] bytes, but
//! only when nearly every byte turned out printable. Copying 64 KiB of every direction just in
//! case cost more memory than anything else per connection, and its first touch of fresh
//! pages showed in profiles. A [`Sample`] given the capture file notes where the bytes that
//! came straight from it are (a position and a length, for pieces of `READ_BACK_MIN` bytes or
//! more) and copies only the others; the bytes are read back from the file if and when a check
//! asks for them. Without a file it copies everything, as before. Either way
//! [`Sample::bytes`] gives the same bytes. It lives in `input` because it is the one that
//! knows where [`Captured`] bytes came from and reads them back; `classify` only pushes
//! captured bytes into it and asks for them back.

use std::borrow::Cow;
use std::fs::File;
use std::sync::Arc;

use super::{Captured, READ_BACK_MIN, read_back};
use crate::analyze::GrowFromOne;

/// Bytes kept at most.
pub const SAMPLE_LIMIT: usize = 64 * 1024;
/// A copy that grows past this gets room for [`SAMPLE_LIMIT`] bytes in one allocation.
const GROW_ALL: usize = 4 * 1024;

/// The first bytes fed, up to [`SAMPLE_LIMIT`].
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// The capture file, when bytes may be noted by their position in it.
    file: Option<Arc<File>>,
    /// The bytes, in order, as runs: copied ones (the next `len` bytes of `copied`) and ones
    /// noted by their position in the file.
    parts: Vec<Part>,
    copied: Vec<u8>,
    len: usize,
    /// The first bytes, always copied.
    head: [u8; 3],
}

/// A run of the sample's bytes: 16 bytes (a sample of 1448-byte segments has 46 of them).
#[derive(Debug, Clone, Copy)]
struct Part {
    /// Position in the capture file, if `noted`.
    file_at: u64,
    /// At most [`SAMPLE_LIMIT`].
    len: u32,
    /// Noted by its position in the file (else copied).
    noted: bool,
}

impl Part {
    fn new(len: usize, at: Option<u64>) -> Self {
        // `len` is at most SAMPLE_LIMIT (checked by the caller).
        Part { file_at: at.unwrap_or(0), len: len as u32, noted: at.is_some() }
    }

    /// Position in the capture file, or `None`: copied.
    fn at(&self) -> Option<u64> {
        self.noted.then_some(self.file_at)
    }

    fn len(&self) -> usize {
        self.len as usize
    }
}

impl Sample {
    /// A sample that may note bytes by their position in `file` instead of copying them.
    pub fn in_file(file: Arc<File>) -> Self {
        Sample { file: Some(file), ..Self::default() }
    }

    /// Bytes kept.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The first (up to three) bytes.
    pub fn head(&self) -> &[u8] {
        self.head.get(..self.len.min(3)).unwrap_or(&[])
    }

    /// Keep the next bytes, as far as the limit allows: by their place in the capture file
    /// when they came straight from it (or are a copy of bytes that did), otherwise copied.
    pub fn push(&mut self, data: Captured<'_>) {
        let take = (SAMPLE_LIMIT - self.len).min(data.len());
        if take == 0 {
            return;
        }
        let origin = data;
        let Some(data) = data.bytes().get(..take) else { return };
        for (i, &b) in data.iter().enumerate().take(3usize.saturating_sub(self.len)) {
            if let Some(h) = self.head.get_mut(self.len + i) {
                *h = b;
            }
        }
        // Where the bytes came from matters only for a sample that may read them back, and
        // only for pieces long enough to be noted by position. A sample made without the
        // file (a message's) takes it from the first such piece that lies in a mapped window
        // of it: one analysis reads one capture file.
        if self.file.is_none()
            && take >= READ_BACK_MIN
            && let Some(file) = origin.file()
        {
            self.file = Some(Arc::clone(file));
        }
        let noted = self.file.is_some() && take >= READ_BACK_MIN;
        let at = if noted { origin.file_at() } else { None };
        // `take` and every part's length are at most SAMPLE_LIMIT, which 32 bits hold.
        match (self.parts.last_mut(), at) {
            (Some(last), Some(at)) if last.at().is_some_and(|l| l + last.len() as u64 == at) => {
                last.len += take as u32;
            }
            (Some(last), None) if !last.noted => {
                last.len += take as u32;
                self.copy(data);
            }
            (_, at) => {
                // Noted pieces are seldom adjacent in the file (other streams' packets lie
                // between them), so a sample of segments has a part per segment: the list
                // grows as they come (a short direction has only a few).
                self.parts.push_grown(Part::new(take, at));
                if at.is_none() {
                    self.copy(data);
                }
            }
        }
        self.len += take;
    }

    fn copy(&mut self, data: &[u8]) {
        let want = self.copied.len() + data.len();
        if want > self.copied.capacity() {
            // Short streams keep a small copy; past a few packets it gets the whole limit at
            // once, instead of being copied at every doubling.
            let cap = if want > GROW_ALL { SAMPLE_LIMIT } else { want.next_power_of_two() };
            self.copied.reserve_exact(cap.min(SAMPLE_LIMIT).max(want) - self.copied.len());
        }
        self.copied.extend_from_slice(data);
    }

    /// The bytes kept, read back from the file where they were only noted; `None` if the
    /// file cannot give them back any more (it was cut short since).
    pub fn bytes(&self) -> Option<Cow<'_, [u8]>> {
        if self.parts.iter().all(|p| !p.noted) {
            return Some(Cow::Borrowed(&self.copied));
        }
        let file = self.file.as_deref()?;
        let mut out = vec![0u8; self.len];
        let (mut done, mut copied) = (0usize, 0usize);
        for p in &self.parts {
            let dst = out.get_mut(done..done + p.len())?;
            match p.at() {
                Some(at) => {
                    if !read_back(file, at, dst) {
                        return None;
                    }
                }
                None => {
                    dst.copy_from_slice(self.copied.get(copied..copied + p.len())?);
                    copied += p.len();
                }
            }
            done += p.len();
        }
        Some(Cow::Owned(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn noted_and_copied_bytes_come_back_in_order() {
        let dir = tempfile::Builder::new().prefix("rchat-sample-").tempdir().unwrap();
        let path = dir.path().join("file.bin");
        let content: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        std::fs::File::create(&path).unwrap().write_all(&content).unwrap();
        let file = Arc::new(File::open(&path).unwrap());

        let mut noted = Sample::in_file(file);
        let mut copied = Sample::default();
        let mut want = Vec::new();
        // Pieces from the file (some adjacent, some not) and copies, past the limit.
        let mut at = 0usize;
        let mut i = 0;
        while want.len() < SAMPLE_LIMIT + 5000 {
            let len = [1, 2, 700, 1448, 33][i % 5];
            let piece = &content[at..at + len];
            let from_file = i % 3 != 2;
            noted.push(Captured::copied_from(piece, from_file.then_some(at as u64)));
            copied.push(Captured::copied_from(piece, from_file.then_some(at as u64)));
            want.extend_from_slice(piece);
            at += len + if i % 4 == 0 { 17 } else { 0 };
            i += 1;
        }
        want.truncate(SAMPLE_LIMIT);
        assert_eq!(noted.len(), SAMPLE_LIMIT);
        assert_eq!(noted.bytes().unwrap().as_ref(), &want[..]);
        assert_eq!(copied.bytes().unwrap().as_ref(), &want[..]);
        assert_eq!(noted.head(), &want[..3]);
        // Only the copied pieces were copied.
        assert!(noted.copied.len() < SAMPLE_LIMIT / 2, "{}", noted.copied.len());
        assert_eq!(copied.copied.len(), SAMPLE_LIMIT);

        // A file cut short cannot give its bytes back.
        std::fs::File::create(&path).unwrap();
        assert!(noted.bytes().is_none());
    }

    #[test]
    fn a_sample_made_without_the_file_takes_it_from_a_mapped_window() {
        let dir = tempfile::Builder::new().prefix("rchat-sample-block-").tempdir().unwrap();
        let path = dir.path().join("file.bin");
        let content: Vec<u8> = (0..20_000u32).map(|i| (i * 13 + i / 7) as u8).collect();
        std::fs::File::create(&path).unwrap().write_all(&content).unwrap();
        let file = Arc::new(File::open(&path).unwrap());
        let block = Arc::new(crate::analyze::input::Block::map_for_test_of(&file, 0, 20_000));
        let piece = |from: usize, to: usize| Captured::in_block(&block, &block[from..to]);
        let mut s = Sample::default();
        // Short pieces are copied; the first long one in the window brings the file.
        s.push(piece(0, 100));
        assert!(s.file.is_none());
        s.push(piece(100, 1548));
        assert!(s.file.is_some());
        s.push(Captured::copied_from(&content[3000..4000], Some(3000)));
        s.push(piece(5000, 5010));
        assert_eq!(s.copied.len(), 110, "only the short pieces copied");
        let want = [&content[..1548], &content[3000..4000], &content[5000..5010]].concat();
        assert_eq!(s.bytes().unwrap().as_ref(), &want[..]);
        // A window that does not know its file (a read buffer's) gives none.
        let plain = Arc::new(crate::analyze::input::Block::map_for_test(&file, 0, 4096));
        let mut t = Sample::default();
        t.push(Captured::in_block(&plain, &plain[..2000]));
        assert!(t.file.is_none() && t.copied.len() == 2000);
    }

    #[test]
    fn tiny_pieces_are_copied_so_the_notes_stay_few() {
        let file = Arc::new(File::open(std::env::current_exe().unwrap()).unwrap());
        let mut s = Sample::in_file(file);
        for i in 0..SAMPLE_LIMIT as u64 {
            // One byte at a time, never next to the one before in the file.
            s.push(Captured::copied_from(b"x", Some(i * 100)));
        }
        assert_eq!(s.len(), SAMPLE_LIMIT);
        assert_eq!(s.parts.len(), 1, "one copied run");
        assert_eq!(s.bytes().unwrap().as_ref(), &[b'x'; SAMPLE_LIMIT][..]);
    }

    #[test]
    fn the_head_is_the_first_bytes_however_they_arrive() {
        let mut s = Sample::default();
        assert_eq!(s.head(), b"");
        s.push(Captured::from(&b"a"[..]));
        assert_eq!(s.head(), b"a");
        s.push(Captured::copied_from(b"bcd", Some(5)));
        assert_eq!(s.head(), b"abc");
        s.push(Captured::from(&[b'e'; 600][..]));
        assert_eq!(s.bytes().unwrap().as_ref(), [&b"abcd"[..], &[b'e'; 600]].concat());
    }

    #[test]
    fn a_sample_that_cannot_be_read_back_skips_the_encoding_checks() {
        use crate::analyze::classify::{Accumulator, Scratch, Verdict, classify};
        use base64::Engine;
        use std::io::Write;
        let dir = tempfile::Builder::new().prefix("rchat-lost-sample-").tempdir().unwrap();
        let path = dir.path().join("capture.bin");
        let noise: Vec<u8> =
            (0..3000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let cases = [
            hex::encode(&noise).into_bytes(),
            base64::engine::general_purpose::STANDARD.encode(&noise).into_bytes(),
            noise.iter().map(|b| format!("{b} ")).collect::<String>().into_bytes(),
        ];
        for text in cases {
            std::fs::File::create(&path).unwrap().write_all(&text).unwrap();
            let file = Arc::new(File::open(&path).unwrap());
            let mut acc = Accumulator::with_sample(Sample::in_file(file));
            let mut scratch = Scratch::default();
            for (i, piece) in text.chunks(1000).enumerate() {
                acc.count_in(Captured::copied_from(piece, Some(i as u64 * 1000)), &mut scratch);
            }
            acc.add_counts(&mut scratch);
            // Read back while the file is intact: what a copy would give.
            assert_eq!(acc.finish(), classify(&text));
            // The file is cut short: no sample, so no encoding checks (and no panic).
            std::fs::File::create(&path).unwrap();
            let lost = acc.finish();
            assert_eq!((lost.verdict, lost.encoding), (Verdict::Plaintext, None), "{lost:?}");
        }
    }
}
