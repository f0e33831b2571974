//! What happens to one direction's reassembled bytes as they stream out of reassembly.
//!
//! Owns the consumers every in-order byte passes through once: the SHA-256 of the direction,
//! the message [`Splitter`] (which also feeds the classifier), a bounded [`Preview`] (everything
//! only with `--full`; noted by position in the capture file where it can), the `--extract`
//! file writer, and the last 16 KiB that retransmissions
//! are compared with ([`Recent`]: copied, or, for bytes whose place in the capture file is
//! known, looked up there when needed). It implements the reassembly [`Sink`], taking a run
//! of one direction's pieces at once when given one, and turns each finished direction into a
//! [`DirectionResult`]. It never keeps a whole stream unless `--full` asks for it, and never
//! decides what the bytes are itself: the verdicts come from `classify`.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::Delivered;
use super::digest::{self, Sha256Stream};
use super::preview::Preview;
use super::recent::Recent;
use crate::analyze::classify::{self, Classification, Histogram};
use crate::analyze::input::Block;
use crate::analyze::input::Captured;
use crate::analyze::input::sample::Sample;
use crate::analyze::recognise::Watch;
use crate::analyze::recognise::rchat::{FrameLog, RchatReport};
use crate::analyze::recognise::{Part, Protocol, Protocols};
use crate::analyze::stream::messages::{FoundKey, Message, Mode, Splitter, Tallies};
use crate::analyze::stream::{Dir, Sink};
use crate::crypto::Identity;
use std::sync::Arc;

/// How the analysis of each direction is set up.
#[derive(Debug, Clone, Default)]
pub struct Work {
    /// Keep every byte for the preview.
    pub full: bool,
    /// Write each direction to a file in this folder.
    pub extract: Option<PathBuf>,
    /// Private keys to decrypt the rchat messages sent to them.
    pub keys: Vec<Arc<Identity>>,
    /// The capture file, to read back delivered bytes that said where they are in it
    /// ([`Delivered::bytes`]) when a retransmission must be compared with them.
    pub file: Option<Arc<File>>,
}

/// The finished analysis of one direction.
#[derive(Debug, Clone)]
pub struct DirectionResult {
    /// SHA-256 of the reassembled bytes (gaps excluded), hex.
    pub sha256: String,
    /// The direction's verdict (its bytes and its messages combined).
    pub class: Classification,
    /// The byte counts of its messages: those `class`'s figures are computed on.
    pub histogram: Histogram,
    /// The first bytes (all of them with `--full`).
    pub preview: Vec<u8>,
    /// Where bytes are missing inside the preview: (position in `preview`, bytes missing).
    pub preview_gaps: Vec<(usize, u64)>,
    /// Whether there is more than the preview shows.
    pub preview_truncated: bool,
    /// How the direction was cut into messages.
    pub mode: Option<Mode>,
    /// The messages, up to a limit.
    pub messages: Vec<Message>,
    /// Messages past the limit.
    pub unlisted_messages: u64,
    /// The file written by `--extract`.
    pub extract: Option<PathBuf>,
    /// Retransmissions of delivered bytes that differed from the first copy.
    pub conflicting_retransmissions: u64,
    /// What the direction said in rchat's protocol, when it speaks it (boxed, as
    /// `protocol`: a result is kept for every stream until the report, and most have neither).
    pub rchat: Option<Box<RchatReport>>,
    /// Key material found in its messages.
    pub keys: Vec<FoundKey>,
    /// What it said in TLS, SSH or HTTP, when it speaks one of them.
    pub protocol: Option<Box<Protocol>>,
}

/// A closed stream's two results, client to server first: boxed, so that the lists and the
/// table they pass through on their way to the report hold a pointer per stream.
pub type StreamResult = Box<[DirectionResult; 2]>;

struct Extract {
    path: PathBuf,
    out: Option<BufWriter<File>>,
}

struct Analysis {
    sha: Sha256Stream,
    preview: Preview,
    splitter: Splitter,
    /// Boxed: only `--extract` has one.
    extract: Option<Box<Extract>>,
    recent: Recent,
    conflicts: u64,
    rchat: Watch<FrameLog>,
    protocols: Protocols,
}

