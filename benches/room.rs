//! Benchmark of a room on loopback: `cargo bench --bench room`.
//!
//! It runs the release binary as a class would: one `rchat host --room` and N `rchat join`
//! processes (40 by default, `RCHAT_BENCH_MEMBERS=N` for another number, up to 99), each with
//! its own 2048-bit key made beforehand with `rchat keygen` (kept between runs in the
//! temporary folder, `rchat-bench-room-keys`, so that key generation is never timed), all on
//! 127.0.0.1 with a port the system picks. Every process has its stdin, stdout and stderr
//! piped to the bench, which notes the moment each line arrives. It measures:
//!
//! - the join: from starting the N joiners at once until the host has said "NAME joined from"
//!   for all of them and each member has said "in the room"; and until every member knows
//!   every other one (its roster and the "joined" notices after it), which the bench waits for
//!   before any message, so that every sender addresses the whole room. A joiner that ends
//!   with an error before it entered (the host closes a candidate that has sent nothing when
//!   more than 8 arrive from one address, as all of them do here) is started again at once, as
//!   a student would run `rchat join` again, and counted with its error: the join's target is
//!   met only if none had to be. If nobody more gets in for 20 s, the join fails, with the
//!   CPU time the host used meanwhile. `RCHAT_BENCH_STAGGER_MS=T` starts the joiners T
//!   milliseconds apart instead of at once;
//! - a message's latency, from the moment the bench writes a line (with a unique tag) to the
//!   sender's stdin until each other member prints it on stdout, with a member as the sender,
//!   then the host (`RCHAT_BENCH_MESSAGES`, 20 by default, one at a time): the median and the
//!   worst of each message's last recipient, and the median over every recipient;
//! - the host's peak resident memory (`VmHWM` in `/proc/PID/status`, Linux only: elsewhere
//!   "n/a") after the joins and the messages, and the CPU time the host and the members used
//!   in each phase (`/proc/PID/stat`, and `/proc/PID/task/*/schedstat` for the running
//!   threads, to the nanosecond), which says where the time went.
//!
//! The targets (for 40 members: all in under 5 s, a message to all in under 250 ms median,
//! the host under 50 MB) are printed beside the figures; a missed target is reported, not a
//! failure. The bench exits non-zero only when something breaks: a process that cannot start
//! or dies, a member that never enters, a message that never reaches a member. Every wait has
//! a timeout, and every child is killed when the bench ends, panics included.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::{Duration, Instant};

const BITS: &str = "2048";
const DEFAULT_MEMBERS: usize = 40;
const DEFAULT_MESSAGES: usize = 20;
const HOST_NAME: &str = "teacher";
/// The targets, for 40 members on a 2-core machine.
const TARGET_JOIN: Duration = Duration::from_secs(5);
const TARGET_MESSAGE: Duration = Duration::from_millis(250);
const TARGET_MEMORY_MB: f64 = 50.0;
/// Timeouts: none of them should ever be reached.
const KEYGEN_TIMEOUT: Duration = Duration::from_secs(120);
const START_TIMEOUT: Duration = Duration::from_secs(20);
const JOIN_TIMEOUT: Duration = Duration::from_secs(90);
/// The join fails sooner when nobody more has been seated or entered for this long (a
/// joiner gives up on a silent host after 15 s).
const JOIN_STALL: Duration = Duration::from_secs(20);
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(20);
/// Restarts of one joiner that ended before it entered, before the bench gives up.
const MAX_RESTARTS: usize = 20;
/// A pause between two messages, so that one message's work does not overlap the next's.
const GAP: Duration = Duration::from_millis(100);

/// Which process: the host is 0, member `i` is `i` (1 to N).
type Who = usize;

/// What the readers of the children's pipes report; `run` tells a restarted process's pipes
/// from its predecessor's.
enum Seen {
    Line { who: Who, run: u32, stderr: bool, text: String, at: Instant },
    Closed { who: Who, run: u32, stderr: bool },
}

/// A running child and its stdin.
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    pid: u32,
}

/// The children, by `Who`: killed and reaped when this is dropped, whatever the way out.
#[derive(Default)]
struct Children(Vec<Option<Proc>>);

