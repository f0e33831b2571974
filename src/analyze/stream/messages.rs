//! Cutting one direction's byte stream into messages, as it flows past, and naming each one's
//! part of the conversation.
//!
//! Owns the choice of how to cut (rchat frames when the direction opens with rchat's frame
//! magic; a protocol's own framing, TLS records, SSH packets, HTTP messages or length prefixes,
//! when `recognise::framing` says the first bytes open one; lines when they are text; otherwise
//! the sender's writes: a run of segments ends when the other side answers, at a pause, or with
//! the short PSH segment that ends a write). Text is cut at each newline and at each write,
//! except that a PEM block (`-----BEGIN` to `-----END`) is one message, and a write that does
//! not start as text is one message whatever its newline bytes. Each message's first 16 bytes
//! tell its [`Part`]: a protocol's handshake or framing, rchat's HELLO, or a message; a message
//! that may be key material (a PEM block, an OpenSSH line, JSON, DER) is kept, up to
//! [`KEY_SCAN`] bytes, until it ends, and `recognise::keys` looks for keys in it. Only the
//! bytes of [`Part::Message`] parts count for the direction's verdict.
//!
//! It sees bytes, run boundaries and when each piece was delivered (each message keeps the time
//! of its first byte), keeps a bounded prefix, a bounded list of messages
//! and keys, and never holds a whole message in memory but a possible key: each is classified
//! as it streams. A run of pieces may be counted in tables the caller keeps
//! ([`Splitter::run`]), so that its accumulators add their counts once per run instead of once
//! per piece. rchat frames are cut by the protocol's own [`Deframer`], the one the chat reads
//! its socket with.

use serde::Serialize;

use crate::analyze::GrowFromOne;
use crate::analyze::classify::{Accumulator, Brief, Classification, Histogram, Scratch};
use crate::analyze::input::Captured;
use crate::analyze::input::sample::Sample;
use crate::analyze::recognise::keys::{self, KeyMaterial};
use crate::analyze::recognise::{self, Cutter, Framing, Part, Unframed};
use crate::protocol::deframe::{Deframer, Event};
use crate::protocol::wire as frame;

/// Bytes examined before deciding how to cut the stream.
const PREFIX: usize = 512;
/// Messages listed per direction; later ones are counted only.
pub const MAX_MESSAGES: usize = 1000;

/// How a direction is cut into messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// rchat frames.
    Frames,
    /// Text lines.
    Lines,
    /// The sender's runs of segments.
    Runs,
    /// TLS records.
    Tls,
    /// SSH's identification line and clear-text packets (then the sender's runs).
    Ssh,
    /// HTTP/1.x header blocks and bodies (then the sender's runs, for a body of unknown length).
    Http,
    /// A big-endian length before each message.
    LengthPrefix,
}

impl From<Framing> for Mode {
    fn from(f: Framing) -> Self {
        match f {
            Framing::Tls => Mode::Tls,
            Framing::Ssh => Mode::Ssh,
            Framing::Http => Mode::Http,
            Framing::LengthPrefix(_) => Mode::LengthPrefix,
        }
    }
}

/// Bytes of a message's start kept for [`Message::head`].
pub const HEAD: usize = 8;

/// One message and its verdict.
#[derive(Debug, Clone, Copy)]
pub struct Message {
    /// Stream offset of its first byte.
    pub offset: u64,
    /// Its length in bytes.
    pub length: u64,
    /// The verdict on its bytes, and how sure.
    pub brief: Brief,
    /// What part of the conversation it is: only [`Part::Message`] parts make the verdict.
    pub part: Part,
    /// Its first bytes (up to [`HEAD`]; fewer in a shorter message).
    pub head: [u8; HEAD],
    /// When the packet that delivered its first byte was captured (nanoseconds since the Unix
    /// epoch; see [`Splitter::time`]).
    pub time_ns: i64,
    /// The Shannon entropy of its bytes, bits per byte.
    pub entropy: f32,
}

/// Key material found in a direction, where it lies in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundKey {
    /// Stream offset of the key's first byte.
    pub offset: u64,
    /// What the key is (its `offset` is within its message).
    pub key: KeyMaterial,
}

/// Bytes of a message's start looked at before its part is known.
const DECIDE: usize = 16;
/// The most bytes of a message that may be key material kept to look for keys in at its end:
/// a longer message is judged as a message.
pub const KEY_SCAN: usize = 16 * 1024;
/// Keys listed per direction.
pub const MAX_FOUND_KEYS: usize = 16;

