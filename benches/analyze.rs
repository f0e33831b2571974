//! Benchmark of `rchat analyze` against tcpflow and tshark on one large generated capture.
//!
//! `cargo bench --bench analyze` writes a capture of 400 interleaved TCP flows on port 9999
//! (1448-byte segments of pseudo-random bytes, some reordered, some retransmitted, server ACKs)
//! into the temporary folder, then times `rchat analyze --json`, `tcpflow -r` and
//! `tshark -q -z conv,tcp` on it with `/usr/bin/time -v`. The tools take turns for five rounds
//! (tshark, which is slow, every other round), and the whole file is read just before every
//! run so that each starts with a warm page cache. It prints for each tool the best and median
//! time and throughput and the peak memory, and the ratios of the rounds. Set `RCHAT_BENCH_MB`
//! to change the size (default 300) and `RCHAT_BENCH_KEEP=1` to keep the capture.
//!
//! `RCHAT_BENCH_CHAT=1` times a chat instead: the same 400 connections, each carrying short
//! lines of text (30 to 150 bytes) both ways in turn, so that every packet is a message of its
//! own, each judged by the classifier.
//!
//! `RCHAT_BENCH_BASE=/path/to/other/rchat` adds that binary as one more tool in the same
//! rounds (right after this one, on the same warm file), so that a change is measured against
//! the binary it started from side by side; the ratios then include `rchat base`.
//! `RCHAT_BENCH_ROUNDS` changes the number of rounds (default 5).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use etherparse::PacketBuilder;

const FLOWS: usize = 400;
const SEGMENT: usize = 1448;
/// Rounds of runs (every tool once per round, tshark every other round), unless
/// `RCHAT_BENCH_ROUNDS` says otherwise.
const ROUNDS: usize = 5;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

struct Flow {
    client: [u8; 4],
    port: u16,
    seq: u32,
    ack: u32,
    sent: usize,
    /// A segment held back, sent after this flow's next one (reordering).
    held: Option<Vec<u8>>,
}

fn packet(
    out: &mut Vec<u8>,
    from: ([u8; 4], u16),
    to: ([u8; 4], u16),
    seq: u32,
    ack: u32,
    flags: &str,
    payload: &[u8],
) {
    let mut b = PacketBuilder::ethernet2([0; 6], [0; 6])
        .ipv4(from.0, to.0, 64)
        .tcp(from.1, to.1, seq, 65535);
    for f in flags.chars() {
        b = match f {
            'S' => b.syn(),
            'A' => b.ack(ack),
            'F' => b.fin(),
            'P' => b.psh(),
            _ => b,
        };
    }
    out.clear();
    b.write(out, payload).unwrap_or_default();
}

struct Pcap {
    w: BufWriter<File>,
    ts_us: u64,
    bytes: u64,
}

impl Pcap {
    fn record(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.ts_us += 7;
        let sec = (1_700_000_000 + self.ts_us / 1_000_000) as u32;
        let usec = (self.ts_us % 1_000_000) as u32;
        let len = data.len() as u32;
        for v in [sec, usec, len, len] {
            self.w.write_all(&v.to_le_bytes())?;
        }
        self.w.write_all(data)?;
        self.bytes += 16 + data.len() as u64;
        Ok(())
    }
}

/// The server every flow talks to.
const SERVER: ([u8; 4], u16) = ([10, 0, 0, 1], 9999);

impl Flow {
    fn client(&self) -> ([u8; 4], u16) {
        (self.client, self.port)
    }
}

/// A new capture file with the 400 connections opened (SYN, SYN-ACK): each flow's `seq` and
/// `ack` are then the numbers of the first byte the client and the server send.
fn open_flows(path: &Path, rng: &mut Rng, buf: &mut Vec<u8>) -> std::io::Result<(Pcap, Vec<Flow>)> {
    let mut pcap =
        Pcap { w: BufWriter::with_capacity(1 << 20, File::create(path)?), ts_us: 0, bytes: 24 };
    for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 262_144, 1] {
        pcap.w.write_all(&v.to_le_bytes())?;
    }
    let mut flows: Vec<Flow> = (0..FLOWS)
        .map(|i| Flow {
            client: [10, 1, (i / 250) as u8, (i % 250) as u8 + 1],
            port: 40000 + i as u16,
            seq: rng.next() as u32,
            ack: rng.next() as u32,
            sent: 0,
            held: None,
        })
        .collect();
    for f in &mut flows {
        packet(buf, f.client(), SERVER, f.seq, 0, "S", &[]);
        pcap.record(buf)?;
        packet(buf, SERVER, f.client(), f.ack, f.seq.wrapping_add(1), "SA", &[]);
        pcap.record(buf)?;
        f.seq = f.seq.wrapping_add(1);
        f.ack = f.ack.wrapping_add(1);
    }
    Ok((pcap, flows))
}