impl Drop for Children {
    fn drop(&mut self) {
        for p in self.0.iter_mut().flatten() {
            p.stdin = None;
            let _ = p.child.kill();
        }
        for p in self.0.iter_mut().flatten() {
            let _ = p.child.wait();
        }
    }
}

/// A failure that makes the bench exit non-zero.
struct Failure(String);

type Result<T> = std::result::Result<T, Failure>;

fn fail<T>(why: impl Into<String>) -> Result<T> {
    Err(Failure(why.into()))
}

fn env_count(name: &str, default: usize, range: std::ops::RangeInclusive<usize>) -> usize {
    match std::env::var(name) {
        Ok(v) => match v.trim().parse::<usize>() {
            Ok(n) if range.contains(&n) => n,
            _ => {
                println!(
                    "{name}={v} is not a number from {} to {}: using {default}",
                    range.start(),
                    range.end()
                );
                default
            }
        },
        Err(_) => default,
    }
}

/// The release binary cargo built for this bench.
fn binary() -> Result<PathBuf> {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_rchat"));
    if !path.is_file() {
        return fail(format!(
            "the rchat binary is missing at {}: run `cargo bench --bench room`, or `cargo build \
             --release` with the same CARGO_TARGET_DIR",
            path.display()
        ));
    }
    Ok(path)
}

/// Wait for a child, at most `timeout`; kill it past that.
fn wait_for(child: &mut Child, timeout: Duration) -> Result<std::process::ExitStatus> {
    let until = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() < until => thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return fail(format!("a child took over {} s: killed", timeout.as_secs()));
            }
            Err(e) => return fail(format!("cannot wait for a child: {e}")),
        }
    }
}

/// Make the keys that are missing (`NAME.pem` in `dir`), as many at once as there are cores.
/// A key is written under a temporary name and renamed once complete, so that a run cut short
/// leaves no half key behind. Returns how many were made.
fn make_keys(bin: &Path, dir: &Path, names: &[String], cores: usize) -> Result<usize> {
    std::fs::create_dir_all(dir)
        .or_else(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
    let missing: Vec<&String> =
        names.iter().filter(|n| !dir.join(format!("{n}.pem")).is_file()).collect();
    for batch in missing.chunks(cores.max(1)) {
        let mut running = Vec::new();
        for name in batch {
            let tmp = dir.join(format!("{name}.pem.tmp"));
            let child = Command::new(bin)
                .args(["keygen", "--bits", BITS, "--force", "--out"])
                .arg(&tmp)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .or_else(|e| fail(format!("cannot start {} keygen: {e}", bin.display())))?;
            running.push((name, tmp, child));
        }
        for (name, tmp, mut child) in running {
            let status = wait_for(&mut child, KEYGEN_TIMEOUT)?;
            if !status.success() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                return fail(format!("rchat keygen failed ({status}): {}", err.trim()));
            }
            std::fs::rename(&tmp, dir.join(format!("{name}.pem")))
                .or_else(|e| fail(format!("cannot rename {}: {e}", tmp.display())))?;
        }
    }
    Ok(missing.len())
}