/// How an open message's bytes are being counted.
#[derive(Debug)]
enum Counting {
    /// Its first bytes, kept until its part can be told.
    Pending { head: [u8; DECIDE], len: u8 },
    /// A message: its bytes count for the direction's verdict.
    Counted,
    /// It may be key material: its bytes are kept until it ends, and count for the verdict
    /// only if no key is in them.
    Candidate(Vec<u8>),
    /// A part that is not a message: its bytes do not count for the verdict.
    Apart(Part),
}

#[derive(Debug)]
struct Open {
    offset: u64,
    length: u64,
    /// Its own counts, [deferred](Accumulator::deferred) until it ends; `None` for the first
    /// message counted while the direction's counts were empty: its bytes are exactly what
    /// the direction's accumulator has seen when it ends, so they are not classified twice.
    acc: Option<Accumulator>,
    /// Whether it is listed ([`MAX_MESSAGES`]).
    listed: bool,
    counting: Counting,
    head: [u8; HEAD],
    time_ns: i64,
}

/// Counting tables for a run of pieces ([`Splitter::run`]): one for the whole direction, one
/// for the open message.
#[derive(Debug, Default)]
pub struct Tallies {
    overall: Scratch,
    message: Scratch,
}

/// A run of pieces being fed to a [`Splitter`] (see [`Splitter::run`]): when it ends, every
/// count is added and the tables go back where they came from.
#[derive(Debug)]
pub struct Run<'s> {
    splitter: &'s mut Splitter,
    home: &'s mut Option<Box<Tallies>>,
}

impl Run<'_> {
    /// [`Splitter::time`] for the pieces of the run that follow.
    pub fn time(&mut self, time_ns: i64) {
        self.splitter.time(time_ns);
    }

    /// [`Splitter::data`], counted in the run's tables.
    pub fn data(&mut self, offset: u64, bytes: Captured<'_>, new_run: bool) {
        self.splitter.take(offset, bytes, new_run);
    }
}

impl Drop for Run<'_> {
    fn drop(&mut self) {
        self.splitter.add_counts();
        *self.home = self.splitter.tables.take();
    }
}

/// What a [`Splitter`] found.
#[derive(Debug)]
pub struct Finished {
    /// The verdict on the bytes of the direction's messages ([`Part::Message`]): keys,
    /// handshakes and framing left out.
    pub overall: Classification,
    /// How the direction was cut.
    pub mode: Option<Mode>,
    /// The messages, up to [`MAX_MESSAGES`].
    pub messages: Vec<Message>,
    /// Messages past the limit.
    pub unlisted: u64,
    /// Key material found in the messages, up to [`MAX_FOUND_KEYS`].
    pub keys: Vec<FoundKey>,
    /// The byte counts `overall` was made of.
    pub histogram: Histogram,
}

/// Cuts a direction into messages as bytes arrive, and classifies the direction and each
/// message.
#[derive(Debug)]
pub struct Splitter {
    mode: Option<Mode>,
    prefix: Vec<u8>,
    /// Offsets (relative to the prefix) where a new run started, and when, while undecided.
    prefix_runs: Vec<(usize, i64)>,
    prefix_offset: u64,
    /// When the prefix's first piece was delivered.
    prefix_time: i64,
    /// When the piece being fed was delivered ([`Splitter::time`]).
    now: i64,
    /// Boxed: most of a short direction's life has no message open (it is undecided, or
    /// between lines), and an open one is 232 bytes.
    open: Option<Box<Open>>,
    frames: Deframer,
    /// The protocol's own cutter, in [`Mode::Tls`], [`Mode::Ssh`], [`Mode::Http`] and
    /// [`Mode::LengthPrefix`].
    cutter: Option<Box<dyn Cutter + Send>>,
    lines: Lines,
    done: Vec<Message>,
    /// Whether a message was judged on the direction's own counts (the first one counted,
    /// while they were empty: see [`Open::acc`]).
    judged_on_overall: bool,
    /// Messages not listed because of [`MAX_MESSAGES`].
    pub unlisted: u64,
    /// Every byte of the direction's messages.
    overall: Accumulator,
    /// Messages opened so far (listed or not).
    opened: u64,
    keys: Vec<FoundKey>,
    /// The counting tables of the run being fed ([`Splitter::run`]), holding counts not yet
    /// added to the accumulators.
    tables: Option<Box<Tallies>>,
}