/// Close every flow (the segment it still holds back first, then a FIN each way) and finish
/// the file; returns its size.
fn close_flows(mut pcap: Pcap, flows: &mut [Flow], buf: &mut Vec<u8>) -> std::io::Result<u64> {
    for f in flows {
        if let Some(h) = f.held.take() {
            pcap.record(&h)?;
        }
        packet(buf, f.client(), SERVER, f.seq, f.ack, "FA", &[]);
        pcap.record(buf)?;
        packet(buf, SERVER, f.client(), f.ack, f.seq.wrapping_add(1), "FA", &[]);
        pcap.record(buf)?;
    }
    pcap.w.flush()?;
    Ok(pcap.bytes)
}

fn generate(path: &Path, target: u64) -> std::io::Result<u64> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut buf = Vec::with_capacity(2048);
    let (mut pcap, mut flows) = open_flows(path, &mut rng, &mut buf)?;
    let per_flow = target / FLOWS as u64;
    let mut payload = vec![0u8; SEGMENT];
    let mut round = 0u64;
    while pcap.bytes < target {
        round += 1;
        for (i, f) in flows.iter_mut().enumerate() {
            if f.sent as u64 >= per_flow {
                continue;
            }
            rng.fill(&mut payload);
            packet(&mut buf, f.client(), SERVER, f.seq, f.ack, "AP", &payload);
            f.seq = f.seq.wrapping_add(SEGMENT as u32);
            f.sent += SEGMENT;
            let pick = rng.next() % 100;
            if pick < 2 && f.held.is_none() && (f.sent as u64) < per_flow {
                // Reorder: this segment goes out after the flow's next one.
                f.held = Some(buf.clone());
                continue;
            }
            pcap.record(&buf)?;
            if let Some(h) = f.held.take() {
                pcap.record(&h)?;
            }
            if pick >= 98 {
                // Retransmission of the same segment.
                pcap.record(&buf)?;
            }
            if (round + i as u64).is_multiple_of(4) {
                packet(&mut buf, SERVER, f.client(), f.ack, f.seq, "A", &[]);
                pcap.record(&buf)?;
            }
        }
        if flows.iter().all(|f| f.sent as u64 >= per_flow) {
            break;
        }
    }
    close_flows(pcap, &mut flows, &mut buf)
}

/// A chat between the 400 clients and the server: lines of text both ways in turn, one line
/// per packet (each with an ACK of the other side's last line).
fn generate_chat(path: &Path, target: u64) -> std::io::Result<u64> {
    const WORDS: [&str; 16] = [
        "meet", "me", "at", "the", "old", "oak", "tree", "at", "six", "and", "bring", "the", "map",
        "please", "ok", "see you",
    ];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut buf = Vec::with_capacity(2048);
    let (mut pcap, mut flows) = open_flows(path, &mut rng, &mut buf)?;
    let mut line = Vec::with_capacity(256);
    let mut round = 0u64;
    while pcap.bytes < target {
        round += 1;
        for f in &mut flows {
            line.clear();
            while line.len() < 30 || (line.len() < 150 && !rng.next().is_multiple_of(6)) {
                let w = WORDS[(rng.next() % WORDS.len() as u64) as usize];
                line.extend_from_slice(w.as_bytes());
                line.push(b' ');
            }
            if let Some(last) = line.last_mut() {
                *last = b'\n';
            }
            let len = line.len() as u32;
            if round % 2 == 1 {
                packet(&mut buf, f.client(), SERVER, f.seq, f.ack, "AP", &line);
                f.seq = f.seq.wrapping_add(len);
            } else {
                packet(&mut buf, SERVER, f.client(), f.ack, f.seq, "AP", &line);
                f.ack = f.ack.wrapping_add(len);
            }
            pcap.record(&buf)?;
        }
    }
    close_flows(pcap, &mut flows, &mut buf)
}

struct Run {
    secs: f64,
    peak_kb: u64,
}

/// One tool of the comparison and its runs.
struct Tool<'a> {
    name: &'static str,
    cmd: Vec<&'a str>,
    /// Runs in one round out of this many (tshark is slow).
    every: usize,
    runs: Vec<(usize, Run)>,
}

/// Whether `program` can be started.
fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Read the whole file (into the page cache). False, with a message, if it cannot be read.
fn warm(path: &Path) -> bool {
    let read = File::open(path).and_then(|mut f| std::io::copy(&mut f, &mut std::io::sink()));
    if let Err(e) = &read {
        println!("cannot read {}: {e}", path.display());
    }
    read.is_ok()
}

