//! Reading capture files: pcap and pcapng records, one at a time, from untrusted bytes.
//!
//! Owns format detection by magic number (pcap in both byte orders with microsecond or
//! nanosecond timestamps, pcapng with several sections and interfaces), the conversion of every
//! timestamp to nanoseconds (honouring pcapng's `if_tsresol` and `if_tsoffset`), and the point
//! where a damaged file stops being readable. It hands out each record's link type, timestamp,
//! captured bytes and original length, inside a shared [`Block`]: a window of the file mapped
//! into memory (a regular file, when the system allows it) or a buffer filled by `read` calls
//! (pipes, or when mapping fails). It never looks inside a packet, never maps or allocates more
//! than a bounded window whatever a header claims ([`MAX_RECORD`] for one record), and never
//! panics: every length is checked before it is used. A file cut off mid-record ends the stream
//! of records with a [`Stop`] saying at which byte offset reading stopped.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Deref;
use std::sync::Arc;

use memmap2::{Mmap, MmapOptions};

/// The largest record (pcap) or block (pcapng) accepted; a header claiming more is damage.
pub const MAX_RECORD: usize = 16 * 1024 * 1024;
/// Bytes read from the file at a time (and the size of a shared block).
const CHUNK: usize = 256 * 1024;
/// Bytes of the file mapped at a time. The windows still referenced by the analysis threads
/// stay resident, so this bounds the memory the mapping adds.
const MAP_WINDOW: usize = 4 * 1024 * 1024;

/// Bytes of the capture shared between the reader and the threads that analyse them: a
/// window of the file mapped into memory, or a buffer the file was read into.
#[derive(Debug)]
pub struct Block {
    bytes: Bytes,
    /// Position in the file of the first byte, for a mapped window.
    file_at: Option<u64>,
}

#[derive(Debug)]
enum Bytes {
    Heap(Vec<u8>),
    Map(Mmap),
}

impl Block {
    fn heap(len: usize) -> Self {
        Block { bytes: Bytes::Heap(vec![0; len]), file_at: None }
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
        Block { bytes: Bytes::Map(map.expect("map")), file_at: Some(at) }
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

/// The container format of a capture file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// libpcap format.
    Pcap,
    /// pcap Next Generation.
    Pcapng,
}

impl Format {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Format::Pcap => "pcap",
            Format::Pcapng => "pcapng",
        }
    }
}

/// What the first bytes of a file say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Magic {
    /// A capture this module reads.
    Capture(Format),
    /// A gzip-compressed file.
    Gzip,
    /// No bytes at all.
    Empty,
    /// Something else; the first bytes (up to four) are kept for the message.
    Other([u8; 4], usize),
}

/// Recognise a file by its first bytes.
pub fn sniff(head: &[u8]) -> Magic {
    match head {
        [] => Magic::Empty,
        [0x1f, 0x8b, ..] => Magic::Gzip,
        [0x0a, 0x0d, 0x0d, 0x0a, ..] => Magic::Capture(Format::Pcapng),
        [0xd4, 0xc3, 0xb2, 0xa1, ..]
        | [0xa1, 0xb2, 0xc3, 0xd4, ..]
        | [0x4d, 0x3c, 0xb2, 0xa1, ..]
        | [0xa1, 0xb2, 0x3c, 0x4d, ..] => Magic::Capture(Format::Pcap),
        _ => {
            let mut first = [0u8; 4];
            let n = head.len().min(4);
            first[..n].copy_from_slice(&head[..n]);
            Magic::Other(first, n)
        }
    }
}

/// One captured record.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// LINKTYPE_* value of the interface that captured it.
    pub link_type: u32,
    /// Nanoseconds since the Unix epoch.
    pub ts_ns: i64,
    /// The bytes saved in the file (may be fewer than went over the wire).
    pub data: &'a [u8],
    /// The length the packet had on the wire.
    pub orig_len: u32,
    /// The shared block `data` lies in (see [`Reader::block`]).
    pub block: &'a Arc<Block>,
}

