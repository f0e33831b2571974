//! The read window: the bytes of the capture file at hand, shared with the threads that
//! analyse them.
//!
//! Owns the two ways bytes come in: windows of a regular file mapped into memory
//! (`MAP_WINDOW`, 4 MiB, at a time, with `memmap2`), or heap blocks filled by `read` calls (pipes,
//! other readers, or a file whose mapping failed). A [`Block`] is one of either, shared by
//! reference counting, so a consumer may keep a record's bytes instead of copying them. It also
//! reads bytes back from the file later (`read_back`). It never interprets the bytes and
//! never maps or allocates more than a bounded window whatever a header claims.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Deref;
use std::sync::Arc;

use memmap2::{Mmap, MmapOptions};

/// Bytes read from the file at a time (and the size of a shared block).
const CHUNK: usize = 256 * 1024;
/// Bytes of the file mapped at a time. The windows still referenced by the analysis threads
/// stay resident, so this bounds the memory the mapping adds.
pub(super) const MAP_WINDOW: usize = 4 * 1024 * 1024;

/// Bytes of the capture shared between the reader and the threads that analyse them: a
/// window of the file mapped into memory, or a buffer the file was read into.
#[derive(Debug)]
pub struct Block {
    bytes: Bytes,
    /// Position in the file of the first byte, for a mapped window.
    file_at: Option<u64>,
    /// The file, for a mapped window: whoever keeps a note of where some of its bytes are
    /// can read them back from it later ([`Block::file`]).
    file: Option<Arc<File>>,
}

#[derive(Debug)]
enum Bytes {
    Heap(Vec<u8>),
    Map(Mmap),
}

impl Block {
    fn heap(len: usize) -> Self {
        Block { bytes: Bytes::Heap(vec![0; len]), file_at: None, file: None }
    }

    /// Where the block's first byte is in the capture file, when the block is a window of
    /// the file mapped into memory (those bytes can be read back from the file later).
    pub fn file_at(&self) -> Option<u64> {
        self.file_at
    }

    /// A window of `len` bytes of `file` from `at`, mapped.
    #[cfg(test)]
    pub fn map_for_test(file: &File, at: u64, len: usize) -> Self {
        // SAFETY: a test's own file, not changed while mapped.
        let map = unsafe { MmapOptions::new().offset(at).len(len).map(file) };
        Block { bytes: Bytes::Map(map.expect("map")), file_at: Some(at), file: None }
    }

    /// [`Block::map_for_test`], the block knowing its file (as the reader's windows do).
    #[cfg(test)]
    pub fn map_for_test_of(file: &Arc<File>, at: u64, len: usize) -> Self {
        Block { file: Some(Arc::clone(file)), ..Self::map_for_test(file, at, len) }
    }

    /// The capture file this block is a mapped window of.
    pub fn file(&self) -> Option<&Arc<File>> {
        self.file.as_ref()
    }

    /// The `len` bytes at position `at` of the capture file, if this block is a mapped window
    /// that holds all of them.
    pub fn bytes_at(&self, at: u64, len: usize) -> Option<&[u8]> {
        let start = usize::try_from(at.checked_sub(self.file_at?)?).ok()?;
        self.get(start..start.checked_add(len)?)
    }

    fn is_heap(&self) -> bool {
        matches!(self.bytes, Bytes::Heap(_))
    }

    fn vec_mut(&mut self) -> Option<&mut Vec<u8>> {
        match &mut self.bytes {
            Bytes::Heap(v) => Some(v),
            Bytes::Map(_) => None,
        }
    }
}

impl Deref for Block {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.bytes {
            Bytes::Heap(v) => v,
            Bytes::Map(m) => m,
        }
    }
}

/// Pieces at least this long that came straight from the file are remembered by their
/// position in it and read back when needed; shorter ones are copied, since
/// noting where each of many tiny pieces is would take more memory than their bytes.
pub const READ_BACK_MIN: usize = 512;