/// A thread that sends every line of `pipe`, with the moment it arrived, then its end.
fn read_pipe(pipe: impl Read + Send + 'static, who: Who, run: u32, stderr: bool, tx: Sender<Seen>) {
    thread::spawn(move || {
        let mut pipe = BufReader::new(pipe);
        let mut line = Vec::new();
        loop {
            line.clear();
            match pipe.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let at = Instant::now();
                    let text = String::from_utf8_lossy(&line).trim_end().to_owned();
                    if tx.send(Seen::Line { who, run, stderr, text, at }).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = tx.send(Seen::Closed { who, run, stderr });
    });
}

/// The room as the bench sees it: the processes, and every line they wrote.
struct Room {
    bin: PathBuf,
    keys: PathBuf,
    port: u16,
    names: Vec<String>,
    tx: Sender<Seen>,
    rx: Receiver<Seen>,
    children: Children,
    /// The current run of each process (0, then 1 after a restart, ...).
    runs: Vec<u32>,
    /// What each process's current run wrote on stderr.
    stderr: Vec<Vec<String>>,
    /// Lines on stdout that no message wait has taken yet.
    stdout: Vec<Vec<(String, Instant)>>,
    /// The host's "NAME joined from" lines.
    seated: HashSet<String>,
    last_seated: Option<Instant>,
    /// When each member said "in the room".
    entered: Vec<Option<Instant>>,
    /// The others each member knows of (its roster, then "joined" notices).
    knows: Vec<HashSet<String>>,
    last_known: Option<Instant>,
    /// The host's "closed the connection from ...: it had sent nothing" lines.
    closed_by_host: usize,
    /// Joiners that ended before they entered and were started again, by their error.
    restarts: BTreeMap<String, usize>,
}

impl Room {
    fn restarted(&self) -> usize {
        self.restarts.values().sum()
    }

    fn restart_reasons(&self) -> String {
        let reasons: Vec<String> =
            self.restarts.iter().map(|(why, n)| format!("{n} \"{why}\"")).collect();
        reasons.join(", ")
    }

    fn members(&self) -> usize {
        self.names.len() - 1
    }

    fn key(&self, who: Who) -> PathBuf {
        self.keys.join(format!("{}.pem", self.names[who]))
    }

    /// Start process `who` (again): the host, or a member joining the host's port.
    fn spawn(&mut self, who: Who) -> Result<()> {
        let mut command = Command::new(&self.bin);
        if who == 0 {
            command
                .args(["host", "--room", "--bind", "127.0.0.1", "--port", "0", "--max"])
                .arg(self.members().to_string());
        } else {
            command.arg("join").arg(format!("127.0.0.1:{}", self.port));
        }
        command.arg("--name").arg(&self.names[who]).arg("--key").arg(self.key(who));
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .or_else(|e| fail(format!("cannot start {command:?}: {e}")))?;
        if let Some(mut old) = self.children.0[who].take() {
            let _ = old.child.kill();
            let _ = old.child.wait();
            self.runs[who] += 1;
        }
        let run = self.runs[who];
        if let Some(out) = child.stdout.take() {
            read_pipe(out, who, run, false, self.tx.clone());
        }
        if let Some(err) = child.stderr.take() {
            read_pipe(err, who, run, true, self.tx.clone());
        }
        let pid = child.id();
        self.children.0[who] = Some(Proc { stdin: child.stdin.take(), child, pid });
        self.stderr[who].clear();
        self.stdout[who].clear();
        self.knows[who].clear();
        Ok(())
    }

    fn pid(&self, who: Who) -> Option<u32> {
        self.children.0[who].as_ref().map(|p| p.pid)
    }

    /// CPU seconds the host's running threads have used, and the members' (all their current
    /// processes together).
    fn cpu(&self) -> (Option<f64>, Option<f64>) {
        let host = self.pid(0).and_then(thread_cpu_secs);
        let members = (1..self.names.len()).map(|w| self.pid(w).and_then(thread_cpu_secs)).sum();
        (host, members)
    }

    /// Handle the next line. Returns the process whose stderr closed (it ended), if one did;
    /// fails when `until` passes first.
    fn next(&mut self, until: Instant, what: &str) -> Result<Option<Who>> {
        let seen = match self.rx.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(seen) => seen,
            Err(RecvTimeoutError::Timeout) => return fail(format!("timed out {what}")),
            Err(RecvTimeoutError::Disconnected) => return fail("every pipe closed"),
        };
        match seen {
            Seen::Line { who, run, .. } | Seen::Closed { who, run, .. }
                if run != self.runs[who] => {}
            Seen::Closed { who, stderr: true, .. } => return Ok(Some(who)),
            Seen::Closed { .. } => {}
            Seen::Line { who, stderr: false, text, at, .. } => self.stdout[who].push((text, at)),
            Seen::Line { who, stderr: true, text, at, .. } => {
                self.status(who, &text, at);
                self.stderr[who].push(text);
            }
        }
        Ok(None)
    }

    /// A status line: the host's seats, a member's entry and whom it knows.
    fn status(&mut self, who: Who, text: &str, at: Instant) {
        if who == 0 {
            if let Some((name, _)) = text.split_once(" joined from ")
                && self.seated.insert(name.to_owned())
            {
                self.last_seated = Some(at);
            }
            if text.starts_with("closed the connection from ") {
                self.closed_by_host += 1;
            }
            return;
        }
        if let Some(list) = text.strip_prefix("in the room: ") {
            self.entered[who].get_or_insert(at);
            self.knows[who].extend(list.split(", ").map(str::to_owned));
        } else if text == "nobody else is here yet" {
            self.entered[who].get_or_insert(at);
        } else if let Some((name, _)) = text.split_once(" joined (") {
            self.knows[who].insert(name.to_owned());
        } else {
            return;
        }
        self.knows[who].remove(HOST_NAME);
        let me = self.names[who].clone();
        self.knows[who].remove(&me);
        if self.all_known() {
            self.last_known.get_or_insert(at);
        }
    }

    fn all_seated(&self) -> bool {
        self.seated.len() >= self.members()
    }

    fn all_entered(&self) -> bool {
        self.entered[1..].iter().all(Option::is_some)
    }

    fn all_known(&self) -> bool {
        self.knows[1..].iter().all(|k| k.len() + 1 >= self.members())
    }

    /// Why process `who` ended: its last lines on stderr.
    fn last_words(&self, who: Who) -> String {
        let lines = &self.stderr[who];
        let words = lines[lines.len().saturating_sub(2)..].join(" | ");
        format!("{} ended: {}", self.names[who], if words.is_empty() { "(silent)" } else { &words })
    }

    /// The lines on the host's stderr that say something went wrong.
    fn host_troubles(&self) -> Vec<&str> {
        const WORDS: [&str; 5] = ["dropped", "rejected", "refused", "warning", "left"];
        let trouble = |l: &&String| WORDS.iter().any(|w| l.contains(w));
        self.stderr[0].iter().filter(trouble).map(String::as_str).collect()
    }
}