/// Why reading stopped before the natural end of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    /// Byte offset in the file of the record or block that could not be read.
    pub offset: u64,
    /// What was wrong there.
    pub what: String,
}

/// Why a file could not be opened as a capture at all.
#[derive(Debug)]
pub enum OpenError {
    /// Reading failed.
    Io(io::Error),
    /// The file is not a capture (see [`Magic`]).
    NotCapture(Magic),
    /// The file header itself is cut off or impossible.
    BadHeader(String),
}

impl From<io::Error> for OpenError {
    fn from(e: io::Error) -> Self {
        OpenError::Io(e)
    }
}

/// Where a [`Window`] gets its bytes.
enum Input<R> {
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
struct Window<R> {
    input: Input<R>,
    buf: Arc<Block>,
    /// Heap blocks handed out earlier, reused once nobody else holds them.
    spare: Vec<Arc<Block>>,
    start: usize,
    end: usize,
    /// File offset of `buf[start]`.
    offset: u64,
    eof: bool,
}

/// Blocks kept for reuse.
const SPARE_BLOCKS: usize = 32;

impl<R: Read> Window<R> {
    fn new(input: Input<R>) -> Self {
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

    fn available(&self) -> &[u8] {
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
    fn fill(&mut self, need: usize) -> io::Result<bool> {
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
                self.buf = Arc::new(Block { bytes: Bytes::Map(map), file_at: Some(self.offset) });
                self.start = 0;
                self.end = self.buf.len();
            }
            Err(_) => self.read_instead(need)?,
        }
        Ok(())
    }

    /// Stop mapping: go on with `read` calls on the file, from the first byte not yet
    /// available, keeping the bytes that are.
    fn read_instead(&mut self, need: usize) -> io::Result<()> {
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

    fn consume(&mut self, n: usize) {
        let n = n.min(self.end - self.start);
        self.start += n;
        self.offset += n as u64;
    }
}

fn u16_at(b: &[u8], at: usize, be: bool) -> Option<u16> {
    let s: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
    Some(if be { u16::from_be_bytes(s) } else { u16::from_le_bytes(s) })
}

fn u32_at(b: &[u8], at: usize, be: bool) -> Option<u32> {
    let s: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
    Some(if be { u32::from_be_bytes(s) } else { u32::from_le_bytes(s) })
}

fn u64_at(b: &[u8], at: usize, be: bool) -> Option<u64> {
    let s: [u8; 8] = b.get(at..at + 8)?.try_into().ok()?;
    Some(if be { u64::from_be_bytes(s) } else { u64::from_le_bytes(s) })
}

/// Timestamp units of a pcapng interface, as `if_tsresol` gives them.
#[derive(Debug, Clone, Copy)]
struct Resolution {
    /// Multiply by `mul` then divide by `div` to get nanoseconds.
    mul: u128,
    div: u128,
}

impl Resolution {
    const MICRO: Resolution = Resolution { mul: 1000, div: 1 };

    fn from_tsresol(v: u8) -> Option<Resolution> {
        let exp = u32::from(v & 0x7f);
        if v & 0x80 == 0 {
            if exp > 30 {
                return None;
            }
            if exp <= 9 {
                Some(Resolution { mul: 10u128.pow(9 - exp), div: 1 })
            } else {
                Some(Resolution { mul: 1, div: 10u128.pow(exp - 9) })
            }
        } else {
            if exp > 63 {
                return None;
            }
            Some(Resolution { mul: 1_000_000_000, div: 1u128 << exp })
        }
    }