impl Analysis {
    fn new(opts: &Work, extract: Option<PathBuf>) -> Self {
        let (keys, file) = (opts.keys.clone(), opts.file.as_ref());
        Analysis {
            sha: Sha256Stream::new(),
            preview: Preview::new(opts.full, file.is_some()),
            splitter: file
                .map_or_else(Splitter::new, |f| Splitter::keeping(Sample::in_file(f.clone()))),
            extract: extract.map(|path| Box::new(Extract { path, out: None })),
            recent: Recent::default(),
            conflicts: 0,
            rchat: Watch::new(FrameLog::new(keys)),
            protocols: Protocols::new(),
        }
    }

    /// The analysis of a direction of stream `stream`; `ends`, from and to, name its
    /// `--extract` file (known whenever `--extract` is given).
    fn for_stream(opts: &Work, stream: usize, ends: Option<Ends>) -> Self {
        let path = opts
            .extract
            .as_ref()
            .zip(ends)
            .map(|(d, (from, to))| d.join(extract_name(stream, from, to)));
        Analysis::new(opts, path)
    }

    fn write(&mut self, bytes: &[u8], errors: &mut Vec<String>) {
        write(&mut self.extract, bytes, errors);
    }

    fn finish(mut self, file: Option<&File>, errors: &mut Vec<String>) -> DirectionResult {
        // An empty direction still gets its (empty) file.
        self.write(&[], errors);
        let extract = match self.extract.map(|e| *e) {
            Some(Extract { path, out: Some(mut out) }) => match out.flush() {
                Ok(()) => Some(path),
                Err(e) => {
                    errors.push(format!("cannot write {}: {e}", path.display()));
                    None
                }
            },
            _ => None,
        };
        let found = self.splitter.finish();
        // The verdict judges what the people sent: keys, handshakes and framing are named
        // beside it.
        let said: Vec<classify::Brief> =
            found.messages.iter().filter(|m| m.part == Part::Message).map(|m| m.brief).collect();
        let apart = found.messages.iter().filter(|m| m.part != Part::Message).count() as u64;
        let class = classify::combine(&found.overall, &said).without_messages(apart);
        let (mode, messages, unlisted) = (found.mode, found.messages, found.unlisted);
        let preview = self.preview.finish(file);
        DirectionResult {
            sha256: hex::encode(self.sha.finish()),
            class,
            histogram: found.histogram,
            preview: preview.bytes,
            preview_gaps: preview.gaps,
            preview_truncated: preview.truncated,
            mode,
            messages,
            unlisted_messages: unlisted,
            extract,
            conflicting_retransmissions: self.conflicts,
            rchat: self.rchat.finish().map(Box::new),
            keys: found.keys,
            protocol: self.protocols.finish().map(Box::new),
        }
    }
}

/// Write `bytes` to the direction's `--extract` file (made at the first call); on an error,
/// say so and write no more.
fn write(extract: &mut Option<Box<Extract>>, bytes: &[u8], errors: &mut Vec<String>) {
    let Some(ex) = extract else { return };
    if ex.out.is_none() {
        match File::create(&ex.path) {
            Ok(f) => ex.out = Some(BufWriter::with_capacity(256 * 1024, f)),
            Err(e) => {
                errors.push(format!("cannot write {}: {e}", ex.path.display()));
                *extract = None;
                return;
            }
        }
    }
    if let Some(out) = &mut ex.out
        && let Err(e) = out.write_all(bytes)
    {
        errors.push(format!("cannot write {}: {e}", ex.path.display()));
        *extract = None;
    }
}

/// The text tshark's Follow TCP Stream puts where bytes are missing (raw output included).
pub fn missing_marker(len: u64) -> Vec<u8> {
    let mut m = format!("[{len} bytes missing in capture file]").into_bytes();
    m.push(0);
    m
}

/// The `--extract` file name of one direction.
pub fn extract_name(id: usize, from: (IpAddr, u16), to: (IpAddr, u16)) -> String {
    format!("stream{id}-{}_{}-{}_{}.bin", from.0, from.1, to.0, to.1)
}

/// A stream still open: the analysis of each direction, made at the direction's first event
/// (so that a connection that carries no data in one direction, or in either, as in a port
/// scan, costs no analysis there), and its two ends when `--extract` names files after them
/// (boxed: a table entry per open stream stays small). A direction that never had an analysis
/// is analysed at the close as one that got nothing: the same result.
struct Live {
    ends: Option<Box<Ends>>,
    dirs: [Option<Box<Analysis>>; 2],
}

/// A stream's client and server, address and port.
type Ends = ((IpAddr, u16), (IpAddr, u16));

impl Live {
    /// The ends of the direction `dir`, from and to, if kept.
    fn ends(&self, dir: Dir) -> Option<Ends> {
        let &(client, server) = self.ends.as_deref()?;
        Some(match dir {
            Dir::ClientToServer => (client, server),
            Dir::ServerToClient => (server, client),
        })
    }
}

