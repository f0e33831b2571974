//! Benchmark of `rchat analyze`'s memory per concurrent connection.
//!
//! `cargo bench --bench memory` writes, into the temporary folder, one capture per number of
//! connections N (400, 5,000 and 30,000, set `RCHAT_MEM_CONNS=400,5000` to choose): all N
//! connections are opened first (SYN, SYN-ACK), then each carries two rounds of payload,
//! interleaved across all of them so that every connection is open at once (in each round the
//! client sends a 1448-byte segment of pseudo-random bytes and the server answers with a line
//! of text of 60 to 140 bytes), then all of them close (FIN each way). The largest capture is
//! about 100 MB. It then runs the release binary, `rchat analyze --all-ports FILE --json`, as a
//! child process on each capture and on a capture of one connection (the baseline), and
//! measures its peak resident memory: `VmHWM` read from `/proc/<pid>/status` while it runs,
//! every millisecond (Linux only; elsewhere the bench says so and measures the time only). It
//! prints N, the capture's size, the peak, the memory per connection ((peak - baseline) / N),
//! the same for anonymous memory alone (`RssAnon`, sampled: without the capture's mapped
//! pages), and the time. Then, between consecutive numbers of connections, what each added
//! connection cost (the slope: without the fixed costs, such as the batches in flight).
//!
//! `RCHAT_BENCH_BASE=/path/to/other/rchat` runs that binary too, on the same files in the same
//! rounds (each run just after this one's), and prints both side by side: before and after in
//! one run. `RCHAT_BENCH_ROUNDS` runs each binary that many times per capture (default 1; the
//! smallest peak and the median time are printed). `RCHAT_BENCH_KEEP=1` keeps the captures.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use etherparse::PacketBuilder;

const SEGMENT: usize = 1448;
/// Rounds of payload per connection (one segment each way per round).
const PAYLOAD_ROUNDS: usize = 2;
const DEFAULT_CONNS: [usize; 3] = [400, 5_000, 30_000];
/// The server every connection talks to.
const SERVER: ([u8; 4], u16) = ([10, 0, 0, 1], 9999);

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
    fn create(path: &Path) -> std::io::Result<Self> {
        let mut pcap =
            Pcap { w: BufWriter::with_capacity(1 << 20, File::create(path)?), ts_us: 0, bytes: 24 };
        for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 262_144, 1] {
            pcap.w.write_all(&v.to_le_bytes())?;
        }
        Ok(pcap)
    }

    fn record(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.ts_us += 3;
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

struct Conn {
    client: ([u8; 4], u16),
    /// Next sequence number of the client and of the server.
    seq: u32,
    ack: u32,
}

/// Write a capture of `n` concurrent connections (see the module's comment); returns its size.
fn generate(path: &Path, n: usize) -> std::io::Result<u64> {
    const WORDS: [&str; 12] =
        ["meet", "me", "at", "the", "old", "oak", "tree", "six", "bring", "map", "ok", "soon"];
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ n as u64);
    let mut pcap = Pcap::create(path)?;
    let mut buf = Vec::with_capacity(2048);
    // Client addresses 10.2.0.1 on: 250 per /24, ports 40000 on (unique pairs for any n).
    let mut conns: Vec<Conn> = (0..n)
        .map(|i| Conn {
            client: ([10, 2 + (i / 62_500) as u8, (i / 250 % 250) as u8, (i % 250) as u8 + 1], {
                40000 + (i % 20_000) as u16
            }),
            seq: rng.next() as u32,
            ack: rng.next() as u32,
        })
        .collect();
    for c in &mut conns {
        packet(&mut buf, c.client, SERVER, c.seq, 0, "S", &[]);
        pcap.record(&buf)?;
        packet(&mut buf, SERVER, c.client, c.ack, c.seq.wrapping_add(1), "SA", &[]);
        pcap.record(&buf)?;
        c.seq = c.seq.wrapping_add(1);
        c.ack = c.ack.wrapping_add(1);
    }
    let mut payload = vec![0u8; SEGMENT];
    let mut line = Vec::with_capacity(256);
    for _ in 0..PAYLOAD_ROUNDS {
        for c in &mut conns {
            rng.fill(&mut payload);
            packet(&mut buf, c.client, SERVER, c.seq, c.ack, "AP", &payload);
            pcap.record(&buf)?;
            c.seq = c.seq.wrapping_add(SEGMENT as u32);
            line.clear();
            let want = 60 + (rng.next() % 80) as usize;
            while line.len() < want {
                line.extend_from_slice(
                    WORDS[(rng.next() % WORDS.len() as u64) as usize].as_bytes(),
                );
                line.push(b' ');
            }
            if let Some(last) = line.last_mut() {
                *last = b'\n';
            }
            packet(&mut buf, SERVER, c.client, c.ack, c.seq, "AP", &line);
            pcap.record(&buf)?;
            c.ack = c.ack.wrapping_add(line.len() as u32);
        }
    }
    for c in &conns {
        packet(&mut buf, c.client, SERVER, c.seq, c.ack, "FA", &[]);
        pcap.record(&buf)?;
        packet(&mut buf, SERVER, c.client, c.ack, c.seq.wrapping_add(1), "FA", &[]);
        pcap.record(&buf)?;
    }
    pcap.w.flush()?;
    Ok(pcap.bytes)
}