    fn to_ns(self, units: u64, offset_s: i64) -> i64 {
        let ns = u128::from(units) * self.mul / self.div;
        let ns = i64::try_from(ns).unwrap_or(i64::MAX);
        ns.saturating_add(offset_s.saturating_mul(1_000_000_000))
    }
}

#[derive(Debug, Clone, Copy)]
struct Interface {
    link_type: u32,
    snaplen: u32,
    res: Resolution,
    offset_s: i64,
}

enum Kind {
    Pcap { be: bool, nanos: bool, link_type: u32 },
    Pcapng { be: bool, interfaces: Vec<Interface> },
}

/// Reads records from a pcap or pcapng file. Call [`Reader::next_record`] until it gives `None`,
/// then look at [`Reader::stop`].
pub struct Reader<R> {
    win: Window<R>,
    kind: Kind,
    format: Format,
    stop: Option<Stop>,
    /// Link types of interfaces declared so far, in order of first appearance.
    link_types: Vec<u32>,
    /// Warnings about blocks that were skipped but did not stop reading.
    notes: Vec<String>,
    /// The record handed out last, consumed on the next call.
    pending: Option<Pending>,
}

/// Where the last record sits in the window.
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// Bytes the whole record or block takes in the file.
    len: usize,
    link_type: u32,
    ts_ns: i64,
    orig_len: u32,
    /// Offset of the packet bytes inside the record.
    data_at: usize,
    data_len: usize,
}

impl Reader<File> {
    /// Open a capture file: a regular file is mapped into memory a window at a time (read
    /// with `read` calls if the system refuses), anything else is read with `read` calls.
    pub fn open_file(file: File) -> Result<Self, OpenError> {
        let input = match file.metadata() {
            Ok(m) if m.is_file() => Input::Mapped { file: Arc::new(file), size: m.len() },
            _ => Input::File(file),
        };
        Self::start(Window::new(input))
    }
}

impl<R: Read> Reader<R> {
    /// Open a capture: read and check the file header.
    pub fn open(inner: R) -> Result<Self, OpenError> {
        Self::start(Window::new(Input::Stream(inner)))
    }

    fn start(mut win: Window<R>) -> Result<Self, OpenError> {
        win.fill(24)?;
        let head = win.available();
        let magic = sniff(head);
        let format = match magic {
            Magic::Capture(f) => f,
            other => return Err(OpenError::NotCapture(other)),
        };
        let mut reader = Reader {
            win,
            kind: Kind::Pcapng { be: false, interfaces: Vec::new() },
            format,
            stop: None,
            link_types: Vec::new(),
            notes: Vec::new(),
            pending: None,
        };
        match format {
            Format::Pcap => {
                let head = reader.win.available();
                if head.len() < 24 {
                    return Err(OpenError::BadHeader(format!(
                        "the pcap file header is cut off after {} of 24 bytes",
                        head.len()
                    )));
                }
                let (be, nanos) = match head.get(..4) {
                    Some([0xa1, 0xb2, 0xc3, 0xd4]) => (true, false),
                    Some([0xd4, 0xc3, 0xb2, 0xa1]) => (false, false),
                    Some([0xa1, 0xb2, 0x3c, 0x4d]) => (true, true),
                    _ => (false, true),
                };
                let network = u32_at(head, 20, be).unwrap_or(0);
                // The top bits of the link-type field carry FCS information.
                let link_type = network & 0x03ff_ffff;
                reader.kind = Kind::Pcap { be, nanos, link_type };
                reader.link_types.push(link_type);
                reader.win.consume(24);
            }
            Format::Pcapng => {
                // The first block must be a readable Section Header Block.
                reader.win.fill(28)?;
                let head = reader.win.available();
                if head.len() < 28 {
                    return Err(OpenError::BadHeader(format!(
                        "the pcapng section header is cut off after {} bytes",
                        head.len()
                    )));
                }
                let be = match head.get(8..12) {
                    Some([0x1a, 0x2b, 0x3c, 0x4d]) => true,
                    Some([0x4d, 0x3c, 0x2b, 0x1a]) => false,
                    _ => {
                        return Err(OpenError::BadHeader(
                            "the pcapng section header has no byte-order magic".into(),
                        ));
                    }
                };
                reader.kind = Kind::Pcapng { be, interfaces: Vec::new() };
            }
        }
        Ok(reader)
    }