type Open = HashMap<usize, Live, foldhash::fast::RandomState>;

/// The analysis of one direction of an open stream, made if it has none yet.
fn direction<'o>(
    open: &'o mut Open,
    opts: &Work,
    stream: usize,
    dir: Dir,
) -> Option<&'o mut Analysis> {
    let live = open.get_mut(&stream)?;
    let ends = live.ends(dir);
    let slot = live.dirs.get_mut(dir as usize)?;
    Some(slot.get_or_insert_with(|| Box::new(Analysis::for_stream(opts, stream, ends))))
}

/// Runs every direction of every stream through its consumers.
pub struct Analyses {
    opts: Work,
    /// Streams still open, by id (closed ones leave no trace here).
    open: Open,
    /// Closed streams' results, in the order they closed, with their ids. Kept as a list, not
    /// indexed by stream id: each shard holds only its own streams' (a table indexed by id
    /// in every shard cost a slot per stream of the capture in each of them).
    results: Vec<(usize, StreamResult)>,
    /// One more than the highest stream id opened ([`Analyses::into_results`] is that long).
    opened: usize,
    /// Problems writing `--extract` files.
    pub errors: Vec<String>,
    /// Counting tables for each direction's splitter in turn (see [`Splitter::run`]).
    tallies: Option<Box<Tallies>>,
}

impl Analyses {
    /// Consumers configured by `opts`.
    pub fn new(opts: Work) -> Self {
        Analyses {
            opts,
            open: HashMap::default(),
            results: Vec::new(),
            opened: 0,
            errors: Vec::new(),
            tallies: Some(Box::default()),
        }
    }