impl std::fmt::Debug for dyn Cutter + Send {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cutter")
    }
}

impl Default for Splitter {
    fn default() -> Self {
        Self::new()
    }
}

impl Splitter {
    /// A splitter that has seen nothing.
    pub fn new() -> Self {
        Splitter {
            mode: None,
            prefix: Vec::new(),
            prefix_runs: Vec::new(),
            prefix_offset: 0,
            prefix_time: 0,
            now: 0,
            open: None,
            frames: Deframer::new(),
            cutter: None,
            lines: Lines::default(),
            done: Vec::new(),
            judged_on_overall: false,
            unlisted: 0,
            overall: Accumulator::new(),
            opened: 0,
            keys: Vec::new(),
            tables: None,
        }
    }

    /// A splitter whose direction keeps its first bytes in `sample` (see
    /// [`Accumulator::with_sample`]).
    pub fn keeping(sample: Sample) -> Self {
        Splitter { overall: Accumulator::with_sample(sample), ..Self::new() }
    }

    /// The way the stream is being cut (decided after the first bytes).
    pub fn mode(&self) -> Option<Mode> {
        self.mode
    }

    /// Feed a run of pieces, counting them in `tables` (taken from it for the run, and put
    /// back when the [`Run`] ends, every count added): the same results as [`Splitter::data`]
    /// on each piece, with the counts added once per run.
    pub fn run<'s>(&'s mut self, tables: &'s mut Option<Box<Tallies>>) -> Run<'s> {
        self.add_counts();
        self.tables = tables.take();
        if self.tables.is_some() {
            // The counts will be added to these tables at the end of the run.
            self.overall.prefetch();
            if let Some(acc) = self.open.as_ref().and_then(|o| o.acc.as_ref()) {
                acc.prefetch();
            }
        }
        Run { splitter: self, home: tables }
    }

    /// Add the counts waiting in the run's tables to their accumulators.
    fn add_counts(&mut self) {
        if let Some(t) = &mut self.tables {
            self.overall.add_counts(&mut t.overall);
            if let Some(acc) = self.open.as_mut().and_then(|o| o.acc.as_mut()) {
                acc.add_counts(&mut t.message);
            }
        }
    }

    /// The pieces fed next were delivered by a packet captured at `time_ns`: a message that
    /// starts in them is of that time.
    pub fn time(&mut self, time_ns: i64) {
        self.now = time_ns;
    }

    /// Bytes at `offset`; `new_run` when the sender starts a new run of segments.
    pub fn data(&mut self, offset: u64, bytes: Captured<'_>, new_run: bool) {
        self.take(offset, bytes, new_run);
    }

    fn take(&mut self, offset: u64, bytes: Captured<'_>, new_run: bool) {
        if self.mode.is_none() {
            if self.prefix.is_empty() {
                self.prefix_offset = offset;
                self.prefix_time = self.now;
            }
            if new_run && self.prefix_runs.len() < 64 {
                self.prefix_runs.push((self.prefix.len(), self.now));
            }
            let room = PREFIX - self.prefix.len();
            let take = room.min(bytes.len());
            self.prefix.extend_from_slice(bytes.first(take).bytes());
            if self.prefix.len() < PREFIX {
                return;
            }
            self.decide(Some((offset, bytes)));
            self.feed(offset + take as u64, bytes.after(take), false);
            return;
        }
        self.feed(offset, bytes, new_run);
    }

    /// Bytes are missing here: the current message ends.
    pub fn gap(&mut self) {
        if self.mode.is_none() {
            self.decide(None);
        }
        self.end_message(None);
        // Lost bytes lose the framing: the rest is cut by runs.
        if self.mode == Some(Mode::Frames) {
            self.mode = Some(Mode::Runs);
        }
        self.cutter = None;
    }

    /// No more bytes: the verdict on the direction's messages and the list of messages.
    pub fn finish(mut self) -> Finished {
        if self.mode.is_none() && !self.prefix.is_empty() {
            self.decide(None);
        }
        self.end_message(None);
        self.add_counts();
        let overall = self.overall.finish();
        Finished {
            overall,
            mode: self.mode,
            messages: self.done,
            unlisted: self.unlisted,
            keys: self.keys,
            histogram: self.overall.into_histogram(),
        }
    }