    /// The capture file, while it is read through mapped windows (see [`Block::file_at`]).
    pub fn mapped_file(&self) -> Option<&Arc<File>> {
        match &self.win.input {
            Input::Mapped { file, .. } => Some(file),
            _ => None,
        }
    }

    /// The container format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The shared block holding the bytes of the record last returned (and maybe the next
    /// ones): a consumer may keep it instead of copying the record's bytes.
    pub fn block(&self) -> &Arc<Block> {
        &self.win.buf
    }

    /// Link types declared so far (pcap: one; pcapng: one per interface, first seen first).
    pub fn link_types(&self) -> &[u32] {
        &self.link_types
    }

    /// Where and why reading stopped early, if it did.
    pub fn stop(&self) -> Option<&Stop> {
        self.stop.as_ref()
    }

    /// Take the warnings about skipped blocks gathered so far.
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    fn halt(&mut self, what: impl Into<String>) {
        self.stop = Some(Stop { offset: self.win.offset, what: what.into() });
    }

    /// The next record, or `None` at the end of the file or at the first damage
    /// (then [`Reader::stop`] says where).
    pub fn next_record(&mut self) -> io::Result<Option<Record<'_>>> {
        if let Some(p) = self.pending.take() {
            self.win.consume(p.len);
        }
        if self.stop.is_some() {
            return Ok(None);
        }
        let found = match self.kind {
            Kind::Pcap { be, nanos, link_type } => self.next_pcap(be, nanos, link_type)?,
            Kind::Pcapng { .. } => self.next_pcapng()?,
        };
        let Some(p) = found else { return Ok(None) };
        self.pending = Some(p);
        if let Some(next) = self.win.available().get(p.len..) {
            // The next record's header and packet headers, wanted soon.
            super::cache::prefetch(next.get(..128).unwrap_or(next));
        }
        let data = self.win.available().get(p.data_at..p.data_at + p.data_len).unwrap_or(&[]);
        let block = &self.win.buf;
        Ok(Some(Record {
            link_type: p.link_type,
            ts_ns: p.ts_ns,
            data,
            orig_len: p.orig_len,
            block,
        }))
    }

    fn next_pcap(&mut self, be: bool, nanos: bool, link_type: u32) -> io::Result<Option<Pending>> {
        if !self.win.fill(16)? {
            let left = self.win.available().len();
            if left > 0 {
                self.halt(format!("the file ends inside a record header ({left} of 16 bytes)"));
            }
            return Ok(None);
        }
        let h = self.win.available();
        let (Some(sec), Some(frac), Some(incl), Some(orig)) =
            (u32_at(h, 0, be), u32_at(h, 4, be), u32_at(h, 8, be), u32_at(h, 12, be))
        else {
            return Ok(None);
        };
        let incl = incl as usize;
        if incl > MAX_RECORD {
            self.halt(format!("a record claims an impossible length of {incl} bytes"));
            return Ok(None);
        }
        if !self.win.fill(16 + incl)? {
            let left = self.win.available().len().saturating_sub(16);
            self.halt(format!("the file ends inside a record ({left} of {incl} bytes)"));
            return Ok(None);
        }
        let frac_ns = if nanos { i64::from(frac) } else { i64::from(frac) * 1000 };
        let ts = i64::from(sec) * 1_000_000_000 + frac_ns;
        Ok(Some(Pending {
            len: 16 + incl,
            link_type,
            ts_ns: ts,
            orig_len: orig,
            data_at: 16,
            data_len: incl,
        }))
    }

