//! Spreading the per-byte work of one capture over several cores.
//!
//! Reassembly is sequential (packets arrive in file order), but what happens to the
//! reassembled bytes (SHA-256, the classifier, messages, extract files) is independent per
//! stream. This module owns a [`Sink`] that puts each event into a batch for the worker thread
//! that owns the stream (stream id modulo the number of workers), and the workers, each
//! running its own [`Analyses`]. Bytes still in one of the capture reader's blocks (a mapped
//! window of the file, or a read buffer) are shared with the worker, not copied; only bytes
//! reassembled from out-of-order segments are. A worker takes each batch stream by stream, a
//! few streams at a time: it hashes their bytes together (see `digest`), then hands each run
//! of one direction's pieces over at once. Channels are bounded, so memory
//! stays bounded whatever the capture size. It never reorders the events of one stream and
//! never looks at the bytes. With several files analysed at once (each on a core of its own),
//! the same batches are run on the reading thread as they fill, without worker threads.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::thread::JoinHandle;

use super::capture::Block;
use super::direction::{Analyses, DirectionResult, Options};
use super::reassembly::{Delivered, Dir, Sink};

/// Bytes gathered for one worker before the batch is handed over (a stream then has several
/// pieces in most batches).
const BATCH_BYTES: usize = 2 * 1024 * 1024;
/// The first batch of each worker is this small, and each next one twice the size up to
/// [`BATCH_BYTES`], so that the workers start early.
const FIRST_BATCH_BYTES: usize = 128 * 1024;
/// Events gathered before the batch is handed over, whatever their size.
const BATCH_EVENTS: usize = 16384;
/// Batches waiting per worker.
const QUEUE: usize = 2;
/// Reader's blocks one batch may hold on to. A worker whose streams carry little keeps its
/// batch open for long: without this bound it could keep every window of the file it spans
/// mapped. With it, at most `workers * (QUEUE + 2) * MAX_BATCH_BLOCKS` blocks are held.
const MAX_BATCH_BLOCKS: usize = 2;

enum Event {
    Open {
        stream: usize,
        client: (IpAddr, u16),
        server: (IpAddr, u16),
    },
    Data {
        stream: usize,
        dir: Dir,
        offset: u64,
        start: usize,
        len: usize,
        new_run: bool,
    },
    /// Bytes still in one of the reader's blocks (`Batch::blocks[block]`): shared, not copied.
    Shared {
        stream: usize,
        dir: Dir,
        offset: u64,
        block: usize,
        start: usize,
        len: usize,
        new_run: bool,
    },
    Gap {
        stream: usize,
        dir: Dir,
        offset: u64,
        len: u64,
        snaplen: bool,
    },
    Retransmit {
        stream: usize,
        dir: Dir,
        offset: u64,
        start: usize,
        len: usize,
    },
    Close {
        stream: usize,
    },
}

#[derive(Default)]
struct Batch {
    events: Vec<Event>,
    bytes: Vec<u8>,
    /// The reader's blocks that `Shared` events point into (each held once per batch, so
    /// the reference count is not touched per event).
    blocks: Vec<Arc<Block>>,
    /// Bytes referenced in shared blocks.
    shared: usize,
}

struct Worker {
    runner: Runner,
    batch: Batch,
    /// Bytes that make the current batch full.
    limit: usize,
}

/// Where a worker's full batches are run.
enum Runner {
    /// On a thread of its own.
    Thread {
        tx: Option<SyncSender<Batch>>,
        /// Emptied batches coming back, to be filled again without new allocations.
        spare: Receiver<Batch>,
        handle: Option<JoinHandle<Analyses>>,
    },
    /// On the reading thread, at once.
    Inline { sink: Box<Analyses>, order: Vec<(usize, usize)> },
}

/// A [`Sink`] that gathers events into batches, stream by stream, and runs the analyses on
/// them on worker threads, or on the reading thread itself.
pub struct Sharded {
    workers: Vec<Worker>,
    /// The reader's current block (see [`Sink::backing`]).
    block: Option<Arc<Block>>,
    /// Set when a worker could not be reached (it panicked or never started).
    failed: bool,
}

