//! Benchmark of `rchat analyze` against tcpflow and tshark on one large generated capture.
//!
//! `cargo bench --bench analyze` writes a capture of 400 interleaved TCP flows on port 9999
//! (1448-byte segments of pseudo-random bytes, some reordered, some retransmitted, server ACKs)
//! into the temporary folder, warms the page cache, then times `rchat analyze --json`,
//! `tcpflow -r` and `tshark -q -z conv,tcp` on it with `/usr/bin/time -v` (best of 5, 3 and 1
//! runs), and prints the throughput, the ratios and the peak memory of each. Set `RCHAT_BENCH_MB` to change the size
//! (default 300) and `RCHAT_BENCH_KEEP=1` to keep the capture.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use etherparse::PacketBuilder;

const FLOWS: usize = 400;
const SEGMENT: usize = 1448;

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

fn generate(path: &Path, target: u64) -> std::io::Result<u64> {
    let mut pcap =
        Pcap { w: BufWriter::with_capacity(1 << 20, File::create(path)?), ts_us: 0, bytes: 24 };
    for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 262_144, 1] {
        pcap.w.write_all(&v.to_le_bytes())?;
    }
    let server = ([10, 0, 0, 1], 9999);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
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
    let mut buf = Vec::with_capacity(2048);
    for f in &mut flows {
        let c = (f.client, f.port);
        packet(&mut buf, c, server, f.seq, 0, "S", &[]);
        pcap.record(&buf)?;
        packet(&mut buf, server, c, f.ack, f.seq.wrapping_add(1), "SA", &[]);
        pcap.record(&buf)?;
        f.seq = f.seq.wrapping_add(1);
        f.ack = f.ack.wrapping_add(1);
    }
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
            let c = (f.client, f.port);
            packet(&mut buf, c, server, f.seq, f.ack, "AP", &payload);
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
                packet(&mut buf, server, c, f.ack, f.seq, "A", &[]);
                pcap.record(&buf)?;
            }
        }
        if flows.iter().all(|f| f.sent as u64 >= per_flow) {
            break;
        }
    }
    for f in &mut flows {
        if let Some(h) = f.held.take() {
            pcap.record(&h)?;
        }
        let c = (f.client, f.port);
        packet(&mut buf, c, server, f.seq, f.ack, "FA", &[]);
        pcap.record(&buf)?;
        packet(&mut buf, server, c, f.ack, f.seq.wrapping_add(1), "FA", &[]);
        pcap.record(&buf)?;
    }
    pcap.w.flush()?;
    Ok(pcap.bytes)
}

struct Run {
    name: &'static str,
    secs: f64,
    peak_kb: u64,
}

/// The best of `n` runs of [`timed`] (the machine may be shared; the best run is the one least
/// disturbed).
fn best_of(n: usize, name: &'static str, cmd: &[&str]) -> Option<Run> {
    let mut best: Option<Run> = None;
    for _ in 0..n {
        let run = timed(name, cmd)?;
        if best.as_ref().is_none_or(|b| run.secs < b.secs) {
            best = Some(run);
        }
    }
    best
}

/// Run a command under `/usr/bin/time -v`; output discarded.
fn timed(name: &'static str, cmd: &[&str]) -> Option<Run> {
    let have = Command::new(cmd[0])
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !have {
        println!("{name}: not installed, skipped");
        return None;
    }
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
    Some(Run { name, secs, peak_kb })
}

fn main() {
    let mb: u64 = std::env::var("RCHAT_BENCH_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(300);
    let dir = std::env::temp_dir().join("rchat-bench");
    let _ = std::fs::create_dir_all(&dir);
    let file: PathBuf = dir.join(format!("bench-{mb}mb.pcap"));
    let size = match std::fs::metadata(&file) {
        Ok(m) if m.len() >= mb * 1_000_000 => m.len(),
        _ => {
            let t = Instant::now();
            match generate(&file, mb * 1_000_000) {
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
    // Warm the page cache.
    let _ = std::fs::read(&file).map(|b| b.len());
    let f = file.to_str().unwrap_or_default();
    let flow_dir = dir.join("tcpflow-out");
    let _ = std::fs::remove_dir_all(&flow_dir);
    let _ = std::fs::create_dir_all(&flow_dir);
    let fd = flow_dir.to_str().unwrap_or_default();
    let runs: Vec<Run> = [
        best_of(5, "rchat analyze --json", &[env!("CARGO_BIN_EXE_rchat"), "analyze", "--json", f]),
        best_of(3, "tcpflow -r", &["tcpflow", "-r", f, "-o", fd]),
        best_of(1, "tshark -z conv,tcp", &["tshark", "-q", "-z", "conv,tcp", "-r", f]),
    ]
    .into_iter()
    .flatten()
    .collect();
    let _ = std::fs::remove_dir_all(&flow_dir);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "capture: {:.1} MB, {FLOWS} flows, {SEGMENT}-byte segments; {cores} cores",
        size as f64 / 1e6
    );
    println!("{:<22} {:>9} {:>11} {:>12}", "tool", "seconds", "MB/s", "peak MB");
    for r in &runs {
        println!(
            "{:<22} {:>9.3} {:>11.0} {:>12.1}",
            r.name,
            r.secs,
            size as f64 / 1e6 / r.secs,
            r.peak_kb as f64 / 1024.0
        );
    }
    if let Some(ours) = runs.first().filter(|r| r.name.starts_with("rchat")) {
        for r in runs.iter().skip(1) {
            println!("rchat is {:.1}x faster than {}", r.secs / ours.secs, r.name);
        }
    }
    if std::env::var("RCHAT_BENCH_KEEP").as_deref() != Ok("1") {
        let _ = std::fs::remove_file(&file);
    }
}