    fn next_pcapng(&mut self) -> io::Result<Option<Pending>> {
        loop {
            if !self.win.fill(12)? {
                let left = self.win.available().len();
                if left > 0 {
                    self.halt(format!("the file ends inside a block header ({left} bytes)"));
                }
                return Ok(None);
            }
            let h = self.win.available();
            let Kind::Pcapng { be, .. } = self.kind else { return Ok(None) };
            let is_shb = h.get(..4) == Some(&[0x0a, 0x0d, 0x0d, 0x0a]);
            let be = if is_shb {
                match h.get(8..12) {
                    Some([0x1a, 0x2b, 0x3c, 0x4d]) => true,
                    Some([0x4d, 0x3c, 0x2b, 0x1a]) => false,
                    _ => {
                        self.halt("a section header has no byte-order magic");
                        return Ok(None);
                    }
                }
            } else {
                be
            };
            let (Some(btype), Some(blen)) = (u32_at(h, 0, be), u32_at(h, 4, be)) else {
                return Ok(None);
            };
            let blen = blen as usize;
            if blen < 12 || !blen.is_multiple_of(4) || blen > MAX_RECORD {
                self.halt(format!("a block claims an impossible length of {blen} bytes"));
                return Ok(None);
            }
            if !self.win.fill(blen)? {
                let left = self.win.available().len();
                self.halt(format!("the file ends inside a block ({left} of {blen} bytes)"));
                return Ok(None);
            }
            let block = self.win.available().get(..blen).unwrap_or(&[]);
            if u32_at(block, blen - 4, be) != Some(blen as u32) {
                self.halt("a block's trailing length does not match its header");
                return Ok(None);
            }
            let body = block.get(8..blen - 4).unwrap_or(&[]);
            match btype {
                0x0a0d_0d0a => {
                    // New section: new byte order, no interfaces.
                    self.kind = Kind::Pcapng { be, interfaces: Vec::new() };
                }
                1 => {
                    let iface = parse_idb(body, be);
                    match iface {
                        Some(i) => {
                            if !self.link_types.contains(&i.link_type) {
                                self.link_types.push(i.link_type);
                            }
                            if let Kind::Pcapng { interfaces, .. } = &mut self.kind
                                && interfaces.len() < 65_536
                            {
                                interfaces.push(i);
                            }
                        }
                        None => self.notes.push(format!(
                            "skipped a damaged interface description at byte {}",
                            self.win.offset
                        )),
                    }
                }
                6 | 2 => {
                    // Enhanced Packet Block (6) or the obsolete Packet Block (2).
                    let fields = if btype == 6 {
                        (u32_at(body, 0, be), u32_at(body, 4, be), u32_at(body, 8, be))
                    } else {
                        (
                            u16_at(body, 0, be).map(u32::from),
                            u32_at(body, 4, be),
                            u32_at(body, 8, be),
                        )
                    };
                    let (Some(ifid), Some(hi), Some(lo)) = fields else {
                        self.halt("a packet block is too short for its fields");
                        return Ok(None);
                    };
                    let (Some(cap), Some(orig)) = (u32_at(body, 12, be), u32_at(body, 16, be))
                    else {
                        self.halt("a packet block is too short for its fields");
                        return Ok(None);
                    };
                    let cap = cap as usize;
                    if 20 + cap > body.len() {
                        self.halt(format!(
                            "a packet block claims {cap} captured bytes but holds fewer"
                        ));
                        return Ok(None);
                    }
                    let Some(iface) = self.interface(ifid) else {
                        let at = self.win.offset;
                        self.notes.push(format!(
                            "skipped a packet at byte {at} for undeclared interface {ifid}"
                        ));
                        self.win.consume(blen);
                        continue;
                    };
                    let units = (u64::from(hi) << 32) | u64::from(lo);
                    let ts = iface.res.to_ns(units, iface.offset_s);
                    return Ok(Some(Pending {
                        len: blen,
                        link_type: iface.link_type,
                        ts_ns: ts,
                        orig_len: orig,
                        data_at: 28,
                        data_len: cap,
                    }));
                }
                3 => {
                    // Simple Packet Block: interface 0, no timestamp.
                    let Some(orig) = u32_at(body, 0, be) else {
                        self.halt("a simple packet block is too short");
                        return Ok(None);
                    };
                    let Some(iface) = self.interface(0) else {
                        let at = self.win.offset;
                        self.notes.push(format!(
                            "skipped a simple packet at byte {at}: no interface declared"
                        ));
                        self.win.consume(blen);
                        continue;
                    };
                    let room = body.len() - 4;
                    let mut cap = (orig as usize).min(room);
                    if iface.snaplen > 0 {
                        cap = cap.min(iface.snaplen as usize);
                    }
                    return Ok(Some(Pending {
                        len: blen,
                        link_type: iface.link_type,
                        ts_ns: 0,
                        orig_len: orig,
                        data_at: 12,
                        data_len: cap,
                    }));
                }
                _ => {}
            }
            self.win.consume(blen);
        }
    }

