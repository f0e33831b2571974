//! Spreading the per-byte work of one capture over several cores.
//!
//! Reassembly is sequential (packets arrive in file order), but what happens to the
//! reassembled bytes (SHA-256, the classifier, messages, extract files) is independent per
//! stream. This module owns a [`Sink`] that puts each event into a batch for the shard that
//! owns the stream (stream id modulo the number of shards, a few per worker thread), each
//! shard with its own [`Analyses`], and the worker threads, which share one queue of full
//! batches: a thread takes the first batch whose shard no other thread is working on, so a
//! shard's batches run one at a time and in order, and no thread waits while another has a
//! backlog. Bytes still in one of the capture reader's blocks (a mapped window of the file,
//! or a read buffer) are shared with the workers, not copied; only bytes reassembled from
//! out-of-order segments are. A batch is taken stream by stream, a few streams at a time:
//! their bytes are hashed together (see `digest`), then each run of one direction's pieces is
//! handed over at once. The queue is bounded, so memory stays bounded whatever the capture
//! size. It never reorders the events of one stream and never looks at the bytes. With several
//! files analysed at once (each on a core of its own), the same batches are run on the reading
//! thread as they fill, without worker threads.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::Delivered;
use super::direction::{Analyses, StreamResult, Work};
use crate::analyze::input::Block;
use crate::analyze::input::Captured;
use crate::analyze::stream::{Dir, Sink};

/// Bytes gathered for one worker before the batch is handed over (a stream then has several
/// pieces in most batches).
const BATCH_BYTES: usize = 2 * 1024 * 1024;
/// The first batch of each worker is this small, and each next one twice the size up to
/// [`BATCH_BYTES`], so that the workers start early.
const FIRST_BATCH_BYTES: usize = 128 * 1024;
/// Events gathered before the batch is handed over, whatever their size.
const BATCH_EVENTS: usize = 16384;
/// Batches waiting or being worked on, per worker thread.
const QUEUE: usize = 3;
/// Shards per worker thread. A shard's batches are run one at a time, in order, by whichever
/// thread is free: with more shards than threads, no thread waits while another has a backlog.
const SHARDS_PER_THREAD: usize = 4;
/// Reader's blocks one batch may hold on to. A shard whose streams carry little keeps its
/// batch open for long: without this bound it could keep every window of the file it spans
/// mapped. With it, at most `(shards + threads * QUEUE) * MAX_BATCH_BLOCKS` blocks are held.
const MAX_BATCH_BLOCKS: usize = 2;

enum Event {
    Open {
        stream: usize,
        client: (IpAddr, u16),
        server: (IpAddr, u16),
    },
    /// Bytes copied into `Batch::bytes`, and where they are in the capture file if known.
    Data {
        stream: usize,
        dir: Dir,
        offset: u64,
        start: usize,
        len: usize,
        new_run: bool,
        file_at: Option<u64>,
        time_ns: i64,
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
        time_ns: i64,
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

/// The batch being filled for one shard of the streams.
struct Shard {
    batch: Batch,
    /// Bytes that make the current batch full.
    limit: usize,
}

/// Where full batches are run.
enum Runner {
    /// On worker threads sharing a queue.
    Threads { pool: Arc<Pool>, handles: Vec<JoinHandle<()>> },
    /// On the reading thread, at once (one shard).
    Inline { sink: Box<Analyses>, order: Vec<(usize, usize)> },
}

/// The queue the worker threads share.
struct Pool {
    state: Mutex<PoolState>,
    /// Signalled when a batch can be taken (or the queue is closed).
    work: Condvar,
    /// Signalled when a batch is done (there is room for another).
    room: Condvar,
}

struct PoolState {
    /// Full batches in the order they were handed over, with their shard.
    queue: VecDeque<(usize, Batch)>,
    /// Each shard's analyses.
    shards: Vec<Slot>,
    /// Batches queued or being worked on.
    in_flight: usize,
    /// Emptied batches, to be filled again without new allocations.
    spare: Vec<Batch>,
    /// No more batches will come.
    closed: bool,
}

/// A shard's analyses: free, taken by a thread running one of its batches, or lost to a
/// panic (its later batches are then dropped).
enum Slot {
    Free(Box<Analyses>),
    Busy,
    Lost,
}

/// A [`Sink`] that gathers events into batches, one per shard of the streams, and runs the
/// analyses on them on worker threads, or on the reading thread itself.
pub struct Sharded {
    shards: Vec<Shard>,
    runner: Runner,
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
    let (stream, dir, offset, bytes, new_run, time_ns) = match *ev {
        Event::Data { stream, dir, offset, start, len, new_run, file_at, time_ns } => {
            let bytes = batch.bytes.get(start..start + len).unwrap_or(&[]);
            (stream, dir, offset, Captured::copied_from(bytes, file_at), new_run, time_ns)
        }
        Event::Shared { stream, dir, offset, block, start, len, new_run, time_ns } => {
            let block = batch.blocks.get(block);
            let bytes = match block {
                Some(b) => Captured::in_block(b, b.get(start..start + len).unwrap_or(&[])),
                None => Captured::default(),
            };
            (stream, dir, offset, bytes, new_run, time_ns)
        }
        _ => return None,
    };
    Some((stream, dir, Delivered { offset, bytes, new_run, time_ns }))
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
                crate::analyze::engine::cache::prefetch_all(p.bytes.bytes());
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
    sink.hash_runs(pieces, runs);
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
                sink.retransmit_near(stream, dir, offset, bytes, &batch.blocks);
            }
            Event::Close { stream } => sink.close(stream),
        }
    }
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        // The lock is never held while a batch runs, so a panic cannot leave the state half
        // changed.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A worker thread: take the first queued batch whose shard is free, run it, give the shard