/// Read `buf.len()` bytes of `file` at position `at`, without moving a shared file position;
/// false if that fails (or the system has no such read).
pub(crate) fn read_back(file: &File, at: u64, buf: &mut [u8]) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.read_exact_at(buf, at).is_ok()
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::FileExt;
        let mut done = 0;
        while let Some(rest) = buf.get_mut(done..).filter(|r| !r.is_empty()) {
            match file.seek_read(rest, at + done as u64) {
                Ok(0) | Err(_) => return false,
                Ok(n) => done += n,
            }
        }
        true
    }
    #[cfg(not(any(unix, windows)))]
    {
        let _ = (file, at, buf);
        false
    }
}

/// Where a [`Window`] gets its bytes.
pub(super) enum Input<R> {
    /// `read` calls on any reader, into heap blocks.
    Stream(R),
    /// `read` calls on a file that is not a regular file (a pipe, a device), or whose
    /// mapping failed (then from where the mapping stopped).
    File(File),
    /// Windows of a regular file mapped into memory.
    Mapped {
        file: Arc<File>,
        /// The file's length when last looked at (a file still being written grows).
        size: u64,
    },
}

/// A refillable window over a reader, with the file offset of its first byte.
///
/// The bytes live in a shared block ([`Reader::block`]) so that a consumer on another thread
/// can keep a reference to a packet's bytes instead of copying them. A heap block still shared
/// when more bytes are needed is left to its holders: the unread rest moves to a fresh (or
/// recycled) block. A mapped block is never written: the next window is mapped from the first
/// unread byte on, and the old one is unmapped when its last holder lets go.
pub(super) struct Window<R> {
    pub(super) input: Input<R>,
    pub(super) buf: Arc<Block>,
    /// Heap blocks handed out earlier, reused once nobody else holds them.
    spare: Vec<Arc<Block>>,
    start: usize,
    end: usize,
    /// File offset of `buf[start]`.
    pub(super) offset: u64,
    eof: bool,
}

/// Blocks kept for reuse.
const SPARE_BLOCKS: usize = 32;

impl<R: Read> Window<R> {
    pub(super) fn new(input: Input<R>) -> Self {
        let first = match input {
            Input::Mapped { .. } => 0,
            _ => CHUNK,
        };
        Window {
            input,
            buf: Arc::new(Block::heap(first)),
            spare: Vec::new(),
            start: 0,
            end: 0,
            offset: 0,
            eof: false,
        }
    }

    pub(super) fn available(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or(&[])
    }

    /// A heap block of at least `size` bytes that nobody else holds.
    fn fresh_block(&mut self, size: usize) -> Arc<Block> {
        let free = self.spare.iter().position(|b| Arc::strong_count(b) == 1 && b.len() >= size);
        match free {
            Some(i) => self.spare.swap_remove(i),
            None => Arc::new(Block::heap(size.max(CHUNK))),
        }
    }

    /// Make at least `need` bytes available; `Ok(false)` when the file ends first.
    #[inline]
    pub(super) fn fill(&mut self, need: usize) -> io::Result<bool> {
        if self.end - self.start >= need {
            return Ok(true);
        }
        self.fill_more(need)
    }