    /// Create the folder for `--extract` files.
    pub fn prepare(dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn get(&mut self, stream: usize, dir: Dir) -> Option<&mut Analysis> {
        direction(&mut self.open, &self.opts, stream, dir)
    }

    /// Everything [`Sink::data`] does with each piece of a run but the hash: the run must then
    /// go to [`Analyses::hash_runs`] before the stream closes. Hashing the runs of many
    /// directions at once is faster (see [`digest`]).
    pub fn take_run(&mut self, stream: usize, dir: Dir, pieces: &[Delivered<'_>]) {
        let mut errors = Vec::new();
        let file = self.opts.file.as_deref();
        if let Some(a) = direction(&mut self.open, &self.opts, stream, dir) {
            let mut run = a.splitter.run(&mut self.tallies);
            for &Delivered { offset, bytes: captured, new_run, time_ns } in pieces {
                let bytes = captured.bytes();
                a.preview.push(captured, file);
                run.time(time_ns);
                run.data(offset, captured, new_run);
                a.rchat.data(offset, bytes);
                a.protocols.data(offset, bytes);
                write(&mut a.extract, bytes, &mut errors);
            }
            drop(run);
            a.recent.remember_all(pieces);
        }
        if self.tallies.is_none() {
            self.tallies = Some(Box::default());
        }
        self.errors.append(&mut errors);
    }

    /// Hash runs given to [`Analyses::take_run`], several directions at a time: each run is
    /// a direction and the range of its pieces in `delivered`. The runs of one direction are
    /// taken in the order given.
    pub fn hash_runs(
        &mut self,
        delivered: &[Delivered<'_>],
        runs: &[(usize, Dir, std::ops::Range<usize>)],
    ) {
        let mut order: Vec<usize> = (0..runs.len()).collect();
        // Stable: a direction's runs stay in order.
        order.sort_by_key(|&i| runs.get(i).map(|&(stream, dir, _)| (stream, dir as usize)));
        let mut pieces: Vec<&[u8]> = Vec::with_capacity(delivered.len());
        // Each direction's hasher, lent out of it for the time of the hashing, and where its
        // pieces are in `pieces`.
        let mut lent: Vec<(usize, Dir, Sha256Stream, std::ops::Range<usize>)> =
            Vec::with_capacity(runs.len());
        for (stream, dir, range) in order.iter().filter_map(|&i| runs.get(i)) {
            let (stream, dir) = (*stream, *dir);
            let from = pieces.len();
            let run = delivered.get(range.clone()).unwrap_or(&[]);
            pieces.extend(run.iter().map(|p| p.bytes.bytes()));
            match lent.last_mut() {
                Some((s, d, _, range)) if *s == stream && *d == dir => range.end = pieces.len(),
                _ => {
                    if let Some(a) = self.get(stream, dir) {
                        let h = std::mem::take(&mut a.sha);
                        lent.push((stream, dir, h, from..pieces.len()));
                    }
                }
            }
        }
        let mut jobs: Vec<digest::Job<'_, '_, &[u8]>> = lent
            .iter_mut()
            .map(|(_, _, h, range)| (h, pieces.get(range.clone()).unwrap_or(&[])))
            .collect();
        digest::update_many(&mut jobs);
        for (stream, dir, h, _) in lent {
            if let Some(a) = self.get(stream, dir) {
                a.sha = h;
            }
        }
    }

    /// [`Sink::retransmit`], looking for the first copy in `mapped` (windows of the capture
    /// file still at hand) before reading it back from the file.
    pub fn retransmit_near(
        &mut self,
        stream: usize,
        dir: Dir,
        offset: u64,
        bytes: &[u8],
        mapped: &[Arc<Block>],
    ) {
        let file = self.opts.file.as_deref();
        // Only bytes delivered before are retransmitted: a direction without its analysis
        // yet has none, and remembers nothing they could differ from.
        let a =
            self.open.get_mut(&stream).and_then(|l| l.dirs.get_mut(dir as usize)?.as_deref_mut());
        if let Some(a) = a
            && a.recent.differs(offset, bytes, file, mapped)
        {
            a.conflicts += 1;
        }
    }

    /// The results, indexed by stream id (`None` for a stream not closed, or not this
    /// sink's), up to the highest stream id opened.
    pub fn into_results(self) -> Vec<Option<StreamResult>> {
        let mut all = Vec::new();
        all.resize_with(self.opened, || None);
        for (id, r) in self.results {
            if let Some(slot) = all.get_mut(id) {
                *slot = Some(r);
            }
        }
        all
    }

    /// The closed streams' results with their ids, in the order the streams closed.
    pub fn into_closed(self) -> Vec<(usize, StreamResult)> {
        self.results
    }
}

impl Sink for Analyses {
    fn open(&mut self, stream: usize, client: (IpAddr, u16), server: (IpAddr, u16)) {
        self.opened = self.opened.max(stream + 1);
        let ends = self.opts.extract.is_some().then(|| Box::new((client, server)));
        self.open.insert(stream, Live { ends, dirs: [None, None] });
    }

    /// One piece at a time, hashed on its own: the plain path, kept as the reference the
    /// batched one (`parallel`, through [`Analyses::take_run`] and [`Analyses::hash_runs`])
    /// is tested against.
    fn data(
        &mut self,
        stream: usize,
        dir: Dir,
        offset: u64,
        bytes: Captured<'_>,
        new_run: bool,
        time_ns: i64,
    ) {
        // As the reference, without noting where the bytes came from.
        let bytes = Captured::from(bytes.bytes());
        self.take_run(stream, dir, &[Delivered { offset, bytes, new_run, time_ns }]);
        if let Some(a) = self.get(stream, dir) {
            a.sha.update(bytes.bytes());
        }
    }

    fn gap(&mut self, stream: usize, dir: Dir, offset: u64, len: u64, snaplen: bool) {
        let mut errors = Vec::new();
        if let Some(a) = self.get(stream, dir) {
            a.splitter.gap();
            a.rchat.gap(offset);
            a.protocols.gap(offset);
            a.preview.gap(len);
            // Like tshark: a marker where bytes were lost, nothing where the snaplen cut them.
            if !snaplen {
                a.write(&missing_marker(len), &mut errors);
            }
        }
        self.errors.append(&mut errors);
    }

    fn retransmit(&mut self, stream: usize, dir: Dir, offset: u64, bytes: &[u8]) {
        self.retransmit_near(stream, dir, offset, bytes, &[]);
    }

    fn close(&mut self, stream: usize) {
        let Some(mut live) = self.open.remove(&stream) else { return };
        let opts = &self.opts;
        let [c2s, s2c] = [Dir::ClientToServer, Dir::ServerToClient].map(|dir| {
            let ends = live.ends(dir);
            live.dirs
                .get_mut(dir as usize)
                .and_then(Option::take)
                .map_or_else(|| Analysis::for_stream(opts, stream, ends), |a| *a)
        });
        let mut errors = Vec::new();
        let file = opts.file.as_deref();
        let done = [c2s.finish(file, &mut errors), s2c.finish(file, &mut errors)];
        self.errors.append(&mut errors);
        self.results.push((stream, Box::new(done)));
    }
}