    fn interface(&self, id: u32) -> Option<Interface> {
        match &self.kind {
            Kind::Pcapng { interfaces, .. } => interfaces.get(id as usize).copied(),
            Kind::Pcap { .. } => None,
        }
    }
}

fn parse_idb(body: &[u8], be: bool) -> Option<Interface> {
    let link_type = u32::from(u16_at(body, 0, be)?);
    let snaplen = u32_at(body, 4, be)?;
    let mut iface = Interface { link_type, snaplen, res: Resolution::MICRO, offset_s: 0 };
    let mut at = 8;
    while let (Some(code), Some(len)) = (u16_at(body, at, be), u16_at(body, at + 2, be)) {
        let len = usize::from(len);
        let value = body.get(at + 4..at + 4 + len)?;
        match code {
            0 => break,
            9 => {
                if let Some(&v) = value.first() {
                    iface.res = Resolution::from_tsresol(v)?;
                }
            }
            14 => {
                if let Some(v) = u64_at(value, 0, be) {
                    iface.offset_s = v as i64;
                }
            }
            _ => {}
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    Some(iface)
}

/// The conventional name of a link type, for reports.
pub fn link_type_name(lt: u32) -> String {
    match lt {
        0 => "NULL".into(),
        1 => "ETHERNET".into(),
        12 | 14 | 101 => "RAW".into(),
        108 => "LOOP".into(),
        113 => "LINUX_SLL".into(),
        228 => "IPV4".into(),
        229 => "IPV6".into(),
        276 => "LINUX_SLL2".into(),
        other => format!("LINKTYPE_{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcap_header(be: bool, nanos: bool, link: u32) -> Vec<u8> {
        let magic: u32 = if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
        let mut v = Vec::new();
        let put32 = |v: &mut Vec<u8>, x: u32| {
            v.extend_from_slice(&if be { x.to_be_bytes() } else { x.to_le_bytes() })
        };
        put32(&mut v, magic);
        v.extend_from_slice(&if be { [0, 2, 0, 4] } else { [2, 0, 4, 0] });
        put32(&mut v, 0);
        put32(&mut v, 0);
        put32(&mut v, 65535);
        put32(&mut v, link);
        v
    }

    #[test]
    fn sniff_tells_formats_apart() {
        assert_eq!(sniff(&[]), Magic::Empty);
        assert_eq!(sniff(&[0x1f, 0x8b, 8]), Magic::Gzip);
        assert_eq!(sniff(&[0x0a, 0x0d, 0x0d, 0x0a]), Magic::Capture(Format::Pcapng));
        assert_eq!(sniff(&[0x4d, 0x3c, 0xb2, 0xa1]), Magic::Capture(Format::Pcap));
        assert_eq!(sniff(b"hi"), Magic::Other([b'h', b'i', 0, 0], 2));
    }

    #[test]
    fn pcap_record_lengths_are_checked() {
        let mut f = pcap_header(true, true, 1);
        f.extend_from_slice(&1u32.to_be_bytes());
        f.extend_from_slice(&5u32.to_be_bytes());
        f.extend_from_slice(&u32::MAX.to_be_bytes());
        f.extend_from_slice(&4u32.to_be_bytes());
        let mut r = Reader::open(&f[..]).map_err(|_| "open").unwrap();
        assert!(r.next_record().unwrap().is_none());
        assert_eq!(r.stop().map(|s| s.offset), Some(24));
    }

    #[test]
    fn pcap_nanosecond_big_endian() {
        let mut f = pcap_header(true, true, 101);
        for x in [7u32, 9, 3, 60] {
            f.extend_from_slice(&x.to_be_bytes());
        }
        f.extend_from_slice(b"abc");
        let mut r = Reader::open(&f[..]).map_err(|_| "open").unwrap();
        let rec = r.next_record().unwrap().unwrap();
        assert_eq!(
            (rec.link_type, rec.ts_ns, rec.data, rec.orig_len),
            (101, 7_000_000_009, &b"abc"[..], 60)
        );
        assert!(r.next_record().unwrap().is_none());
        assert!(r.stop().is_none());
    }

    /// Yields a few bytes per read, like a slow pipe.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.0.len()).min(7);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn records_stay_valid_in_blocks_others_still_hold() {
        let mut f = pcap_header(false, false, 101);
        let records: Vec<Vec<u8>> =
            (0..3000u32).map(|i| vec![(i % 251) as u8; 100 + (i as usize % 300)]).collect();
        for (i, r) in records.iter().enumerate() {
            for x in [i as u32, 0, r.len() as u32, r.len() as u32] {
                f.extend_from_slice(&x.to_le_bytes());
            }
            f.extend_from_slice(r);
        }
        let mut reader = Reader::open(Trickle(&f)).map_err(|_| "open").unwrap();
        let mut held = Vec::new();
        let mut n = 0;
        while let Some(rec) = reader.next_record().unwrap() {
            assert_eq!(rec.data, &records[n][..]);
            let base = rec.block.as_ptr() as usize;
            let at = rec.data.as_ptr() as usize - base;
            // Keep every block alive, as a worker thread might.
            held.push((Arc::clone(rec.block), at, rec.data.len(), n));
            n += 1;
        }
        assert_eq!(n, records.len());
        assert!(reader.stop().is_none());
        for (block, at, len, i) in held {
            assert_eq!(&block[at..at + len], &records[i][..], "record {i} changed under us");
        }
    }

    /// A temporary file holding `bytes`, removed when the value is dropped.
    fn temp_file(name: &str, bytes: &[u8]) -> tempfile::TempPath {
        let mut f = tempfile::Builder::new().prefix(&format!("rchat-{name}-")).tempfile().unwrap();
        std::io::Write::write_all(&mut f, bytes).unwrap();
        f.into_temp_path()
    }

    fn pcap_records(f: &mut Vec<u8>, from: u32, sizes: impl Iterator<Item = usize>) {
        for (i, n) in sizes.enumerate() {
            let i = from + i as u32;
            for x in [i, 0, n as u32, n as u32] {
                f.extend_from_slice(&x.to_le_bytes());
            }
            f.extend(std::iter::repeat_n((i % 251) as u8, n));
        }
    }

    /// Read both to the end, checking that they give the same records; `before(n, a)` runs
    /// before record `n` is read from `a`. Returns how many records there were.
    fn same_records(
        a: &mut Reader<File>,
        b: &mut Reader<&[u8]>,
        mut before: impl FnMut(usize, &mut Reader<File>),
    ) -> usize {
        let mut n = 0;
        loop {
            before(n, a);
            let x = a.next_record().unwrap().map(|r| (r.ts_ns, r.data.to_vec()));
            let y = b.next_record().unwrap().map(|r| (r.ts_ns, r.data.to_vec()));
            assert_eq!(x, y, "record {n}");
            if x.is_none() {
                return n;
            }
            n += 1;
        }
    }

    #[test]
    fn a_mapped_file_gives_the_same_records_across_windows() {
        // Records of many sizes, some larger than a read block, across several mapped windows,
        // and a last record cut off.
        let mut f = pcap_header(false, false, 101);
        let sizes = (0..2600usize).map(|i| if i % 500 == 7 { 300_000 } else { 1 + i * 37 % 9000 });
        pcap_records(&mut f, 0, sizes);
        assert!(f.len() > 2 * MAP_WINDOW);
        f.truncate(f.len() - 100);
        let path = temp_file("mapped", &f);
        let mut mapped = Reader::open_file(File::open(&path).unwrap()).map_err(|_| "open").unwrap();
        assert!(mapped.mapped_file().is_some());
        let mut read = Reader::open(&f[..]).map_err(|_| "open").unwrap();
        assert_eq!(same_records(&mut mapped, &mut read, |_, _| {}), 2599);
        assert!(mapped.stop().is_some());
        assert_eq!(mapped.stop(), read.stop());
    }

    #[test]
    fn reading_goes_on_with_read_calls_where_a_mapping_fails() {
        // The system may refuse to map the next window: reading then goes on with `read`
        // calls from where the mapped bytes end, giving the same records.
        let mut f = pcap_header(false, false, 101);
        let sizes = (0..1200usize).map(|i| 1 + i * 37 % 9000);
        pcap_records(&mut f, 0, sizes);
        assert!(f.len() > MAP_WINDOW);
        let path = temp_file("map-refused", &f);
        let mut mapped = Reader::open_file(File::open(&path).unwrap()).map_err(|_| "open").unwrap();
        let mut read = Reader::open(&f[..]).map_err(|_| "open").unwrap();
        let records = same_records(&mut mapped, &mut read, |n, mapped| {
            if n == 700 {
                // Mid-window, with a record's bytes available but not yet consumed.
                assert!(mapped.mapped_file().is_some());
                mapped.win.fill(100).unwrap();
                mapped.win.read_instead(100).unwrap();
                assert!(mapped.mapped_file().is_none());
            }
        });
        assert_eq!(records, 1200);
    }

    #[test]
    fn a_mapped_file_that_grows_is_read_to_its_new_end() {
        let mut f = pcap_header(false, false, 101);
        pcap_records(&mut f, 0, [100, 200, 300].into_iter());
        let path = temp_file("growing", &f);
        let mut r = Reader::open_file(File::open(&path).unwrap()).map_err(|_| "open").unwrap();
        assert_eq!(r.next_record().unwrap().map(|r| r.data.len()), Some(100));
        let mut more = Vec::new();
        pcap_records(&mut more, 3, [400, 500].into_iter());
        let mut w = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        std::io::Write::write_all(&mut w, &more).unwrap();
        drop(w);
        let mut lens = Vec::new();
        while let Some(rec) = r.next_record().unwrap() {
            lens.push(rec.data.len());
        }
        assert_eq!(lens, [200, 300, 400, 500]);
        assert!(r.stop().is_none());
    }

    #[test]
    fn an_empty_file_is_empty_when_mapped_too() {
        let path = temp_file("empty", &[]);
        let r = Reader::open_file(File::open(&path).unwrap());
        assert!(matches!(r, Err(OpenError::NotCapture(Magic::Empty))));
    }

    #[test]
    fn tsresol_units() {
        assert_eq!(Resolution::from_tsresol(6).unwrap().to_ns(5, 0), 5000);
        assert_eq!(Resolution::from_tsresol(9).unwrap().to_ns(5, 1), 1_000_000_005);
        assert_eq!(Resolution::from_tsresol(0x80 | 10).unwrap().to_ns(1024, 0), 1_000_000_000);
        assert!(Resolution::from_tsresol(0xff).is_none());
    }
}
