//! `rchat analyze`: read saved captures, rebuild the chat's TCP streams and say whether an
//! eavesdropper could read them.
//!
//! This module validates the command line, runs one analysis per file (in parallel on all
//! cores), and prints each report or the one error line of a file that is not a capture. The
//! pipeline of one file is `capture` (records) → `decode` (TCP segments) → `reassembly`
//! (in-order bytes) → `direction` (hash, classifier, preview, messages, extract file) →
//! `report`; `parallel` spreads the per-byte work over worker threads, `digest` hashes several
//! directions at once, `sample` keeps the first bytes the classifier's encoding checks need,
//! and `cache` asks the processor for bytes ahead of their use. It never prints from inside
//! the pipeline and never exits: errors are returned.

pub mod classify;
pub mod engine;
pub mod input;
pub mod rchat;
pub mod report;
pub mod stream;

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::crypto::Identity;
use engine::direction::{Analyses, Work};
use engine::parallel::Sharded;
use input::decode::{Decoded, Defrag};
use input::{Magic, OpenError, Reader};
use report::{DirectionReport, Directions, FileReport, MessageReport, StreamReport};
use stream::{Dir, Reassembler};

/// Why a capture could not be analysed.
#[derive(Debug, thiserror::Error)]
pub enum AnalyzeError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// The file has no bytes.
    #[error(
        "{path} is empty (0 bytes): nothing was saved; capture again and save as pcap or pcapng"
    )]
    Empty {
        /// The file.
        path: String,
    },
    /// The file is gzip-compressed.
    #[error("{path} is a gzip file: gunzip it first")]
    Gzip {
        /// The file.
        path: String,
    },
    /// The file is something else.
    #[error(
        "{path} is not a pcap or pcapng capture (it starts with {start}): in Wireshark use \
         File > Save As and pick pcap or pcapng"
    )]
    NotCapture {
        /// The file.
        path: String,
        /// Its first bytes, hex.
        start: String,
    },
    /// The file header is damaged.
    #[error("{path} is not a readable capture: {what}")]
    BadHeader {
        /// The file.
        path: String,
        /// What is wrong.
        what: String,
    },
    /// The `--extract` folder cannot be made.
    #[error("cannot create the --extract folder {path}: {source}")]
    ExtractDir {
        /// The folder.
        path: String,
        /// Why.
        source: io::Error,
    },
}

/// Validated settings of one run (`cmd::analyze` makes them from the flags).
#[derive(Debug, Clone)]
pub struct Options {
    /// Ports analysed; empty means all.
    pub ports: Vec<u16>,
    /// Keep everything for the preview.
    pub full: bool,
    /// Folder for `--extract` files (one sub-folder per file when there are several).
    pub extract: Option<PathBuf>,
    /// Threads hashing and classifying the streams of one file; 0 does it on the thread that
    /// reads the file.
    pub workers: usize,
    /// Private keys (`--key`) to decrypt the rchat messages sent to them.
    pub keys: Vec<Arc<Identity>>,
}

/// Pseudo-random numbers for tests (xorshift64): the same sequence for the same seed.
#[cfg(test)]
pub(crate) fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

/// Analyse several files on all cores; results in the order of `files`.
pub fn analyze_files(
    files: &[PathBuf],
    cfg: &Options,
    several: bool,
) -> Vec<Result<FileReport, AnalyzeError>> {
    let slots: Vec<Mutex<Option<Result<FileReport, AnalyzeError>>>> =
        files.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let workers = crate::cores().min(files.len());
    std::thread::scope(|scope| {
        for _ in 0..workers.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = files.get(i) else { break };
                    let mut cfg = cfg.clone();
                    if several && let Some(dir) = &cfg.extract {
                        let stem = path.file_name().map_or_else(
                            || format!("file{i}"),
                            |n| n.to_string_lossy().into_owned(),
                        );
                        cfg.extract = Some(dir.join(stem));
                    }
                    let result = analyze_file(path, &cfg);
                    if let Some(slot) = slots.get(i)
                        && let Ok(mut s) = slot.lock()
                    {
                        *s = Some(result);
                    }
                }
            });
        }
    });
    slots
        .into_iter()
        .map(|m| {
            m.into_inner().ok().flatten().unwrap_or_else(|| {
                Err(AnalyzeError::Read {
                    path: String::new(),
                    source: io::Error::other("the analysis did not finish"),
                })
            })
        })
        .collect()
}