/// Run a command under `/usr/bin/time -v`; output discarded.
fn timed(name: &str, cmd: &[&str]) -> Option<Run> {
    let start = Instant::now();
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .args(cmd)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .ok()?;
    let secs = start.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stderr);
    let peak_kb = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes): "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    if !out.status.success() {
        println!("{name}: failed: {}", text.lines().next().unwrap_or_default());
        return None;
    }
    Some(Run { secs, peak_kb })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn main() {
    let mb: u64 = std::env::var("RCHAT_BENCH_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let dir = std::env::temp_dir().join("rchat-bench");
    let _ = std::fs::create_dir_all(&dir);
    let chat = std::env::var("RCHAT_BENCH_CHAT").as_deref() == Ok("1");
    let kind = if chat { "chat-" } else { "" };
    let file: PathBuf = dir.join(format!("bench-{kind}{mb}mb.pcap"));
    let size = match std::fs::metadata(&file) {
        Ok(m) if m.len() >= mb * 1_000_000 => m.len(),
        _ => {
            let t = Instant::now();
            let made = if chat {
                generate_chat(&file, mb * 1_000_000)
            } else {
                generate(&file, mb * 1_000_000)
            };
            match made {
                Ok(n) => {
                    println!(
                        "generated {} ({n} bytes) in {:.1} s",
                        file.display(),
                        t.elapsed().as_secs_f64()
                    );
                    n
                }
                Err(e) => {
                    println!("cannot write {}: {e}", file.display());
                    return;
                }
            }
        }
    };
    if !Path::new("/usr/bin/time").exists() {
        println!("/usr/bin/time is missing (Debian package `time`): cannot measure peak memory");
        return;
    }
    let f = file.to_str().unwrap_or_default();
    let flow_dir = dir.join("tcpflow-out");
    let _ = std::fs::remove_dir_all(&flow_dir);
    let _ = std::fs::create_dir_all(&flow_dir);
    let fd = flow_dir.to_str().unwrap_or_default();
    let rounds: usize =
        std::env::var("RCHAT_BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(ROUNDS);
    let base = std::env::var("RCHAT_BENCH_BASE").ok();
    let mut tools = vec![Tool {
        name: "rchat analyze --json",
        cmd: vec![env!("CARGO_BIN_EXE_rchat"), "analyze", "--json", f],
        every: 1,
        runs: Vec::new(),
    }];
    if let Some(base) = &base {
        tools.push(Tool {
            name: "rchat base --json",
            cmd: vec![base.as_str(), "analyze", "--json", f],
            every: 1,
            runs: Vec::new(),
        });
    }
    tools.extend([
        Tool {
            name: "tcpflow -r",
            cmd: vec!["tcpflow", "-r", f, "-o", fd],
            every: 1,
            runs: Vec::new(),
        },
        Tool {
            name: "tshark -z conv,tcp",
            cmd: vec!["tshark", "-q", "-z", "conv,tcp", "-r", f],
            every: 2,
            runs: Vec::new(),
        },
    ]);
    tools.retain(|t| {
        let have = installed(t.cmd[0]);
        if !have {
            println!("{}: not installed, skipped", t.name);
        }
        have
    });
    // The machine's speed may change from one minute to the next: the tools take turns, round
    // after round, so that each sees the same moments, and each round gives its own ratios.
    for round in 0..rounds {
        for t in &mut tools {
            // Pages of the file may have been dropped from the cache since the last run (a
            // machine under memory pressure, or one whose host reclaims idle pages): read it
            // all again, so that no tool waits for the disk.
            if round % t.every == 0
                && warm(&file)
                && let Some(run) = timed(t.name, &t.cmd)
            {
                t.runs.push((round, run));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&flow_dir);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let what = if chat {
        "lines of 30 to 150 bytes both ways".to_string()
    } else {
        format!("{SEGMENT}-byte segments")
    };
    println!(
        "capture: {:.1} MB, {FLOWS} flows, {what}; {cores} cores; {rounds} rounds",
        size as f64 / 1e6
    );
    println!(
        "{:<22} {:>5} {:>9} {:>9} {:>10} {:>10} {:>8}",
        "tool", "runs", "best s", "median s", "best MB/s", "med. MB/s", "peak MB"
    );
    let mb = size as f64 / 1e6;
    for t in &tools {
        let secs: Vec<f64> = t.runs.iter().map(|(_, r)| r.secs).collect();
        if secs.is_empty() {
            continue;
        }
        let best = secs.iter().copied().fold(f64::INFINITY, f64::min);
        let med = median(secs.clone());
        let peak = t.runs.iter().map(|(_, r)| r.peak_kb).max().unwrap_or(0);
        println!(
            "{:<22} {:>5} {:>9.3} {:>9.3} {:>10.0} {:>10.0} {:>8.1}",
            t.name,
            secs.len(),
            best,
            med,
            mb / best,
            mb / med,
            peak as f64 / 1024.0
        );
    }
    if let Some((ours, others)) = tools.split_first().filter(|(t, _)| t.name.starts_with("rchat")) {
        for t in others {
            // The ratio of each round in which both ran.
            let ratios: Vec<f64> = t
                .runs
                .iter()
                .filter_map(|(round, r)| {
                    let mine = ours.runs.iter().find(|(n, _)| n == round)?;
                    Some(r.secs / mine.1.secs)
                })
                .collect();
            if ratios.is_empty() {
                continue;
            }
            let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = ratios.iter().copied().fold(0.0, f64::max);
            println!(
                "rchat is {:.2}x faster than {} (median of {} rounds; {:.2}x to {:.2}x)",
                median(ratios.clone()),
                t.name,
                ratios.len(),
                lo,
                hi
            );
        }
    }
    if std::env::var("RCHAT_BENCH_KEEP").as_deref() != Ok("1") {
        let _ = std::fs::remove_file(&file);
    }
}