impl Event {
    fn stream(&self) -> usize {
        match *self {
            Event::Open { stream, .. }
            | Event::Data { stream, .. }
            | Event::Shared { stream, .. }
            | Event::Gap { stream, .. }
            | Event::Retransmit { stream, .. }
            | Event::Close { stream } => stream,
        }
    }
}

/// The bytes of a `Data` or `Shared` event: (stream, direction, the piece).
fn delivered<'a>(batch: &'a Batch, ev: &Event) -> Option<(usize, Dir, Delivered<'a>)> {
    let (stream, dir, offset, bytes, new_run, file_at) = match *ev {
        Event::Data { stream, dir, offset, start, len, new_run } => {
            (stream, dir, offset, batch.bytes.get(start..start + len), new_run, None)
        }
        Event::Shared { stream, dir, offset, block, start, len, new_run } => {
            let block = batch.blocks.get(block);
            let bytes = block.and_then(|b| b.get(start..start + len));
            let file_at = block.and_then(|b| b.file_at()).map(|at| at + start as u64);
            (stream, dir, offset, bytes, new_run, file_at)
        }
        _ => return None,
    };
    Some((stream, dir, Delivered { offset, bytes: bytes.unwrap_or(&[]), new_run, file_at }))
}

/// Streams whose bytes are hashed together (see [`Analyses::hash_runs`]).
const HASHED_TOGETHER: usize = 4;

/// The events of a few streams, and the pieces of their bytes, gathered before they are run.
#[derive(Default)]
struct Group<'b> {
    /// (stream, index in the batch) of each event, each stream's in order.
    events: &'b [(usize, usize)],
    pieces: Vec<Delivered<'b>>,
    /// Every run of consecutive pieces of one direction: (stream, direction, pieces).
    runs: Vec<(usize, Dir, std::ops::Range<usize>)>,
}

impl<'b> Group<'b> {
    /// Gather the events of the first few streams of `order`, returning the rest. With
    /// `ahead`, ask for the pieces' bytes to be brought into the cache: they are the next
    /// group's, fetched from memory while the current group is worked on.
    fn gather(
        &mut self,
        batch: &'b Batch,
        order: &'b [(usize, usize)],
        ahead: bool,
    ) -> &'b [(usize, usize)] {
        let mut streams = 0;
        let mut last = None;
        let end = order
            .iter()
            .position(|&(stream, _)| {
                if last != Some(stream) {
                    last = Some(stream);
                    streams += 1;
                }
                streams > HASHED_TOGETHER
            })
            .unwrap_or(order.len());
        let (events, rest) = order.split_at(end);
        self.events = events;
        self.pieces.clear();
        self.runs.clear();
        let mut run_of = None;
        for ev in events.iter().filter_map(|&(_, i)| batch.events.get(i)) {
            let Some((stream, dir, p)) = delivered(batch, ev) else {
                run_of = None;
                continue;
            };
            match self.runs.last_mut() {
                Some(run) if run_of == Some((stream, dir)) => run.2.end += 1,
                _ => self.runs.push((stream, dir, self.pieces.len()..self.pieces.len() + 1)),
            }
            run_of = Some((stream, dir));
            if ahead {
                super::cache::prefetch_all(p.bytes);
            }
            self.pieces.push(p);
        }
        rest
    }
}

/// Run one batch through `sink`. Streams are independent, so the events are taken stream by
/// stream (each stream's in their order), a few streams at a time: their bytes are hashed
/// together first, then each run of one direction's pieces is handed over at once (the
/// stream's state is looked up and its counts added up once per run) while those bytes are
/// still in the processor's cache. The next few streams' bytes are fetched from memory
/// meanwhile.
fn run_batch(sink: &mut Analyses, batch: &Batch, order: &mut Vec<(usize, usize)>) {
    order.clear();
    order.extend(batch.events.iter().enumerate().map(|(i, ev)| (ev.stream(), i)));
    // By stream, then by position in the batch: each stream's events keep their order.
    order.sort_unstable();
    let mut current = Group::default();
    let mut next = Group::default();
    let mut rest = current.gather(batch, order, false);
    while !current.events.is_empty() {
        rest = next.gather(batch, rest, true);
        run_group(sink, batch, &current);
        std::mem::swap(&mut current, &mut next);
    }
}