/// back; until the queue is closed and empty.
fn work(pool: &Pool) {
    let mut order = Vec::new();
    let mut st = pool.lock();
    loop {
        let next = st.queue.iter().position(|(shard, _)| {
            matches!(st.shards.get(*shard), Some(Slot::Free(_) | Slot::Lost))
        });
        let Some((shard, mut batch)) = next.and_then(|i| st.queue.remove(i)) else {
            if st.closed && st.queue.is_empty() {
                return;
            }
            st = pool.work.wait(st).unwrap_or_else(std::sync::PoisonError::into_inner);
            continue;
        };
        if let Some(Slot::Free(mut sink)) =
            st.shards.get_mut(shard).map(|s| std::mem::replace(s, Slot::Busy))
        {
            drop(st);
            let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                run_batch(&mut sink, &batch, &mut order);
            }));
            st = pool.lock();
            if let Some(slot) = st.shards.get_mut(shard) {
                *slot = if ran.is_ok() { Slot::Free(sink) } else { Slot::Lost };
            }
        } else if let Some(slot) = st.shards.get_mut(shard) {
            // Lost: the batch is dropped.
            *slot = Slot::Lost;
        }
        batch.clear();
        st.spare.push(batch);
        st.in_flight -= 1;
        pool.room.notify_one();
        // The shard is free again: a thread waiting for one of its batches may go on.
        pool.work.notify_all();
    }
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
    /// Start `n` worker threads sharing the work of several shards each; with none (`n` is
    /// 0, or no thread could start), one shard's batches run on the calling thread as soon as
    /// they are full.
    pub fn new(n: usize, opts: &Work) -> Self {
        if n == 0 {
            return Sharded::inline(opts);
        }
        let threads = n;
        let count = threads * SHARDS_PER_THREAD;
        let pool = Arc::new(Pool {
            state: Mutex::new(PoolState {
                queue: VecDeque::new(),
                shards: (0..count)
                    .map(|_| Slot::Free(Box::new(Analyses::new(opts.clone()))))
                    .collect(),
                in_flight: 0,
                spare: Vec::new(),
                closed: false,
            }),
            work: Condvar::new(),
            room: Condvar::new(),
        });
        let handles: Vec<JoinHandle<()>> = (0..threads)
            .filter_map(|_| {
                let pool = Arc::clone(&pool);
                std::thread::Builder::new()
                    .name("rchat-analyze".into())
                    .spawn(move || work(&pool))
                    .ok()
            })
            .collect();
        if handles.is_empty() {
            // No thread could start: do the work here.
            return Sharded::inline(opts);
        }
        let shards = (0..count)
            .map(|_| Shard { batch: Batch::default(), limit: FIRST_BATCH_BYTES })
            .collect();
        Sharded { shards, runner: Runner::Threads { pool, handles }, failed: false }
    }

    /// One shard whose batches run on the calling thread as soon as they are full: the same
    /// work without threads (for a file analysed beside others, each on its own core).
    fn inline(opts: &Work) -> Self {
        let runner =
            Runner::Inline { sink: Box::new(Analyses::new(opts.clone())), order: Vec::new() };
        let shard = Shard { batch: Batch::default(), limit: BATCH_BYTES };
        Sharded { shards: vec![shard], runner, failed: false }
    }

    /// Which shard `stream` belongs to.
    fn index(&self, stream: usize) -> usize {
        // There is always at least one shard.
        stream % self.shards.len()
    }

    fn shard(&mut self, stream: usize) -> &mut Shard {
        let i = self.index(stream);
        &mut self.shards[i]
    }

    fn push(&mut self, stream: usize, ev: Event) {
        let w = self.shard(stream);
        w.batch.events.push(ev);
        let size = w.batch.bytes.len() + w.batch.shared;
        if size >= w.limit || w.batch.events.len() >= BATCH_EVENTS {
            self.hand_over(stream);
        }
    }

    /// Copy bytes that are not in the reader's block into the batch.
    fn copy(&mut self, stream: usize, dir: Dir, piece: Delivered<'_>) {
        let Delivered { offset, bytes, new_run, time_ns } = piece;
        let file_at = bytes.file_at();
        let w = self.shard(stream);
        let start = w.batch.bytes.len();
        w.batch.bytes.extend_from_slice(bytes.bytes());
        let len = bytes.len();
        let ev = Event::Data { stream, dir, offset, start, len, new_run, file_at, time_ns };
        self.push(stream, ev);
    }

    /// Hand the batch of the shard of `stream` over and start a new one.
    fn hand_over(&mut self, stream: usize) {
        self.hand_over_shard(self.index(stream));
    }

    /// Hand shard `i`'s batch over (to the queue, or run it here) and start a new one.
    fn hand_over_shard(&mut self, i: usize) {
        let Some(w) = self.shards.get_mut(i) else { return };
        w.limit = (w.limit * 2).min(BATCH_BYTES);
        match &mut self.runner {
            Runner::Threads { pool, handles } => {
                let full = std::mem::take(&mut w.batch);
                let most = handles.len() * QUEUE;
                let mut st = pool.lock();
                while st.in_flight >= most {
                    st = pool.room.wait(st).unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                st.queue.push_back((i, full));
                st.in_flight += 1;
                w.batch = st.spare.pop().unwrap_or_default();
                drop(st);
                pool.work.notify_one();
            }
            Runner::Inline { sink, order } => {
                run_batch(sink, &w.batch, order);
                w.batch.clear();
            }
        }
    }

    /// Run what is left and wait for the workers; every stream's results, indexed by stream
    /// id, and the errors.
    pub fn finish(mut self) -> (Vec<Option<StreamResult>>, Vec<String>) {
        for i in 0..self.shards.len() {
            self.hand_over_shard(i);
        }
        let sinks: Vec<Option<Box<Analyses>>> = match self.runner {
            Runner::Threads { pool, handles } => {
                pool.lock().closed = true;
                pool.work.notify_all();
                for handle in handles {
                    if handle.join().is_err() {
                        self.failed = true;
                    }
                }
                let mut st = pool.lock();
                std::mem::take(&mut st.shards)
                    .into_iter()
                    .map(|slot| match slot {
                        Slot::Free(sink) => Some(sink),
                        Slot::Busy | Slot::Lost => None,
                    })
                    .collect()
            }
            Runner::Inline { sink, .. } => vec![Some(sink)],
        };
        let mut closed: Vec<Vec<(usize, StreamResult)>> = Vec::new();
        let mut errors = Vec::new();
        for sink in sinks {
            let Some(mut sink) = sink else {
                self.failed = true;
                continue;
            };
            errors.append(&mut sink.errors);
            closed.push(sink.into_closed());
        }
        // One table indexed by stream id, made once at its full length.
        let len = closed.iter().flatten().map(|(id, _)| id + 1).max().unwrap_or(0);
        let mut results: Vec<Option<StreamResult>> = Vec::with_capacity(len);
        results.resize_with(len, || None);
        for (id, r) in closed.into_iter().flatten() {
            if let Some(slot) = results.get_mut(id) {
                *slot = Some(r);
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

    fn data(
        &mut self,
        stream: usize,
        dir: Dir,
        offset: u64,
        bytes: Captured<'_>,
        new_run: bool,
        time_ns: i64,
    ) {
        // Bytes inside one of the reader's blocks are shared; others (reassembled from
        // out-of-order segments) are copied.
        if let Some((block, start)) = bytes.shared_block() {
            let key = Arc::as_ptr(block);
            let len = bytes.len();
            let i = self.index(stream);
            let held = &self.shards[i].batch.blocks;
            let new_block = held.last().is_none_or(|b| Arc::as_ptr(b) != key);
            if new_block && held.len() >= MAX_BATCH_BLOCKS {
                self.hand_over(stream);
            }
            let batch = &mut self.shards[i].batch;
            batch.shared += len;
            if new_block {
                batch.blocks.push(Arc::clone(block));
            }
            let block = batch.blocks.len().saturating_sub(1);
            let ev = Event::Shared { stream, dir, offset, block, start, len, new_run, time_ns };
            self.push(stream, ev);
            return;
        }
        self.copy(stream, dir, Delivered { offset, bytes, new_run, time_ns });
    }

    fn gap(&mut self, stream: usize, dir: Dir, offset: u64, len: u64, snaplen: bool) {
        self.push(stream, Event::Gap { stream, dir, offset, len, snaplen });
    }

    fn retransmit(&mut self, stream: usize, dir: Dir, offset: u64, bytes: &[u8]) {
        let w = self.shard(stream);
        let start = w.batch.bytes.len();
        w.batch.bytes.extend_from_slice(bytes);
        self.push(stream, Event::Retransmit { stream, dir, offset, start, len: bytes.len() });
    }

    fn close(&mut self, stream: usize) {
        self.push(stream, Event::Close { stream });
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
        let mut next = crate::analyze::xorshift(0x2545_f491_4f6c_dd1du64);
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
                    let run = next().is_multiple_of(4);
                    sink.data(s, dir, at, Captured::from(&bytes[..]), run, round as i64 * 1000);
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
        let opts = Work::default();
        let mut serial = Analyses::new(opts.clone());
        feed(&mut serial);
        let want = serial.into_results();
        for workers in [0, 1, 2, 3] {
            // 0: one worker run inline, on this thread.
            let mut sharded = Sharded::new(workers, &opts);
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