/// One run of a binary: wall time, and the peaks of resident and anonymous memory (kB) when
/// they could be read.
#[derive(Debug, Clone, Copy)]
struct Run {
    secs: f64,
    peak_kb: Option<u64>,
    anon_kb: Option<u64>,
}

/// A field of `/proc/<pid>/status`, in kB.
#[cfg(target_os = "linux")]
fn status_kb(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse().ok())
}

/// Run `rchat analyze --all-ports FILE --json` (output discarded), sampling its memory.
fn run(binary: &str, file: &Path) -> Option<Run> {
    let start = Instant::now();
    let mut child = Command::new(binary)
        .args(["analyze", "--all-ports"])
        .arg(file)
        .arg("--json")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| println!("cannot start {binary}: {e}"))
        .ok()?;
    let (mut peak_kb, mut anon_kb) = (None::<u64>, None::<u64>);
    let status = loop {
        #[cfg(target_os = "linux")]
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{}/status", child.id())) {
            // A process that has exited but not been waited for has no memory fields left.
            if let Some(hwm) = status_kb(&s, "VmHWM:") {
                peak_kb = peak_kb.max(Some(hwm));
            }
            if let Some(anon) = status_kb(&s, "RssAnon:") {
                anon_kb = anon_kb.max(Some(anon));
            }
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => {
                println!("cannot wait for {binary}: {e}");
                return None;
            }
        }
    };
    let secs = start.elapsed().as_secs_f64();
    if !status.success() {
        println!("{binary} failed on {}: {status}", file.display());
        return None;
    }
    Some(Run { secs, peak_kb, anon_kb })
}

/// Read the whole file (into the page cache), so that no run waits for the disk.
fn warm(path: &Path) {
    if let Err(e) = File::open(path).and_then(|mut f| std::io::copy(&mut f, &mut std::io::sink())) {
        println!("cannot read {}: {e}", path.display());
    }
}

/// The smallest peaks and the median time of several runs.
fn best(runs: &[Run]) -> Option<Run> {
    let mut secs: Vec<f64> = runs.iter().map(|r| r.secs).collect();
    secs.sort_by(f64::total_cmp);
    let secs = *secs.get(secs.len() / 2)?;
    let peak_kb = runs.iter().filter_map(|r| r.peak_kb).min();
    let anon_kb = runs.iter().filter_map(|r| r.anon_kb).min();
    Some(Run { secs, peak_kb, anon_kb })
}

/// `(value - base) / n` in kB, as text.
fn per_conn(value: Option<u64>, base: Option<u64>, n: usize) -> String {
    match (value, base) {
        (Some(v), Some(b)) => format!("{:.2}", (v as f64 - b as f64) / n as f64),
        _ => "-".to_string(),
    }
}

fn mb(kb: Option<u64>) -> String {
    kb.map_or_else(|| "-".to_string(), |k| format!("{:.1}", k as f64 / 1024.0))
}