/// Run the events of a few streams (each stream's in order) through `sink`.
fn run_group(sink: &mut Analyses, batch: &Batch, group: &Group<'_>) {
    let events = group.events.iter().filter_map(|&(_, i)| batch.events.get(i));
    // A stream's first event opens it (if it opens in this batch): open them all first, so
    // that their bytes can be hashed.
    for ev in events.clone() {
        if let Event::Open { stream, client, server } = *ev {
            sink.open(stream, client, server);
        }
    }
    let (pieces, runs) = (&group.pieces, &group.runs);
    let hashed: Vec<(usize, Dir, &[Delivered<'_>])> = runs
        .iter()
        .map(|(stream, dir, range)| (*stream, *dir, pieces.get(range.clone()).unwrap_or(&[])))
        .collect();
    sink.hash_runs(&hashed);
    // Then everything in order, each run once its last piece is reached.
    let mut next_run = runs.iter().peekable();
    let mut seen = 0;
    for ev in events {
        match *ev {
            Event::Open { .. } => {}
            Event::Data { .. } | Event::Shared { .. } => {
                seen += 1;
                if let Some((stream, dir, range)) = next_run.next_if(|r| r.2.end == seen) {
                    sink.take_run(*stream, *dir, pieces.get(range.clone()).unwrap_or(&[]));
                }
            }
            Event::Gap { stream, dir, offset, len, snaplen } => {
                sink.gap(stream, dir, offset, len, snaplen)
            }
            Event::Retransmit { stream, dir, offset, start, len } => {
                let bytes = batch.bytes.get(start..start + len).unwrap_or(&[]);
                sink.retransmit(stream, dir, offset, bytes);
            }
            Event::Close { stream } => sink.close(stream),
        }
    }
}

fn work(rx: Receiver<Batch>, back: Sender<Batch>, opts: Options) -> Analyses {
    let mut sink = Analyses::new(opts);
    let mut order = Vec::new();
    while let Ok(mut batch) = rx.recv() {
        run_batch(&mut sink, &batch, &mut order);
        batch.clear();
        // The reader may be gone already: then the batch is simply dropped.
        let _ = back.send(batch);
    }
    sink
}

impl Batch {
    /// Empty it, keeping its allocations.
    fn clear(&mut self) {
        self.events.clear();
        self.bytes.clear();
        self.blocks.clear();
        self.shared = 0;
    }
}

impl Sharded {
    /// Start `n` workers (at least one), each on a thread of its own.
    pub fn new(n: usize, opts: &Options) -> Self {
        let workers = (0..n.max(1))
            .map(|_| {
                let (tx, rx) = sync_channel::<Batch>(QUEUE);
                let (back, spare) = channel::<Batch>();
                let o = opts.clone();
                let handle = std::thread::Builder::new()
                    .name("rchat-analyze".into())
                    .spawn(move || work(rx, back, o))
                    .ok();
                let runner = Runner::Thread { tx: Some(tx), spare, handle };
                Worker { runner, batch: Batch::default(), limit: FIRST_BATCH_BYTES }
            })
            .collect();
        Sharded { workers, block: None, failed: false }
    }

    /// One worker that runs each batch on the calling thread as soon as it is full: the same
    /// work without threads (for a file analysed beside others, each on its own core).
    pub fn inline(opts: &Options) -> Self {
        let runner =
            Runner::Inline { sink: Box::new(Analyses::new(opts.clone())), order: Vec::new() };
        let worker = Worker { runner, batch: Batch::default(), limit: BATCH_BYTES };
        Sharded { workers: vec![worker], block: None, failed: false }
    }

    /// Which worker owns `stream`.
    fn index(&self, stream: usize) -> usize {
        // `new` starts at least one worker.
        stream % self.workers.len()
    }

    fn worker(&mut self, stream: usize) -> &mut Worker {
        let i = self.index(stream);
        &mut self.workers[i]
    }

    fn push(&mut self, stream: usize, ev: Event) {
        let w = self.worker(stream);
        w.batch.events.push(ev);
        let size = w.batch.bytes.len() + w.batch.shared;
        if size >= w.limit || w.batch.events.len() >= BATCH_EVENTS {
            self.hand_over(stream);
        }
    }

    /// Hand the batch of the worker that owns `stream` over and start a new one.
    fn hand_over(&mut self, stream: usize) {
        let w = self.worker(stream);
        w.limit = (w.limit * 2).min(BATCH_BYTES);
        let sent = match &mut w.runner {
            Runner::Thread { tx, spare, .. } => {
                let fresh = spare.try_recv().unwrap_or_default();
                let full = std::mem::replace(&mut w.batch, fresh);
                tx.as_ref().is_some_and(|tx| tx.send(full).is_ok())
            }
            Runner::Inline { sink, order } => {
                run_batch(sink, &w.batch, order);
                w.batch.clear();
                true
            }
        };
        if !sent {
            self.failed = true;
        }
    }

    /// Run what is left and wait for the workers; every stream's results, indexed by stream
    /// id, and the errors.
    pub fn finish(mut self) -> (Vec<Option<[DirectionResult; 2]>>, Vec<String>) {
        let mut results: Vec<Option<[DirectionResult; 2]>> = Vec::new();
        let mut errors = Vec::new();
        for w in &mut self.workers {
            let last = std::mem::take(&mut w.batch);
            match &mut w.runner {
                Runner::Thread { tx, .. } => {
                    if tx.take().is_none_or(|tx| tx.send(last).is_err()) {
                        self.failed = true;
                    }
                }
                Runner::Inline { sink, order } => run_batch(sink, &last, order),
            }
        }
        for w in self.workers {
            let sink = match w.runner {
                Runner::Thread { handle: Some(handle), .. } => match handle.join() {
                    Ok(sink) => sink,
                    Err(_) => {
                        self.failed = true;
                        continue;
                    }
                },
                Runner::Thread { handle: None, .. } => {
                    self.failed = true;
                    continue;
                }
                Runner::Inline { sink, .. } => *sink,
            };
            let mut sink = sink;
            errors.append(&mut sink.errors);
            for (id, r) in sink.into_results().into_iter().enumerate() {
                if r.is_some() {
                    if results.len() <= id {
                        results.resize_with(id + 1, || None);
                    }
                    if let Some(slot) = results.get_mut(id) {
                        *slot = r;
                    }
                }
            }
        }
        if self.failed {
            errors.push("an analysis thread failed: some streams may be missing".into());
        }
        (results, errors)
    }
}

impl Sink for Sharded {
    fn open(&mut self, stream: usize, client: (IpAddr, u16), server: (IpAddr, u16)) {
        self.push(stream, Event::Open { stream, client, server });
    }

    fn data(&mut self, stream: usize, dir: Dir, offset: u64, bytes: &[u8], new_run: bool) {
        // Bytes inside the reader's block are shared; others (reassembled from out-of-order
        // segments) are copied.
        let inside = self.block.as_ref().and_then(|block| {
            let base = block.as_ptr() as usize;
            let at = bytes.as_ptr() as usize;
            (at >= base && at + bytes.len() <= base + block.len())
                .then(|| (Arc::as_ptr(block), at - base))
        });
        if let Some((key, start)) = inside {
            let len = bytes.len();
            let i = self.index(stream);
            let held = &self.workers[i].batch.blocks;
            let new_block = held.last().is_none_or(|b| Arc::as_ptr(b) != key);
            if new_block && held.len() >= MAX_BATCH_BLOCKS {
                self.hand_over(stream);
            }
            let Some(block) = &self.block else { return };
            let batch = &mut self.workers[i].batch;
            batch.shared += len;
            if new_block {
                batch.blocks.push(Arc::clone(block));
            }
            let block = batch.blocks.len().saturating_sub(1);
            let ev = Event::Shared { stream, dir, offset, block, start, len, new_run };
            self.push(stream, ev);
            return;
        }
        let w = self.worker(stream);
        let start = w.batch.bytes.len();
        w.batch.bytes.extend_from_slice(bytes);
        self.push(stream, Event::Data { stream, dir, offset, start, len: bytes.len(), new_run });
    }

    fn gap(&mut self, stream: usize, dir: Dir, offset: u64, len: u64, snaplen: bool) {
        self.push(stream, Event::Gap { stream, dir, offset, len, snaplen });
    }

    fn retransmit(&mut self, stream: usize, dir: Dir, offset: u64, bytes: &[u8]) {
        let w = self.worker(stream);
        let start = w.batch.bytes.len();
        w.batch.bytes.extend_from_slice(bytes);
        self.push(stream, Event::Retransmit { stream, dir, offset, start, len: bytes.len() });
    }

    fn close(&mut self, stream: usize) {
        self.push(stream, Event::Close { stream });
    }

    fn backing(&mut self, block: &Arc<Block>) {
        if !self.block.as_ref().is_some_and(|b| Arc::ptr_eq(b, block)) {
            self.block = Some(Arc::clone(block));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// Feed the same events to `sink`: eleven streams interleaved, both directions, pieces
    /// of every size, gaps and retransmissions between runs, some streams closing mid-way.
    fn feed(sink: &mut dyn Sink) {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let streams = 11;
        let mut offsets = vec![[0u64; 2]; streams];
        let mut open = vec![true; streams];
        for s in 0..streams {
            sink.open(s, (ip, 40000 + s as u16), (ip, 9999));
        }
        for round in 0..3000 {
            let s = (next() % streams as u64) as usize;
            if !open[s] {
                continue;
            }
            let dir =
                if next().is_multiple_of(3) { Dir::ServerToClient } else { Dir::ClientToServer };
            let at = offsets[s][dir as usize];
            match next() % 20 {
                0 => {
                    sink.gap(s, dir, at, 100, false);
                    offsets[s][dir as usize] += 100;
                }
                1 if at > 10 => sink.retransmit(s, dir, at - 10, &[0x55; 10]),
                2 if round > 2000 && s.is_multiple_of(3) => {
                    sink.close(s);
                    open[s] = false;
                }
                _ => {
                    let len = (next() % 1500) as usize;
                    // Text in some streams, random bytes in the others.
                    let bytes: Vec<u8> = (0..len)
                        .map(|i| {
                            if s.is_multiple_of(2) {
                                b"hello world\n"[i % 12]
                            } else {
                                next() as u8
                            }
                        })
                        .collect();
                    sink.data(s, dir, at, &bytes, next().is_multiple_of(4));
                    offsets[s][dir as usize] += len as u64;
                }
            }
        }
        for (s, open) in open.iter().enumerate() {
            if *open {
                sink.close(s);
            }
        }
    }

    #[test]
    fn workers_give_the_results_of_one_serial_analysis() {
        let opts = Options::default();
        let mut serial = Analyses::new(opts.clone());
        feed(&mut serial);
        let want = serial.into_results();
        for workers in [0, 1, 2, 3] {
            // 0: one worker run inline, on this thread.
            let mut sharded =
                if workers == 0 { Sharded::inline(&opts) } else { Sharded::new(workers, &opts) };
            feed(&mut sharded);
            let (got, errors) = sharded.finish();
            assert!(errors.is_empty(), "{errors:?}");
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                // Everything the report shows, hashes included.
                assert_eq!(format!("{g:?}"), format!("{w:?}"), "{workers} workers");
            }
        }
    }
}