/// CPU time (user + system) of a process so far, threads that ended included, from
/// `/proc/PID/stat` (Linux only), in steps of 10 ms.
fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (in brackets, and it may hold spaces).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Counted in USER_HZ, which Linux fixes at 100 for user space.
    Some(ticks as f64 / 100.0)
}

/// CPU time of a process's running threads, to the nanosecond: the sum of their
/// `/proc/PID/task/TID/schedstat` (Linux only). A thread that ended is not counted.
fn thread_cpu_secs(pid: u32) -> Option<f64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut ns = 0u64;
    for task in tasks.flatten() {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
        ns += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(ns as f64 / 1e9)
}

/// A field of `/proc/PID/status`, in kB.
fn status_kb(pid: Option<u32>, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse().ok())
}

fn diff(before: Option<f64>, after: Option<f64>) -> Option<f64> {
    before.zip(after).map(|(a, b)| b - a)
}

/// The times of one sender's messages.
struct Latency {
    sender: String,
    recipients: usize,
    /// Per message: its last recipient's time, and its first's.
    last: Vec<Duration>,
    first: Vec<Duration>,
    /// Every recipient of every message.
    each: Vec<Duration>,
    /// CPU seconds of the host and of the members over all these messages.
    host_cpu: Option<f64>,
    members_cpu: Option<f64>,
}