    /// [`Window::fill`] when the bytes at hand are not enough.
    #[inline(never)]
    fn fill_more(&mut self, need: usize) -> io::Result<bool> {
        if matches!(self.input, Input::Mapped { .. }) {
            self.map_next(need)?;
            if matches!(self.input, Input::Mapped { .. }) {
                return Ok(self.end - self.start >= need);
            }
            // Mapping failed: go on with `read` calls.
        }
        let len = self.end - self.start;
        let room = self.buf.len() - self.start;
        // `need` was checked against MAX_RECORD by the caller.
        let size = need.max(CHUNK);
        let unique = Arc::get_mut(&mut self.buf).is_some_and(|b| b.vec_mut().is_some());
        if !unique || need > self.buf.len() || need > room {
            // Move the unread rest to the front of a block nobody else reads.
            let mut block =
                if unique && need <= self.buf.len() { None } else { Some(self.fresh_block(size)) };
            match block.as_mut().and_then(Arc::get_mut).and_then(Block::vec_mut) {
                Some(dst) => {
                    if dst.len() < size {
                        dst.resize(size, 0);
                    }
                    if let (Some(to), Some(from)) =
                        (dst.get_mut(..len), self.buf.get(self.start..self.end))
                    {
                        to.copy_from_slice(from);
                    }
                }
                None => {
                    if let Some(b) = Arc::get_mut(&mut self.buf).and_then(Block::vec_mut) {
                        b.copy_within(self.start..self.end, 0);
                    }
                }
            }
            if let Some(block) = block {
                let old = std::mem::replace(&mut self.buf, block);
                if self.spare.len() < SPARE_BLOCKS && old.is_heap() {
                    self.spare.push(old);
                }
            }
            self.start = 0;
            self.end = len;
        }
        while self.end - self.start < need && !self.eof {
            let Some(buf) = Arc::get_mut(&mut self.buf).and_then(Block::vec_mut) else { break };
            let Some(spare) = buf.get_mut(self.end..) else { break };
            if spare.is_empty() {
                break;
            }
            let got = match &mut self.input {
                Input::Stream(r) => r.read(spare),
                Input::File(f) => f.read(spare),
                Input::Mapped { .. } => Ok(0),
            };
            match got {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.end - self.start >= need)
    }

    /// Map the file from the first unread byte on, at least `need` bytes of it if the file has
    /// them. If the mapping fails, switch to `read` calls from the same point.
    fn map_next(&mut self, need: usize) -> io::Result<()> {
        let Input::Mapped { file, size } = &mut self.input else { return Ok(()) };
        if self.eof {
            return Ok(());
        }
        let have = (self.end - self.start) as u64;
        if self.offset + have >= *size {
            // Everything known is mapped: see whether the file grew since.
            *size = file.metadata()?.len();
            if self.offset + have >= *size {
                self.eof = true;
                return Ok(());
            }
        }
        let left = *size - self.offset;
        let len = usize::try_from(left).unwrap_or(usize::MAX).min(need.max(MAP_WINDOW));
        // SAFETY: the map is read-only and only ever read as bytes, every one of which this
        // module treats as untrusted: every length read from it is checked before it is used,
        // so bytes changed by another process while the map is alive can only make the
        // analysis wrong, not make it read outside the map. A file that grows is fine: only
        // the length seen at the time is mapped, and more is mapped later if the file grew. A
        // file truncated by another process while mapped is the one hazard: on most systems
        // touching a page past its new end raises a bus error that ends the process (no wrong
        // bytes are read; Windows refuses to truncate a mapped file instead). Captures are
        // normally finished files, and one still being written only grows.
        let mapped = unsafe { MmapOptions::new().offset(self.offset).len(len).map(&*file) };
        match mapped {
            Ok(map) => {
                let file = Some(Arc::clone(file));
                self.buf =
                    Arc::new(Block { bytes: Bytes::Map(map), file_at: Some(self.offset), file });
                self.start = 0;
                self.end = self.buf.len();
            }
            Err(_) => self.read_instead(need)?,
        }
        Ok(())
    }

    /// Stop mapping: go on with `read` calls on the file, from the first byte not yet
    /// available, keeping the bytes that are.
    pub(super) fn read_instead(&mut self, need: usize) -> io::Result<()> {
        let Input::Mapped { file, .. } = &self.input else { return Ok(()) };
        let have = (self.end - self.start) as u64;
        let mut file = file.try_clone()?;
        file.seek(SeekFrom::Start(self.offset + have))?;
        let rest = self.available().to_vec();
        let mut block = Block::heap(need.max(CHUNK).max(rest.len()));
        if let Some(to) = block.vec_mut().and_then(|v| v.get_mut(..rest.len())) {
            to.copy_from_slice(&rest);
        }
        self.buf = Arc::new(block);
        self.start = 0;
        self.end = rest.len();
        self.input = Input::File(file);
        Ok(())
    }

    pub(super) fn consume(&mut self, n: usize) {
        let n = n.min(self.end - self.start);
        self.start += n;
        self.offset += n as u64;
    }
}