/// Analyse one capture file (mapped into memory when it is a regular file).
pub fn analyze_file(path: &Path, cfg: &Options) -> Result<FileReport, AnalyzeError> {
    let name = path.display().to_string();
    let file =
        File::open(path).map_err(|source| AnalyzeError::Read { path: name.clone(), source })?;
    let reader = Reader::open_file(file).map_err(|e| open_error(&name, e))?;
    analyze_opened(name, reader, cfg)
}

/// Analyse a capture read from `input`; `name` is how reports and errors call it.
pub fn analyze_input(
    name: String,
    input: impl io::Read,
    cfg: &Options,
) -> Result<FileReport, AnalyzeError> {
    let reader = Reader::open(input).map_err(|e| open_error(&name, e))?;
    analyze_opened(name, reader, cfg)
}

fn open_error(name: &str, e: OpenError) -> AnalyzeError {
    let path = name.to_string();
    match e {
        OpenError::Io(source) => AnalyzeError::Read { path, source },
        OpenError::NotCapture(Magic::Empty) => AnalyzeError::Empty { path },
        OpenError::NotCapture(Magic::Gzip) => AnalyzeError::Gzip { path },
        OpenError::NotCapture(Magic::Other(b, n)) => {
            AnalyzeError::NotCapture { path, start: b.get(..n).map(hex_bytes).unwrap_or_default() }
        }
        OpenError::NotCapture(Magic::Capture(_)) => {
            AnalyzeError::BadHeader { path, what: "unreadable header".into() }
        }
        OpenError::BadHeader(what) => AnalyzeError::BadHeader { path, what },
    }
}

fn analyze_opened<R: io::Read>(
    name: String,
    reader: Reader<R>,
    cfg: &Options,
) -> Result<FileReport, AnalyzeError> {
    if let Some(dir) = &cfg.extract {
        Analyses::prepare(dir).map_err(|source| AnalyzeError::ExtractDir {
            path: dir.display().to_string(),
            source,
        })?;
    }
    analyze_reader(name, reader, cfg)
}

fn hex_bytes(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" ")
}

/// Counts of packets that were not TCP segments of interest.
#[derive(Debug, Default)]
struct Skipped {
    malformed: u64,
    unknown_link: Vec<(u32, u64)>,
    fragments: u64,
}

fn analyze_reader<R: io::Read>(
    name: String,
    mut reader: Reader<R>,
    cfg: &Options,
) -> Result<FileReport, AnalyzeError> {
    let mut re = Reassembler::new(cfg.ports.clone());
    let opts = Work {
        full: cfg.full,
        extract: cfg.extract.clone(),
        keys: cfg.keys.clone(),
        file: reader.mapped_file().cloned(),
    };
    let mut defrag = Defrag::default();
    let mut skipped = Skipped::default();
    let mut sink = Sharded::new(cfg.workers, &opts);
    let read = read_all(&name, &mut reader, &mut re, &mut sink, &mut defrag, &mut skipped);
    let streams = re.finish_all(&mut sink);
    let (results, mut sink_errors) = sink.finish();
    let packets = read?;
    let mut warnings = reader.take_notes();
    if let Some(stop) = reader.stop() {
        warnings.push(format!(
            "the capture stops at byte {}: {}; everything before it was analysed",
            stop.offset, stop.what
        ));
    }
    for (lt, n) in &skipped.unknown_link {
        warnings.push(format!(
            "link type {} is not one rchat reads: its {n} packet(s) were skipped",
            input::link_type_name(*lt)
        ));
    }
    if skipped.malformed > 0 {
        warnings.push(format!(
            "{} packet(s) were too short or inconsistent to decode and were skipped",
            skipped.malformed
        ));
    }
    if defrag.dropped > 0 || defrag.incomplete() > 0 {
        warnings.push(format!(
            "{} IP fragment(s) could not be put back together and were skipped",
            defrag.dropped + defrag.incomplete() as u64
        ));
    }
    warnings.append(&mut sink_errors);
    let mut reports = Vec::with_capacity(streams.len());
    for (s, result) in streams.iter().zip(results) {
        let Some([c2s, s2c]) = result else { continue };
        if s.overflowed {
            warnings.push(format!(
                "stream {}: more than {} MiB arrived out of order; the hole in front of it was \
                 declared missing",
                s.id,
                stream::OOO_CAP / (1024 * 1024)
            ));
        }
        let before = s.stats(Dir::ClientToServer).before_start_bytes
            + s.stats(Dir::ServerToClient).before_start_bytes;
        if before > 0 {
            warnings.push(format!(
                "stream {}: the capture starts mid-connection; {} sent before the first \
                 segment seen {} not in the reassembled stream",
                s.id,
                classify::plural(before, "byte", "bytes"),
                if before == 1 { "is" } else { "are" }
            ));
        }
        let c2s = direction_report(s.stats(Dir::ClientToServer), c2s);
        let s2c = direction_report(s.stats(Dir::ServerToClient), s2c);
        reports.push(StreamReport {
            id: s.id,
            client: input::decode::endpoint(s.client.0, s.client.1),
            server: input::decode::endpoint(s.server.0, s.server.1),
            start: s.start_ns as f64 / 1e9,
            end: s.end_ns as f64 / 1e9,
            verdict: report::stream_verdict(c2s.verdict, s2c.verdict),
            directions: Directions { client_to_server: c2s, server_to_client: s2c },
        });
    }
    Ok(FileReport {
        schema_version: report::SCHEMA_VERSION,
        file: name,
        format: reader.format().name(),
        link_types: reader.link_types().iter().map(|l| input::link_type_name(*l)).collect(),
        packets,
        ports: cfg.ports.clone(),
        warnings,
        streams: reports,
    })
}

