//! Stage 1, input: a capture file (or any reader) comes in; TCP segments and their captured
//! bytes go out.
//!
//! Owns reading the container formats ([`pcap`], [`pcapng`], told apart by magic number, never
//! by name), the read window ([`window`]: the file mapped into memory a window at a time, or
//! read into buffers), timestamps in nanoseconds, the point where a damaged file stops being
//! readable ([`Stop`]), and decoding each record's link layer, IP and TCP header down to a
//! segment ([`decode`], driven over a whole file by [`Decoder`], which also words the warnings
//! about what it skipped). Each record's bytes lie in a shared [`Block`], so that later stages
//! can keep them instead of copying them, and travel on as [`Captured`] bytes that remember
//! where they came from ([`captured`]); [`sample`] keeps a direction's first bytes by that
//! origin and reads them back. Only this stage and `engine` know where bytes lie in the file.
//! It must never trust a length before checking it against
//! the bytes at hand, never map or allocate more than a bounded window whatever a header claims
//! ([`MAX_RECORD`] for one record), never panic, and never look past the TCP header: what the
//! payload means is for the stages after it.

pub mod captured;
pub mod decode;
pub mod pcap;
pub mod pcapng;
pub mod sample;
pub mod window;

use std::fs::File;
use std::io::{self, Read};
use std::sync::Arc;

pub use captured::{Captured, CapturedCopy, Origin};
use decode::{Decoded, Defrag, Segment};
use pcapng::Interface;
pub(crate) use window::read_back;
pub use window::{Block, READ_BACK_MIN};
use window::{Input, Window};

/// The largest record (pcap) or block (pcapng) accepted; a header claiming more is damage.
pub const MAX_RECORD: usize = 16 * 1024 * 1024;

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

impl<'a> Record<'a> {
    /// The record's bytes, in their shared block.
    pub fn captured(&self) -> Captured<'a> {
        Captured::in_block(self.block, self.data)
    }
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
            Format::Pcap => reader.open_pcap()?,
            Format::Pcapng => reader.open_pcapng()?,
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

    /// The names of the link types declared so far (see [`Reader::link_types`]).
    pub fn link_type_names(&self) -> Vec<String> {
        self.link_types.iter().map(|l| link_type_name(*l)).collect()
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
            crate::analyze::engine::cache::prefetch(next.get(..128).unwrap_or(next));
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
}

/// What the records that were not TCP segments of interest were, and the IPv4 fragments
/// still waiting for the rest of their datagram.
#[derive(Debug, Default)]
pub struct Decoder {
    defrag: Defrag,
    malformed: u64,
    unknown_link: Vec<(u32, u64)>,
    fragments: u64,
    /// Records the capture kept shorter than the packet (a short snaplen), and the most bytes
    /// it kept of any of them.
    cut_records: u64,
    kept_at_most: usize,
}

impl Decoder {
    /// Read every record of `reader`, decode it, and hand each TCP segment to `segment` with
    /// its timestamp (its payload lies in the record's shared block: see [`Captured`]). Returns
    /// the number of records read.
    pub fn read_all<R: Read>(
        &mut self,
        reader: &mut Reader<R>,
        mut segment: impl FnMut(&Segment<'_>, i64),
    ) -> io::Result<u64> {
        let mut packets = 0u64;
        while let Some(rec) = reader.next_record()? {
            packets += 1;
            if (rec.data.len() as u64) < u64::from(rec.orig_len) {
                self.cut_records += 1;
                self.kept_at_most = self.kept_at_most.max(rec.data.len());
            }
            match decode::decode_captured(rec.link_type, rec.captured(), &mut self.defrag) {
                Decoded::Tcp(seg) => segment(&seg, rec.ts_ns),
                Decoded::Fragment(Some(dgram)) => {
                    self.fragments += 1;
                    if let Some(seg) = dgram.segment() {
                        segment(&seg, rec.ts_ns);
                    }
                }
                Decoded::Fragment(None) => self.fragments += 1,
                Decoded::Other => {}
                Decoded::UnknownLink => {
                    match self.unknown_link.iter_mut().find(|(l, _)| *l == rec.link_type) {
                        Some((_, n)) => *n += 1,
                        None => self.unknown_link.push((rec.link_type, 1)),
                    }
                }
                Decoded::Malformed => self.malformed += 1,
            }
        }
        Ok(packets)
    }

    /// The warnings about reading and decoding the capture: blocks skipped, where reading
    /// stopped, link types not read, packets cut short by the snaplen, packets that did not
    /// decode, fragments not put together.
    pub fn warnings<R: Read>(&self, reader: &mut Reader<R>) -> Vec<String> {
        let mut warnings = reader.take_notes();
        if let Some(stop) = reader.stop() {
            warnings.push(format!(
                "the capture stops at byte {}: {}; everything before it was analysed",
                stop.offset, stop.what
            ));
        }
        for (lt, n) in &self.unknown_link {
            warnings.push(format!(
                "link type {} is not one rchat reads: its {n} packet(s) were skipped",
                link_type_name(*lt)
            ));
        }
        if self.malformed > 0 {
            warnings.push(format!(
                "{} packet(s) were too short or inconsistent to decode and were skipped",
                self.malformed
            ));
        }
        if self.cut_records > 0 {
            warnings.push(format!(
                "the capture kept at most {} bytes of each packet (its snaplen): {} cut \
                 short. Payload bytes cut off count as missing (snaplen_cut_bytes) and the \
                 verdicts judge only the bytes kept; capture with `tcpdump -s 0` to keep whole \
                 packets",
                self.kept_at_most,
                if self.cut_records == 1 {
                    "1 packet was".to_string()
                } else {
                    format!("{} packets were", self.cut_records)
                }
            ));
        }
        let defrag = &self.defrag;
        if defrag.dropped > 0 || defrag.incomplete() > 0 {
            warnings.push(format!(
                "{} IP fragment(s) could not be put back together and were skipped",
                defrag.dropped + defrag.incomplete() as u64
            ));
        }
        warnings
    }
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
    use super::window::MAP_WINDOW;
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
}
