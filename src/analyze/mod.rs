//! `rchat analyze`: read saved captures, rebuild their TCP streams and say whether an
//! eavesdropper could read them.
//!
//! The analysis of one file runs in stages, one folder each, in the order the data flows:
//! [`input`] (records, link layers, TCP segments) → [`stream`] (reassembly into each
//! direction's in-order bytes, cut into messages) → [`recognise`] (what a protocol the
//! analysis knows says) and [`classify`] (readable or not) → [`report`] (the document, JSON
//! and human). [`engine`] runs the per-direction work of the middle stages on worker threads
//! (hashing several directions at once, keeping the recent bytes). Captured bytes travel as
//! [`input::Captured`]: only `input` and `engine` know where in the file they lie. This module
//! validates the settings, runs one analysis per file (several files in parallel on all
//! cores), and never prints or exits: errors are returned.

pub mod classify;
pub mod engine;
pub mod input;
pub mod recognise;
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
use input::{Decoder, Magic, OpenError, Reader};
use report::{Capture, FileReport};
use stream::Reassembler;
use stream::ports::PortTally;

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

/// A list that grows from one element, by as many again each time, instead of from the four
/// a first push makes room for: with thousands of connections open, most directions' lists (its
/// messages, its sample's parts, its recent bytes' spans) hold one or two.
pub(crate) trait GrowFromOne<T> {
    /// Push `item`, making room as above when the list is full.
    fn push_grown(&mut self, item: T);
}

impl<T> GrowFromOne<T> for Vec<T> {
    fn push_grown(&mut self, item: T) {
        if self.len() == self.capacity() {
            self.reserve_exact(self.len().max(1));
        }
        self.push(item);
    }
}

impl<T> GrowFromOne<T> for std::collections::VecDeque<T> {
    fn push_grown(&mut self, item: T) {
        if self.len() == self.capacity() {
            self.reserve_exact(self.len().max(1));
        }
        self.push_back(item);
    }
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

/// Analyse several files on all cores; results in the order of `files`, their streams' reports
/// not made yet (see [`report::unmade_file_report`]: [`FileReport::make_streams`] makes them, the
/// JSON writer a few at a time as it writes them).
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
                    let result = analyze_path(path, &cfg);
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
    let mut report = analyze_path(path, cfg)?;
    report.make_streams();
    Ok(report)
}

/// [`analyze_file`], its streams' reports not made yet ([`report::unmade_file_report`]).
fn analyze_path(path: &Path, cfg: &Options) -> Result<FileReport, AnalyzeError> {
    let name = path.display().to_string();
    let file =
        File::open(path).map_err(|source| AnalyzeError::Read { path: name.clone(), source })?;
    let reader = Reader::open_file(file).map_err(|e| AnalyzeError::opening(&name, e))?;
    analyze_reader(name, reader, cfg)
}

/// Analyse a capture read from `input`; `name` is how reports and errors call it.
pub fn analyze_input(
    name: String,
    input: impl io::Read,
    cfg: &Options,
) -> Result<FileReport, AnalyzeError> {
    let reader = Reader::open(input).map_err(|e| AnalyzeError::opening(&name, e))?;
    let mut report = analyze_reader(name, reader, cfg)?;
    report.make_streams();
    Ok(report)
}

/// The stages, for one opened capture.
fn analyze_reader<R: io::Read>(
    name: String,
    mut reader: Reader<R>,
    cfg: &Options,
) -> Result<FileReport, AnalyzeError> {
    if let Some(dir) = &cfg.extract {
        Analyses::prepare(dir).map_err(|source| AnalyzeError::ExtractDir {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let work = Work {
        full: cfg.full,
        extract: cfg.extract.clone(),
        keys: cfg.keys.clone(),
        file: reader.mapped_file().cloned(),
    };
    let mut engine = Sharded::new(cfg.workers, &work);
    let mut flows = Reassembler::new(cfg.ports.clone());
    let mut decoder = Decoder::default();
    let mut elsewhere = PortTally::default();
    let read = decoder.read_all(&mut reader, |segment, ts_ns| {
        if !flows.segment(segment, ts_ns, &mut engine) {
            elsewhere.note(segment);
        }
    });
    let streams = flows.finish_all(&mut engine);
    let (results, mut engine_errors) = engine.finish();
    let packets = read.map_err(|source| AnalyzeError::Read { path: name.clone(), source })?;
    let mut warnings = decoder.warnings(&mut reader);
    warnings.append(&mut engine_errors);
    let capture = Capture {
        file: name,
        format: reader.format().name(),
        link_types: reader.link_type_names(),
        packets,
        ports: cfg.ports.clone(),
        other_ports: elsewhere.busiest(),
        warnings,
    };
    Ok(report::unmade_file_report(capture, streams, results))
}

impl AnalyzeError {
    /// Why `name` could not be opened as a capture.
    fn opening(name: &str, e: OpenError) -> Self {
        let path = name.to_string();
        match e {
            OpenError::Io(source) => AnalyzeError::Read { path, source },
            OpenError::NotCapture(Magic::Empty) => AnalyzeError::Empty { path },
            OpenError::NotCapture(Magic::Gzip) => AnalyzeError::Gzip { path },
            OpenError::NotCapture(Magic::Other(b, n)) => {
                let start = b.get(..n).map(hex_bytes).unwrap_or_default();
                AnalyzeError::NotCapture { path, start }
            }
            OpenError::NotCapture(Magic::Capture(_)) => {
                AnalyzeError::BadHeader { path, what: "unreadable header".into() }
            }
            OpenError::BadHeader(what) => AnalyzeError::BadHeader { path, what },
        }
    }
}

fn hex_bytes(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect::<Vec<_>>().join(" ")
}