/// Read every record, decode it and feed its TCP segment to reassembly. Returns the number
/// of records read.
fn read_all<R: io::Read>(
    name: &str,
    reader: &mut Reader<R>,
    re: &mut Reassembler,
    sink: &mut impl stream::Sink,
    defrag: &mut Defrag,
    skipped: &mut Skipped,
) -> Result<u64, AnalyzeError> {
    let mut packets = 0u64;
    loop {
        let rec = match reader.next_record() {
            Ok(Some(rec)) => rec,
            Ok(None) => return Ok(packets),
            Err(source) => return Err(AnalyzeError::Read { path: name.to_string(), source }),
        };
        packets += 1;
        sink.backing(rec.block);
        match input::decode::decode(rec.link_type, rec.data, defrag) {
            Decoded::Tcp(seg) => {
                re.segment(&seg, rec.ts_ns, sink);
            }
            Decoded::Fragment(Some(dgram)) => {
                skipped.fragments += 1;
                if let Some(seg) = dgram.segment() {
                    re.segment(&seg, rec.ts_ns, sink);
                }
            }
            Decoded::Fragment(None) => skipped.fragments += 1,
            Decoded::Other => {}
            Decoded::UnknownLink => {
                match skipped.unknown_link.iter_mut().find(|(l, _)| *l == rec.link_type) {
                    Some((_, n)) => *n += 1,
                    None => skipped.unknown_link.push((rec.link_type, 1)),
                }
            }
            Decoded::Malformed => skipped.malformed += 1,
        }
    }
}

fn direction_report(
    st: &stream::HalfStats,
    d: engine::direction::DirectionResult,
) -> DirectionReport {
    let (preview, preview_format) = report::preview_string(&d.preview, &d.preview_gaps);
    let c = d.class;
    DirectionReport {
        bytes: st.bytes,
        packets: st.packets,
        sha256: d.sha256,
        missing_bytes: st.missing_bytes,
        gaps: st.gaps.clone(),
        retransmitted_bytes: st.retransmitted_bytes,
        conflicting_retransmissions: st.conflicting_retransmissions + d.conflicting_retransmissions,
        snaplen_cut_bytes: st.snaplen_cut_bytes,
        before_start_bytes: st.before_start_bytes,
        entropy: c.stats.entropy,
        expected_random_entropy: c.stats.expected_random_entropy,
        printable_ratio: c.stats.printable_ratio,
        chi_square: c.stats.chi_square,
        verdict: c.verdict,
        encoding: c.encoding,
        decoded_bytes: c.decoded_bytes,
        confidence: c.confidence,
        reason: c.reason,
        preview,
        preview_format,
        preview_truncated: d.preview_truncated,
        message_mode: d.mode,
        messages: d
            .messages
            .iter()
            .map(|m| MessageReport { offset: m.offset, length: m.length, verdict: m.brief.verdict })
            .collect(),
        unlisted_messages: d.unlisted_messages,
        extract: d.extract.map(|p| p.display().to_string()),
        rchat: d.rchat.map(|mut r| {
            // Each frame was also a message of the direction: give it that verdict.
            for f in &mut r.frames {
                // Messages are listed in stream order: find the frame's by its offset.
                f.verdict = d
                    .messages
                    .binary_search_by_key(&f.offset, |m| m.offset)
                    .ok()
                    .and_then(|i| d.messages.get(i))
                    .map(|m| m.brief.verdict);
            }
            r
        }),
    }
}