/// Send `count` messages from `sender`, one at a time, and time each recipient's line.
fn messages(room: &mut Room, sender: Who, count: usize) -> Result<Latency> {
    let recipients: Vec<Who> = (1..room.names.len()).filter(|&w| w != sender).collect();
    let name = room.names[sender].clone();
    let mut lat = Latency {
        sender: name.clone(),
        recipients: recipients.len(),
        last: Vec::new(),
        first: Vec::new(),
        each: Vec::new(),
        host_cpu: None,
        members_cpu: None,
    };
    let cpu_before = room.cpu();
    for k in 0..count {
        let tag: u64 = rand::random();
        let text = format!("bench message {k} from {name}, tag {tag:016x}");
        let expect = format!("{name}: {text}");
        let Some(stdin) = room.children.0[sender].as_mut().and_then(|p| p.stdin.as_mut()) else {
            return fail(format!("{name}'s stdin is gone"));
        };
        let sent = Instant::now();
        stdin
            .write_all(format!("{text}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .or_else(|e| fail(format!("cannot write to {name}'s stdin: {e}")))?;
        let until = sent + MESSAGE_TIMEOUT;
        let mut got: Vec<Option<Instant>> = vec![None; room.names.len()];
        loop {
            for &r in &recipients {
                if got[r].is_none()
                    && let Some(i) = room.stdout[r].iter().position(|(l, _)| *l == expect)
                {
                    got[r] = Some(room.stdout[r][i].1);
                    room.stdout[r].drain(..=i);
                }
            }
            if recipients.iter().all(|&r| got[r].is_some()) {
                break;
            }
            let why = match room.next(until, &format!("waiting for message {k}")) {
                Ok(None) => continue,
                Ok(Some(who)) => room.last_words(who),
                Err(Failure(why)) => why,
            };
            let missing: Vec<&str> = recipients
                .iter()
                .filter(|&&r| got[r].is_none())
                .map(|&r| room.names[r].as_str())
                .collect();
            return fail(format!(
                "message {k} from {name} never reached {} of {} members ({}): {why}",
                missing.len(),
                recipients.len(),
                missing.join(", ")
            ));
        }
        let times: Vec<Duration> =
            recipients.iter().filter_map(|&r| got[r]).map(|t| t - sent).collect();
        lat.last.extend(times.iter().max());
        lat.first.extend(times.iter().min());
        lat.each.extend(times);
        thread::sleep(GAP);
    }
    let cpu_after = room.cpu();
    lat.host_cpu = diff(cpu_before.0, cpu_after.0);
    lat.members_cpu = diff(cpu_before.1, cpu_after.1);
    Ok(lat)
}

/// The join's figures.
struct Join {
    /// From the first start to: the host's last "joined from", the first and the last member
    /// in the room, and every member knowing every other.
    seated: Duration,
    first_in: Duration,
    last_in: Duration,
    known: Duration,
    /// Starting the processes alone.
    spawning: Duration,
    host_cpu: Option<f64>,
    members_cpu: Option<f64>,
}

/// Start every member (at once, or `stagger` apart) and wait until the room is complete,
/// starting again any joiner that ended before it entered (as a student would run `rchat join`
/// again).
fn join(room: &mut Room, stagger: Duration) -> Result<Join> {
    // The host's handshake threads end: count them with the process's total.
    let host_cpu = room.pid(0).and_then(cpu_secs);
    let start = Instant::now();
    for who in 1..room.names.len() {
        if who > 1 && !stagger.is_zero() {
            thread::sleep(stagger);
        }
        room.spawn(who)?;
    }
    let spawning = start.elapsed();
    let deadline = start + JOIN_TIMEOUT;
    let mut restarts = vec![0usize; room.names.len()];
    let progress = |room: &Room| room.seated.len() + room.entered.iter().flatten().count();
    // The last progress: how far, when, and the host's CPU time then.
    let mut last = (progress(room), Instant::now(), host_cpu);
    while !(room.all_seated() && room.all_entered() && room.all_known()) {
        if progress(room) != last.0 {
            last = (progress(room), Instant::now(), room.pid(0).and_then(cpu_secs));
        }
        let until = deadline.min(last.1 + JOIN_STALL);
        let what = if until < deadline {
            format!("while the members joined: nobody more got in for {} s", JOIN_STALL.as_secs())
        } else {
            "while the members joined".to_owned()
        };
        let why = match room.next(until, &what) {
            Ok(None) => continue,
            Ok(Some(who))
                if who > 0 && room.entered[who].is_none() && restarts[who] < MAX_RESTARTS =>
            {
                let error =
                    room.stderr[who].iter().rev().find_map(|l| l.strip_prefix("rchat: error: "));
                let error = error.map_or("(no error line)", |e| e.split(':').next().unwrap_or(e));
                *room.restarts.entry(error.to_owned()).or_default() += 1;
                restarts[who] += 1;
                room.spawn(who)?;
                continue;
            }
            Ok(Some(who)) => room.last_words(who),
            Err(Failure(why)) => why,
        };
        let troubles = room.host_troubles();
        let stalled_cpu = diff(last.2, room.pid(0).and_then(cpu_secs));
        let stalled = last.1.elapsed().as_secs_f64();
        return fail(format!(
            "{why}\n  seated by the host: {} of {}; entered: {}; knowing everyone: {}; joiners \
             started again: {} ({}); candidates the host closed: {}\n  the host used {} of CPU since the \
             start, {} of it in the {:.1} s since the last one got in{}\n  the host said: {}",
            room.seated.len(),
            room.members(),
            room.entered[1..].iter().flatten().count(),
            room.knows[1..].iter().filter(|k| k.len() + 1 >= room.members()).count(),
            room.restarted(),
            room.restart_reasons(),
            room.closed_by_host,
            cpu(diff(host_cpu, room.pid(0).and_then(cpu_secs))),
            cpu(stalled_cpu),
            stalled,
            if stalled_cpu.is_some_and(|c| c > 0.8 * stalled) {
                " (a core busy all along, and nobody seated: the host's loop is stuck)"
            } else {
                ""
            },
            if troubles.is_empty() { "nothing amiss".to_owned() } else { troubles.join(" | ") }
        ));
    }
    let since = |t: Option<&Instant>| t.map_or(Duration::ZERO, |&t| t - start);
    let entered: Vec<&Instant> = room.entered[1..].iter().flatten().collect();
    Ok(Join {
        seated: since(room.last_seated.as_ref()),
        first_in: since(entered.iter().min().copied()),
        last_in: since(entered.iter().max().copied()),
        known: since(room.last_known.as_ref()),
        spawning,
        host_cpu: diff(host_cpu, room.pid(0).and_then(cpu_secs)),
        members_cpu: room.cpu().1,
    })
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn cpu(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_owned(), |s| format!("{s:.2} s"))
}

fn machine() -> String {
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    let arch = Command::new("uname")
        .arg("-m")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned());
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .map_or_else(String::new, |l| format!(", load average {l} at the start"));
    format!("{cores} cores, {arch}{load}")
}

/// One line of the table: what, the figure, and the target with its verdict when judged.
fn row(what: &str, value: &str, target: Option<(String, bool)>) {
    match target {
        Some((t, met)) => {
            let verdict = if met { "met" } else { "MISSED" };
            println!("{what:<46} {value:>18}   {t:<9} {verdict}");
        }
        None => println!("{what:<46} {value:>18}"),
    }
}

fn run() -> Result<()> {
    let bin = binary()?;
    let members = env_count("RCHAT_BENCH_MEMBERS", DEFAULT_MEMBERS, 1..=99);
    let count = env_count("RCHAT_BENCH_MESSAGES", DEFAULT_MESSAGES, 1..=10_000);
    let stagger = Duration::from_millis(env_count("RCHAT_BENCH_STAGGER_MS", 0, 0..=10_000) as u64);
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    let machine = machine();
    let mut names = vec![HOST_NAME.to_owned()];
    names.extend((1..=members).map(|i| format!("m{i:02}")));

    let keys = std::env::temp_dir().join("rchat-bench-room-keys");
    let t = Instant::now();
    let made = make_keys(&bin, &keys, &names, cores)?;
    if made > 0 {
        println!(
            "made {made} {BITS}-bit keys in {} ({:.1} s; kept for the next run)",
            keys.display(),
            t.elapsed().as_secs_f64()
        );
    }

    let (tx, rx) = mpsc::channel();
    let n = names.len();
    let mut room = Room {
        bin,
        keys,
        port: 0,
        names,
        tx,
        rx,
        children: Children((0..n).map(|_| None).collect()),
        runs: vec![0; n],
        stderr: vec![Vec::new(); n],
        stdout: vec![Vec::new(); n],
        seated: HashSet::new(),
        last_seated: None,
        entered: vec![None; n],
        knows: vec![HashSet::new(); n],
        last_known: None,
        closed_by_host: 0,
        restarts: BTreeMap::new(),
    };
    room.spawn(0)?;
    // The port, from "listening on port N".
    let until = Instant::now() + START_TIMEOUT;
    room.port = loop {
        let port = room.stderr[0].iter().find_map(|l| {
            l.strip_prefix("listening on port ")?.split_whitespace().next()?.parse::<u16>().ok()
        });
        if let Some(port) = port {
            break port;
        }
        if let Some(who) = room.next(until, "waiting for the host to listen")? {
            return fail(room.last_words(who));
        }
    };
    let memory_idle = status_kb(room.pid(0), "VmHWM:");
    let joined = join(&mut room, stagger)?;
    let memory_joined = status_kb(room.pid(0), "VmHWM:");
    let mut rows = Vec::new();
    if members >= 2 {
        rows.push(messages(&mut room, 1, count)?);
    }
    rows.push(messages(&mut room, 0, count)?);
    let memory = status_kb(room.pid(0), "VmHWM:");
    let rss = status_kb(room.pid(0), "VmRSS:");
    let troubles: Vec<String> = room.host_troubles().into_iter().map(str::to_owned).collect();
    let (closed_by_host, restarts) = (room.closed_by_host, room.restarted());
    let reasons = room.restart_reasons();
    drop(room);

    // The targets are for 40 members: with another number they are not judged.
    let judged = members == DEFAULT_MEMBERS;
    let target = |t: String, met: bool| judged.then_some((t, met));
    let start = if stagger.is_zero() { "at once".to_owned() } else { format!("{stagger:?} apart") };
    println!();
    println!(
        "rchat room on 127.0.0.1: the host and {members} members (started {start}), {BITS}-bit \
         keys from files, {count} messages per sender, one at a time"
    );
    println!("machine: {machine}");
    println!("{:<46} {:>18}   {:<9}", "", "measured", "target");
    let join_time = joined.seated.max(joined.last_in);
    row(
        &format!("join {members}: all seated and in the room"),
        &secs(join_time),
        // Met only if every joiner got in at its first try.
        target(format!("< {} s", TARGET_JOIN.as_secs()), join_time < TARGET_JOIN && restarts == 0),
    );
    row("  the host's last \"joined from\"", &secs(joined.seated), None);
    row(
        "  first / last member \"in the room\"",
        &format!("{} / {}", secs(joined.first_in), secs(joined.last_in)),
        None,
    );
    row("  every member knows every other", &secs(joined.known), None);
    row("  joiners started again (they ended in error)", &restarts.to_string(), None);
    row("  starting the processes", &ms(joined.spawning), None);
    row(
        "  CPU: host / members, during the join",
        &format!("{} / {}", cpu(joined.host_cpu), cpu(joined.members_cpu)),
        None,
    );
    for lat in &rows {
        let med = median(&lat.last);
        let role = if lat.sender == HOST_NAME { "host" } else { "a member" };
        row(
            &format!("message, {} ({role}) to {}: last, median", lat.sender, lat.recipients),
            &ms(med),
            target(format!("< {} ms", TARGET_MESSAGE.as_millis()), med < TARGET_MESSAGE),
        );
        row(
            "  last recipient, worst",
            &ms(lat.last.iter().max().copied().unwrap_or_default()),
            None,
        );
        row("  first recipient, median", &ms(median(&lat.first)), None);
        row("  every recipient, median", &ms(median(&lat.each)), None);
        let per = |v: Option<f64>| {
            v.map_or_else(|| "n/a".to_owned(), |s| format!("{:.1}", s * 1000.0 / count as f64))
        };
        row(
            "  CPU per message: host / members",
            &format!("{} / {} ms", per(lat.host_cpu), per(lat.members_cpu)),
            None,
        );
    }
    let mb = |kb: Option<u64>| kb.map(|k| k as f64 / 1024.0);
    let peak = mb(memory);
    row(
        "host peak memory (VmHWM), at the end",
        &peak.map_or_else(|| "n/a".to_owned(), |m| format!("{m:.1} MB")),
        peak.and_then(|m| target(format!("< {TARGET_MEMORY_MB:.0} MB"), m < TARGET_MEMORY_MB)),
    );
    row(
        "  peak before / after the join; RSS at the end",
        &match (mb(memory_idle), mb(memory_joined), mb(rss)) {
            (Some(a), Some(b), Some(c)) => format!("{a:.1} / {b:.1}; {c:.1} MB"),
            _ => "n/a".to_owned(),
        },
        None,
    );
    if !judged {
        println!("(the targets are for {DEFAULT_MEMBERS} members: not judged here)");
    }
    if restarts > 0 {
        println!(
            "{restarts} joiners ended with an error before they entered and were started again: \
             {reasons}; the host said {closed_by_host} times that it \"closed the connection from\" \
             a candidate that had sent nothing, to make room for a newer one"
        );
    }
    let others: Vec<&String> =
        troubles.iter().filter(|l| !l.starts_with("closed the connection from ")).collect();
    if !others.is_empty() {
        println!(
            "the host also said: {}",
            others.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" | ")
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(why)) => {
            println!("room bench failed: {why}");
            ExitCode::FAILURE
        }
    }
}