    /// Decide how to cut, and cut the prefix; `current` is the piece being fed (its offset and
    /// bytes), whose bytes stand for the prefix's where they are the same (they keep their
    /// origin).
    fn decide(&mut self, current: Option<(u64, Captured<'_>)>) {
        let now = self.now;
        let prefix = std::mem::take(&mut self.prefix);
        let timed = std::mem::take(&mut self.prefix_runs);
        let runs: Vec<usize> = timed.iter().map(|&(at, _)| at).collect();
        let mut writes = runs.clone();
        if writes.first() != Some(&0) {
            writes.insert(0, 0);
        }
        let mode = if prefix.starts_with(&frame::MAGIC) {
            Mode::Frames
        } else if let Some((framing, cutter)) = recognise::framing(&prefix, &writes) {
            self.cutter = Some(cutter);
            Mode::from(framing)
        } else if looks_like_text(&prefix) {
            Mode::Lines
        } else {
            Mode::Runs
        };
        self.mode = Some(mode);
        let mut points = runs.clone();
        points.push(0);
        points.push(prefix.len());
        points.sort_unstable();
        points.dedup();
        for w in points.windows(2) {
            if let ([a, b], Some(piece)) = (w, prefix.get(w[0]..w[1])) {
                let (from, to) = (self.prefix_offset + *a as u64, self.prefix_offset + *b as u64);
                let piece = match current {
                    Some((at, bytes)) if from >= at && to <= at + bytes.len() as u64 => {
                        bytes.get((from - at) as usize..(to - at) as usize).unwrap_or_default()
                    }
                    _ => Captured::from(piece),
                };
                // Each run's messages are of the time its first piece came.
                let came = timed.iter().rev().find(|&&(at, _)| at <= *a);
                self.now = came.map_or(self.prefix_time, |&(_, t)| t);
                self.feed(from, piece, runs.contains(a));
            }
        }
        self.now = now;
    }

    fn feed(&mut self, offset: u64, bytes: Captured<'_>, new_run: bool) {
        match self.mode {
            Some(Mode::Runs) | None => {
                if new_run {
                    self.end_message(None);
                }
                self.append(offset, bytes);
            }
            Some(Mode::Lines) => self.feed_lines(offset, bytes, new_run),
            Some(Mode::Frames) => self.feed_frames(offset, bytes),
            Some(Mode::Tls | Mode::Ssh | Mode::Http | Mode::LengthPrefix) => {
                if self.cutter.is_some() {
                    self.feed_cut(offset, bytes, new_run)
                } else {
                    // The framing ended (SSH after NEWKEYS, a body of unknown length, lost
                    // bytes): the rest is cut by the sender's writes.
                    if new_run {
                        self.end_message(None);
                    }
                    self.append(offset, bytes);
                }
            }
        }
    }

    fn feed_lines(&mut self, offset: u64, bytes: Captured<'_>, new_run: bool) {
        // A new write ends the message too (programs that send text without a newline),
        // except inside a PEM block, which may come a line per write.
        if new_run && !self.lines.pem {
            self.end_message(None);
        }
        if new_run && self.open.is_none() && !bytes.is_empty() {
            // A write that does not start as text (ciphertext sent after a key in the clear)
            // is one message, whatever newline bytes it holds. (The direction's first write
            // started as text: that is why it is cut by lines.)
            let start = bytes.first(64).bytes();
            let ascii = |b: &u8| matches!(b, 0x20..=0x7e | b'\n' | b'\r' | b'\t');
            self.lines.binary = !start.iter().take(16).all(ascii) && !looks_like_text(start);
        }
        if self.lines.binary {
            self.append(offset, bytes);
            return;
        }
        let mut at = 0;
        while at < bytes.len() {
            let rest = bytes.after(at);
            let newline = memchr::memchr(b'\n', rest.bytes());
            let line = newline.map_or(rest, |i| rest.first(i + 1));
            self.lines.note(line.bytes());
            self.append(offset + at as u64, line);
            at += line.len();
            let length = self.open.as_ref().map_or(0, |o| o.length);
            if newline.is_some() && self.lines.line_ended(length) {
                self.end_message(None);
            }
        }
    }

    fn feed_frames(&mut self, offset: u64, bytes: Captured<'_>) {
        let mut at = 0usize;
        while at < bytes.len() {
            let rest = bytes.after(at);
            match self.frames.push(rest.bytes()) {
                Ok(step) => {
                    self.append(offset + at as u64, rest.first(step.used));
                    at += step.used;
                    let ended = match step.event {
                        Event::End => true,
                        // A frame with an empty body ends with its header.
                        Event::Header(h) if h.len == 0 => {
                            matches!(self.frames.push(&[]), Ok(s) if s.event == Event::End)
                        }
                        _ => false,
                    };
                    if ended {
                        self.end_message(None);
                    }
                }
                Err(_) => {
                    // Not a frame after all: the bytes from here on are cut by runs.
                    self.mode = Some(Mode::Runs);
                    self.append(offset + at as u64, rest);
                    return;
                }
            }
        }
    }

    /// Bytes of a direction cut by its protocol's [`Cutter`].
    fn feed_cut(&mut self, offset: u64, bytes: Captured<'_>, new_run: bool) {
        let mut at = 0usize;
        while at < bytes.len() {
            let rest = bytes.after(at);
            let Some(cutter) = self.cutter.as_mut() else { break };
            match cutter.push(rest.bytes()) {
                Ok(cut) if cut.used > 0 || cut.ended.is_some() => {
                    let used = cut.used.min(rest.len());
                    self.append(offset + at as u64, rest.first(used));
                    at += used;
                    if let Some(part) = cut.ended {
                        self.end_message(Some(part));
                    }
                }
                // A cutter that takes nothing would never end: the rest is cut by runs.
                Ok(_) | Err(Unframed) => {
                    self.cutter = None;
                    if new_run && at == 0 {
                        self.end_message(None);
                    }
                    // The message the framing had open goes on to the end of the write.
                    self.append(offset + at as u64, rest);
                    return;
                }
            }
        }
    }

    fn append(&mut self, offset: u64, bytes: Captured<'_>) {
        if bytes.is_empty() {
            return;
        }
        if self.open.is_none() {
            let listed = self.done.len() < MAX_MESSAGES;
            self.opened += 1;
            self.open = Some(Box::new(Open {
                offset,
                length: 0,
                acc: None,
                listed,
                counting: Counting::Pending { head: [0; DECIDE], len: 0 },
                head: [0; HEAD],
                time_ns: self.now,
            }));
        }
        let mut bytes = bytes;
        if let Some(Open { counting: Counting::Pending { head, len }, .. }) =
            self.open.as_deref_mut()
            && *len == 0
            && bytes.len() >= DECIDE
        {
            // The usual case: the message's first piece tells its part by itself, and is
            // counted whole.
            if let Some(first) = bytes.bytes().get(..DECIDE) {
                head.copy_from_slice(first);
            }
            *len = DECIDE as u8;
            self.decide_part_counting(None, false);
            self.count(bytes);
            return;
        }
        if let Some(Open { counting: Counting::Pending { head, len }, length, .. }) =
            self.open.as_deref_mut()
        {
            let have = usize::from(*len);
            let take = (DECIDE - have).min(bytes.len());
            if let Some(to) = head.get_mut(have..have + take) {
                to.copy_from_slice(bytes.first(take).bytes());
            }
            *len += take as u8;
            *length += take as u64;
            bytes = bytes.after(take);
            if usize::from(*len) < DECIDE {
                return;
            }
            self.decide_part(None);
        }
        if bytes.is_empty() {
            return;
        }
        self.count(bytes);
    }

    /// Count bytes of the open message, whose part is decided.
    fn count(&mut self, bytes: Captured<'_>) {
        let Some(open) = &mut self.open else { return };
        open.length += bytes.len() as u64;
        let counted = match &mut open.counting {
            Counting::Counted => true,
            Counting::Candidate(kept) if kept.len() + bytes.len() <= KEY_SCAN => {
                kept.extend_from_slice(bytes.bytes());
                false
            }
            Counting::Candidate(kept) => {
                // Too long to be a key: a message after all, counted from its start.
                let kept = std::mem::take(kept);
                open.counting = Counting::Counted;
                match &mut self.tables {
                    Some(t) => self.overall.count_in(Captured::from(&kept[..]), &mut t.overall),
                    None => self.overall.update(&kept),
                }
                true
            }
            Counting::Apart(_) | Counting::Pending { .. } => false,
        };
        // Every byte of a counted message passes here exactly once, in order.
        if counted {
            match &mut self.tables {
                Some(t) => self.overall.count_in(bytes, &mut t.overall),
                None => self.overall.update_captured(bytes),
            }
        }
        if let Some(acc) = &mut open.acc {
            match &mut self.tables {
                Some(t) => acc.count_in(bytes, &mut t.message),
                None => acc.update_captured(bytes),
            }
        }
    }

    /// The open message's first bytes are in (or it ended, as `ended` when its cutter said):
    /// tell its part, and count its first bytes accordingly.
    fn decide_part(&mut self, ended: Option<Part>) {
        self.decide_part_counting(ended, true);
    }

    /// [`Splitter::decide_part`]; the first bytes are counted only if `count_head` (otherwise
    /// the caller counts them, with the rest of their piece).
    fn decide_part_counting(&mut self, ended: Option<Part>, count_head: bool) {
        let mode = self.mode;
        let from_cutter = self.cutter.as_ref().and_then(|c| c.part());
        let overall_empty = self.overall.is_empty();
        let Some(open) = &mut self.open else { return };
        let Counting::Pending { head, len } = open.counting else { return };
        let first = head.get(..usize::from(len)).unwrap_or(&[]);
        let n = first.len().min(HEAD);
        if let (Some(to), Some(from)) = (open.head.get_mut(..n), first.get(..n)) {
            to.copy_from_slice(from);
        }
        let part = match mode {
            Some(Mode::Frames) => frame_part(first),
            _ => ended.or(from_cutter).unwrap_or(Part::Message),
        };
        open.counting = if part != Part::Message {
            Counting::Apart(part)
        } else if may_be_key(first) {
            Counting::Candidate(Vec::new())
        } else {
            Counting::Counted
        };
        let counted = matches!(open.counting, Counting::Counted);
        open.acc = if !open.listed || (counted && overall_empty && !self.judged_on_overall) {
            None
        } else {
            Some(Accumulator::deferred())
        };
        if !count_head {
            return;
        }
        // The first bytes were already added to the message's length: count them (from the
        // copy in `head`) like any other bytes of the message.
        open.length -= first.len() as u64;
        let kept = usize::from(len).min(DECIDE);
        self.count(Captured::from(head.get(..kept).unwrap_or(&[])));
    }

    fn end_message(&mut self, ended: Option<Part>) {
        self.lines = Lines::default();
        if matches!(self.open.as_deref(), Some(Open { counting: Counting::Pending { .. }, .. })) {
            self.decide_part(ended);
        }
        // Every count in, before any verdict (and the message table free for the next one).
        self.add_counts();
        let Some(open) = self.open.take() else { return };
        let part = match open.counting {
            Counting::Candidate(kept) => {
                let keys = keys::find_keys(&kept);
                if keys.is_empty() {
                    // Not a key: a message, counted now.
                    self.overall.update(&kept);
                    Part::Message
                } else {
                    for key in keys {
                        if self.keys.len() < MAX_FOUND_KEYS {
                            self.keys
                                .push(FoundKey { offset: open.offset + key.offset as u64, key });
                        }
                    }
                    Part::Key
                }
            }
            Counting::Apart(part) => part,
            Counting::Counted | Counting::Pending { .. } => Part::Message,
        };
        if open.listed {
            // Only the verdict of each message is kept, and its entropy (for the pictures).
            // The first one counted may have been counted in the direction's own counts
            // alone: they hold exactly its bytes now.
            let (brief, entropy) = match &open.acc {
                Some(acc) => acc.brief_and_entropy(),
                None => {
                    self.judged_on_overall = true;
                    self.overall.brief_and_entropy()
                }
            };
            self.done.push_grown(Message {
                offset: open.offset,
                length: open.length,
                brief,
                part,
                head: open.head,
                time_ns: open.time_ns,
                entropy: entropy as f32,
            });
        } else {
            self.unlisted += 1;
        }
    }
}

/// The part of rchat's frame whose first bytes are `first` (its header: magic, version, type).
fn frame_part(first: &[u8]) -> Part {
    match first.get(5).copied().and_then(frame::FrameType::from_byte) {
        Some(frame::FrameType::Hello) => Part::Key,
        Some(frame::FrameType::Auth) => Part::Handshake,
        Some(frame::FrameType::Roster | frame::FrameType::Joined) => Part::Key,
        Some(frame::FrameType::Bye | frame::FrameType::Busy | frame::FrameType::Left) => {
            Part::Framing
        }
        Some(frame::FrameType::Message | frame::FrameType::Room) | None => Part::Message,
    }
}

/// Whether a message opening with `first` may be key material worth keeping until it ends:
/// a PEM block, an OpenSSH key line, a JSON object, DER (bare, behind a 2- or 4-byte length,
/// or as base64).
fn may_be_key(first: &[u8]) -> bool {
    let text = first.trim_ascii_start();
    text.starts_with(b"-----BEGIN")
        || text.starts_with(b"ssh-")
        || text.starts_with(b"ecdsa-")
        || text.starts_with(b"sk-")
        || text.starts_with(b"{")
        || text.starts_with(b"MI")
        || text.starts_with(b"MC")
        || first.first() == Some(&0x30)
        || first.get(2) == Some(&0x30)
        || first.get(4) == Some(&0x30)
}

/// The longest PEM block kept as one message; a longer one is cut at its lines.
pub const PEM_MAX: u64 = 64 * 1024;

/// Where a direction cut by lines stands: the first bytes of the line being read, and whether
/// the open message is a PEM block (`-----BEGIN ...` up to its `-----END ...` line), which is
/// one message, not one per line.
#[derive(Debug, Default)]
struct Lines {
    head: [u8; 11],
    head_len: u8,
    /// The open message's first line has ended.
    past_first: bool,
    pem: bool,
    /// The open message did not start as text: it is one message to the end of its write.
    binary: bool,
}

impl Lines {
    /// Bytes of the current line (up to its newline).
    fn note(&mut self, bytes: &[u8]) {
        let have = usize::from(self.head_len);
        let take = (self.head.len() - have).min(bytes.len());
        if let (Some(to), Some(from)) = (self.head.get_mut(have..have + take), bytes.get(..take)) {
            to.copy_from_slice(from);
            self.head_len += take as u8;
        }
    }