fn main() {
    if !cfg!(target_os = "linux") {
        println!("peak memory is read from /proc (Linux only): only times are measured here");
    }
    let conns: Vec<usize> = std::env::var("RCHAT_MEM_CONNS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).filter(|&n| n > 0).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_CONNS.to_vec());
    let rounds: usize = std::env::var("RCHAT_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&r| r > 0)
        .unwrap_or(1);
    let dir = std::env::temp_dir().join("rchat-bench-memory");
    let _ = std::fs::create_dir_all(&dir);
    let mut binaries = vec![("after", env!("CARGO_BIN_EXE_rchat").to_string())];
    if let Ok(base) = std::env::var("RCHAT_BENCH_BASE") {
        binaries.insert(0, ("before", base));
    }
    // The baseline: a capture of one connection.
    let mut files: Vec<(usize, PathBuf, u64)> = Vec::new();
    for n in std::iter::once(1).chain(conns.iter().copied()) {
        let path = dir.join(format!("memory-{n}.pcap"));
        let t = Instant::now();
        match generate(&path, n) {
            Ok(size) => {
                if n > 1 {
                    println!(
                        "generated {} ({size} bytes) in {:.1} s",
                        path.display(),
                        t.elapsed().as_secs_f64()
                    );
                }
                files.push((n, path, size));
            }
            Err(e) => {
                println!("cannot write {}: {e}", path.display());
                return;
            }
        }
    }
    // runs[file][binary]
    let mut runs: Vec<Vec<Vec<Run>>> = vec![vec![Vec::new(); binaries.len()]; files.len()];
    for _ in 0..rounds {
        for (f, (_, path, _)) in files.iter().enumerate() {
            for (b, (_, binary)) in binaries.iter().enumerate() {
                warm(path);
                if let Some(r) = run(binary, path) {
                    runs[f][b].push(r);
                }
            }
        }
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "rchat analyze --all-ports FILE --json; {cores} cores; {rounds} round(s); per connection \
         = (peak - peak on one connection) / N"
    );
    let base: Vec<Option<Run>> = (0..binaries.len()).map(|b| best(&runs[0][b])).collect();
    for (b, (name, _)) in binaries.iter().enumerate() {
        let r = base[b];
        println!(
            "baseline ({name}, one connection): peak {} MB, anonymous {} MB",
            mb(r.and_then(|r| r.peak_kb)),
            mb(r.and_then(|r| r.anon_kb))
        );
    }
    let mut header = format!("{:>7} {:>9}", "N", "file MB");
    for (name, _) in &binaries {
        header += &format!(
            " | {:>13} {:>13} {:>13} {:>10}",
            format!("{name} peak MB"),
            "peak kB/conn",
            "anon kB/conn",
            "seconds"
        );
    }
    println!("{header}");
    for (f, (n, _, size)) in files.iter().enumerate().skip(1) {
        let mut line = format!("{n:>7} {:>9.1}", *size as f64 / 1e6);
        for b in 0..binaries.len() {
            let r = best(&runs[f][b]);
            let peak = r.and_then(|r| r.peak_kb);
            let anon = r.and_then(|r| r.anon_kb);
            let (bp, ba) = (base[b].and_then(|r| r.peak_kb), base[b].and_then(|r| r.anon_kb));
            line += &format!(
                " | {:>13} {:>13} {:>13} {:>10}",
                mb(peak),
                per_conn(peak, bp, *n),
                per_conn(anon, ba, *n),
                r.map_or_else(|| "-".to_string(), |r| format!("{:.3}", r.secs))
            );
        }
        println!("{line}");
    }
    // What one more connection costs, without the fixed costs (the batches in flight and the
    // mapped windows of the file they point into, which stop growing once the capture is
    // larger than what is in flight): the slope between consecutive numbers of connections.
    for pair in files.iter().enumerate().skip(1).collect::<Vec<_>>().windows(2) {
        let [(f0, (n0, _, _)), (f1, (n1, _, _))] = pair else { continue };
        if n1 <= n0 {
            continue;
        }
        let mut line = format!("from {n0} to {n1} connections, per added connection:");
        for (b, (name, _)) in binaries.iter().enumerate() {
            let (r0, r1) = (best(&runs[*f0][b]), best(&runs[*f1][b]));
            let added = n1 - n0;
            line += &format!(
                " {name}: peak {} kB, anonymous {} kB;",
                per_conn(r1.and_then(|r| r.peak_kb), r0.and_then(|r| r.peak_kb), added),
                per_conn(r1.and_then(|r| r.anon_kb), r0.and_then(|r| r.anon_kb), added)
            );
        }
        println!("{}", line.trim_end_matches(';'));
    }
    if std::env::var("RCHAT_BENCH_KEEP").as_deref() != Ok("1") {
        for (_, path, _) in &files {
            let _ = std::fs::remove_file(path);
        }
    }
}