    /// A line ended, the open message being `length` bytes long: whether the message ends.
    fn line_ended(&mut self, length: u64) -> bool {
        let head = self.head.get(..usize::from(self.head_len)).unwrap_or(&[]);
        let first = !self.past_first;
        let begin = head.starts_with(b"-----BEGIN ");
        let end = head.starts_with(b"-----END ");
        self.head_len = 0;
        self.past_first = true;
        if first && begin {
            self.pem = true;
            return false;
        }
        if self.pem && !end && length < PEM_MAX {
            return false;
        }
        true
    }
}

/// Whether the first bytes of a direction read as text (UTF-8, mostly printable).
pub fn looks_like_text(b: &[u8]) -> bool {
    if b.is_empty() {
        return false;
    }
    let valid = match std::str::from_utf8(b) {
        Ok(s) => s,
        // A multi-byte character cut at the end of the prefix is still text.
        Err(e) if e.error_len().is_none() && b.len() - e.valid_up_to() < 4 => {
            std::str::from_utf8(b.get(..e.valid_up_to()).unwrap_or(&[])).unwrap_or("")
        }
        Err(_) => return false,
    };
    let total = valid.chars().count().max(1);
    let printable =
        valid.chars().filter(|c| !c.is_control() || matches!(c, '\n' | '\r' | '\t')).count();
    printable * 100 >= total * 95
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(chunks: &[(&[u8], bool)]) -> (Option<Mode>, Vec<(u64, u64)>) {
        let mut s = Splitter::new();
        let mut off = 0;
        for (b, run) in chunks {
            s.data(off, Captured::from(*b), *run);
            off += b.len() as u64;
        }
        let f = s.finish();
        (f.mode, f.messages.iter().map(|m| (m.offset, m.length)).collect())
    }

    #[test]
    fn lines() {
        let (m, v) = cut(&[(b"hi there\nsecond li", true), (b"ne\nlast", false)]);
        assert_eq!(m, Some(Mode::Lines));
        assert_eq!(v, vec![(0, 9), (9, 12), (21, 4)]);
    }

    #[test]
    fn text_without_newlines_is_cut_at_writes() {
        let (m, v) = cut(&[(b"hello", true), (b"how are you?", true), (b"fine", true)]);
        assert_eq!(m, Some(Mode::Lines));
        assert_eq!(v, vec![(0, 5), (5, 12), (17, 4)]);
    }

    #[test]
    fn a_pem_block_is_one_message_even_a_line_per_write() {
        let pem = "-----BEGIN RSA PUBLIC KEY-----\nMIGJAoGBAL+abc\r\nde+fg==\n\
                   -----END RSA PUBLIC KEY-----\n";
        let mut chunks: Vec<(&[u8], bool)> =
            pem.split_inclusive('\n').map(|l| (l.as_bytes(), true)).collect();
        chunks.push((b"hi bob\n", true));
        chunks.push((b"-----BEGIN not at the start\n", false));
        let (m, v) = cut(&chunks);
        assert_eq!(m, Some(Mode::Lines));
        let n = pem.len() as u64;
        assert_eq!(v, vec![(0, n), (n, 7), (n + 7, 28)]);
        // A PEM block cut off before its END line is ended by the cap.
        let mut long = b"-----BEGIN PUBLIC KEY-----\n".to_vec();
        while (long.len() as u64) < PEM_MAX + 100 {
            long.extend_from_slice(
                b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n",
            );
        }
        let (_, v) = cut(&[(&long, true)]);
        assert!(v.len() > 1 && v[0].1 >= PEM_MAX && v[0].1 < PEM_MAX + 64, "{v:?}");
    }

    #[test]
    fn a_binary_write_after_text_is_one_message_whatever_its_newlines() {
        let pem = std::fs::read("tests/data/peers/original-rsa-1024-host.pem").unwrap();
        let mut block = vec![0x8fu8, b'\n', 0x00, 0xff, b'\n'];
        block.extend(std::iter::repeat_n(0xa5, 123));
        // Enough text first for the direction to be cut by lines.
        let mut text = "x".repeat(400).into_bytes();
        text.push(b'\n');
        let (m, v) =
            cut(&[(&pem, true), (&text, true), (&block, true), (&block, true), (b"bye\n", true)]);
        assert_eq!(m, Some(Mode::Lines));
        let (n, t) = (pem.len() as u64, text.len() as u64);
        assert_eq!(v, vec![(0, n), (n, t), (n + t, 128), (n + t + 128, 128), (n + t + 256, 4)]);
        let mut s = Splitter::new();
        s.data(0, Captured::from(&pem[..]), true);
        s.data(n, Captured::from(&block[..]), true);
        let f = s.finish();
        assert_eq!(f.messages[0].part, Part::Key);
        assert_eq!(f.messages[1].part, Part::Message);
        assert_eq!(f.keys.len(), 1);
        assert_eq!(f.keys[0].key.bits, Some(1024));
        // The verdict's figures are those of the message alone.
        assert_eq!(f.overall.stats.bytes, 128);
    }

    #[test]
    fn frames() {
        let mut f = b"RCHT\x01\x01\0\0\0\x03abc".to_vec();
        f.extend_from_slice(b"RCHT\x01\x04\0\0\0\0");
        f.extend_from_slice(b"RCHT\x01\x03\0\0\0\x02");
        let (m, v) = cut(&[(&f[..7], true), (&f[7..], false), (b"xy", false)]);
        assert_eq!(m, Some(Mode::Frames));
        assert_eq!(v, vec![(0, 13), (13, 10), (23, 12)]);
    }

    #[test]
    fn bad_frame_header_falls_back_to_runs() {
        let (m, v) = cut(&[(b"RCHT\x09\x01\0\0\0\x03abc", true)]);
        assert_eq!(m, Some(Mode::Runs));
        assert_eq!(v, vec![(0, 13)]);
    }

    #[test]
    fn runs_for_binary() {
        let a = [0u8, 1, 2, 255, 254];
        let (m, v) = cut(&[(&a, true), (&a, false), (&a, true)]);
        assert_eq!(m, Some(Mode::Runs));
        assert_eq!(v, vec![(0, 10), (10, 5)]);
    }

    #[test]
    fn each_message_is_classified_on_its_own_bytes() {
        let mut s = Splitter::new();
        let text = b"first line\nsecond, longer line\nthird\n";
        s.data(0, Captured::from(&text[..5]), true);
        s.data(5, Captured::from(&text[5..]), false);
        let f = s.finish();
        assert_eq!(f.overall.stats.bytes, text.len() as u64);
        assert_eq!(f.messages.len(), 3);
        for m in &f.messages {
            let alone =
                crate::analyze::classify::classify(&text[m.offset as usize..][..m.length as usize]);
            assert_eq!(m.brief, alone.brief(), "{m:?}");
        }
    }

    #[test]
    fn text_in_other_scripts() {
        assert!(looks_like_text("Привет, как дела?\n你好".as_bytes()));
        assert!(!looks_like_text(&[0, 1, 2, 3, 200]));
    }
}
