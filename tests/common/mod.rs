//! Shared helpers for the integration tests: run the real `rchat` binary, feed its stdin,
//! and wait (with a limit) for lines on its stdout and stderr; scripted chats; temporary
//! folders that remove themselves; external tools that may be missing; and tshark's Follow
//! TCP Stream. [`capture`] builds packets and capture files for the `analyze_*` tests.
#![allow(dead_code)]

pub mod capture;

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

/// Path of the binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_rchat");

/// A running `rchat` with its output collected line by line.
pub struct Proc {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    out_rx: Receiver<String>,
    err_rx: Receiver<String>,
    pub out: Vec<String>,
    pub err: Vec<String>,
}

fn pump(stream: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            match line {
                Ok(l) => {
                    if tx.send(l).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    });
    rx
}

/// The command `rchat ARGS`.
pub fn rchat_command(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    cmd
}

impl Proc {
    /// Start `rchat ARGS` with piped stdio.
    pub fn spawn(args: &[&str]) -> Proc {
        Proc::start(rchat_command(args))
    }

    /// Start a command (rchat, or a wrapper that runs it) with piped stdio.
    pub fn start(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let out_rx = pump(child.stdout.take().unwrap());
        let err_rx = pump(child.stderr.take().unwrap());
        let stdin = child.stdin.take();
        Proc { child, stdin, out_rx, err_rx, out: vec![], err: vec![] }
    }

    /// Start `rchat host` on loopback with an ephemeral port; returns it and its port.
    pub fn host(extra: &[&str]) -> (Proc, u16) {
        Proc::host_with(extra, rchat_command)
    }

    /// [`Proc::host`], run by the command `command` makes of rchat's arguments (a wrapper
    /// that sets a limit first, say).
    pub fn host_with(extra: &[&str], command: impl FnOnce(&[&str]) -> Command) -> (Proc, u16) {
        let mut args = vec!["host", "--bind", "127.0.0.1", "--port", "0"];
        args.extend_from_slice(extra);
        let mut p = Proc::start(command(&args));
        let port = p.listening_port();
        (p, port)
    }

    /// Wait for a host's `listening on port N` line and return N.
    pub fn listening_port(&mut self) -> u16 {
        let line = self.wait_err(|l| l.starts_with("listening on port "), 60);
        line.trim_start_matches("listening on port ")
            .split_whitespace()
            .next()
            .and_then(|s| s.parse().ok())
            .expect("port in the listening line")
    }

    /// Write lines to stdin if the process still reads it: `false` if it has already closed
    /// it (it exited first, which the caller allows).
    pub fn try_send(&mut self, lines: &[&str]) -> bool {
        let Some(stdin) = self.stdin.as_mut() else { return false };
        lines
            .iter()
            .try_for_each(|l| stdin.write_all(l.as_bytes()).and_then(|()| stdin.write_all(b"\n")))
            .and_then(|()| stdin.flush())
            .is_ok()
    }

    /// Write lines to stdin.
    pub fn send(&mut self, lines: &[&str]) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        for l in lines {
            stdin.write_all(l.as_bytes()).unwrap();
            stdin.write_all(b"\n").unwrap();
        }
        stdin.flush().unwrap();
    }

    /// Close stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    fn drain(&mut self) {
        while let Ok(l) = self.out_rx.try_recv() {
            self.out.push(l);
        }
        while let Ok(l) = self.err_rx.try_recv() {
            self.err.push(l);
        }
    }

    /// Wait for a stderr line matching `pred`; panic with everything seen after `secs`.
    pub fn wait_err(&mut self, pred: impl Fn(&str) -> bool, secs: u64) -> String {
        self.wait_line(false, pred, secs)
    }

    /// Wait for a stdout line matching `pred`; panic with everything seen after `secs`.
    pub fn wait_out(&mut self, pred: impl Fn(&str) -> bool, secs: u64) -> String {
        self.wait_line(true, pred, secs)
    }

    /// Take in the output until `found` gives something; panic, saying what was expected
    /// (`what`) and with everything seen, after `secs`.
    fn wait_for<T>(
        &mut self,
        secs: u64,
        what: &str,
        mut found: impl FnMut(&Proc) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            self.drain();
            if let Some(t) = found(self) {
                return t;
            }
            if Instant::now() > deadline {
                panic!(
                    "no {what} within {secs} s; stdout: {:#?}\nstderr: {:#?}",
                    self.out, self.err
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait for a line of stdout (`out`) or stderr matching `pred`, looking at each line once.
    fn wait_line(&mut self, out: bool, pred: impl Fn(&str) -> bool, secs: u64) -> String {
        let mut seen = 0;
        let what = if out { "expected stdout line" } else { "expected stderr line" };
        self.wait_for(secs, what, |p| {
            let lines = if out { &p.out } else { &p.err };
            let hit = lines.get(seen..).and_then(|new| new.iter().find(|l| pred(l))).cloned();
            seen = lines.len();
            hit
        })
    }

    /// Wait until stdout has `n` lines.
    pub fn wait_out_lines(&mut self, n: usize, secs: u64) {
        let what = format!("{n} stdout lines");
        self.wait_for(secs, &what, |p| (p.out.len() >= n).then_some(()));
    }

    /// Wait for the process to exit; kill it and panic after `secs`.
    pub fn finish(&mut self, secs: u64) -> i32 {
        self.stdin = None;
        let Some(status) = exit_within(&mut self.child, secs) else {
            self.drain();
            panic!("rchat did not exit within {secs} s; stderr: {:#?}", self.err);
        };
        // Let the pumps catch the last lines.
        thread::sleep(Duration::from_millis(50));
        self.drain();
        status.code().unwrap_or(-1)
    }

    /// Whether stderr so far has a line containing `needle`.
    pub fn err_has(&mut self, needle: &str) -> bool {
        self.drain();
        self.err.iter().any(|l| l.contains(needle))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A scripted chat through the real binaries: a host with `host_args` (on 127.0.0.1, an
/// ephemeral port) and a joiner with `join_args`, each fed its lines with its input then
/// closed. `during` runs once the host listens, before the joiner starts. Both must exit 0;
/// returns them (their `out` holds what each received) and the port.
pub fn converse(
    host_args: &[&str],
    join_args: &[&str],
    host_lines: &[String],
    join_lines: &[String],
    during: impl FnOnce(u16),
) -> (Proc, Proc, u16) {
    let (mut host, port) = Proc::host(host_args);
    during(port);
    let target = format!("127.0.0.1:{port}");
    let mut args = vec!["join", target.as_str()];
    args.extend_from_slice(join_args);
    let mut join = Proc::spawn(&args);
    let h: Vec<&str> = host_lines.iter().map(String::as_str).collect();
    let j: Vec<&str> = join_lines.iter().map(String::as_str).collect();
    host.send(&h);
    host.close_stdin();
    join.send(&j);
    join.close_stdin();
    assert_eq!(join.finish(120), 0, "joiner stderr: {:#?}", join.err);
    assert_eq!(host.finish(120), 0, "host stderr: {:#?}", host.err);
    (host, join, port)
}

/// The shipped captures: the file names in the first column of the table in
/// `captures/README.md` whose last column is a sha256 (as `tests/captures.rs` reads it), in
/// the table's order. Whatever is added to the table is covered by the tests that use this.
pub fn shipped_captures() -> Vec<String> {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("captures/README.md");
    let text = fs::read_to_string(&readme).expect("captures/README.md");
    let mut out = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).filter(|c| !c.is_empty()).collect();
        let (Some(first), Some(last)) = (cells.first(), cells.last()) else { continue };
        let hash = last.trim_matches('`');
        if cells.len() >= 3 && hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            out.push(first.trim_matches('`').to_string());
        }
    }
    out
}

/// Every file under `dir`, at any depth, in order (none if it cannot be read).
pub fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for path in fs::read_dir(&d).into_iter().flatten().flatten().map(|e| e.path()) {
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// A fresh empty folder `rchat-{tag}-XXXXXX` in the system temp dir, removed when dropped.
///
/// Keep the value alive while the folder is used: `let dir = scratch("x");` then
/// `dir.path()` (`scratch("x").path()` alone drops it, and the folder, at once).
pub fn scratch(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("rchat-{tag}-"))
        .tempdir()
        .unwrap_or_else(|e| panic!("cannot make a temporary folder for {tag}: {e}"))
}

/// Run `cmd` (stdin closed, stdout and stderr collected) and wait for it to exit; kill it
/// and panic after `secs`.
pub fn output_within(mut cmd: Command, secs: u64) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let collect = |stream: Option<Box<dyn std::io::Read + Send>>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut s) = stream {
                let _ = s.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = collect(child.stdout.take().map(|s| Box::new(s) as _));
    let err = collect(child.stderr.take().map(|s| Box::new(s) as _));
    let Some(status) = exit_within(&mut child, secs) else {
        panic!("{cmd:?} did not exit within {secs} s");
    };
    std::process::Output { status, stdout: out.join().unwrap(), stderr: err.join().unwrap() }
}

/// Wait for `child` to exit; after `secs`, kill it, reap it and return `None`.
fn exit_within(child: &mut Child, secs: u64) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Packets of a capture that tshark flags: bad checksums, malformed packets, expert
/// warnings or errors (one summary line each; empty when the file is clean).
pub fn tshark_complaints(path: &Path) -> String {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(path)
        .args(["-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE", "-Y"])
        .arg(
            "tcp.checksum.status==0 || ip.checksum.status==0 || _ws.malformed \
             || _ws.expert.severity>=warning",
        )
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "tshark failed on {}", path.display());
    String::from_utf8(out.stdout).unwrap()
}

/// How many packets of a capture match a tshark display filter.
pub fn tshark_count(path: &Path, filter: &str) -> usize {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(path)
        .args(["-Y", filter])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().lines().count()
}

/// Whether an external tool may be used: true when present; when absent, false with a
/// message, or a panic when `RCHAT_REQUIRE_TOOLS=1`.
pub fn have_tool(name: &str) -> bool {
    // Only whether the program starts counts, not its exit status: not every tool knows
    // `--version` (OpenBSD nc, tmux), and with stdin closed none can wait for input.
    let found = Command::new(name)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        if std::env::var("RCHAT_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("{name} is required (RCHAT_REQUIRE_TOOLS=1) but is not installed");
        }
        eprintln!("skipping: {name} is not installed");
    }
    found
}

/// Both directions of one TCP stream as tshark's Follow TCP Stream (raw) shows them.
#[derive(Debug, PartialEq, Eq)]
pub struct Follow {
    /// `addr:port` (IPv6 as `[addr]:port`) of node 0, the side that sent the stream's first
    /// packet (the client), and of node 1.
    pub nodes: [String; 2],
    /// The bytes each node sent.
    pub bytes: [Vec<u8>; 2],
}

/// tshark's Follow TCP Stream (raw) of TCP stream 0 of a capture.
pub fn follow(path: &Path) -> Follow {
    follow_stream(path, 0)
}

/// tshark's Follow TCP Stream (raw) of TCP stream `index` of a capture; panics when tshark
/// fails or has no such stream.
pub fn follow_stream(path: &Path, index: u64) -> Follow {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(path)
        .args(["-q", "-z", &format!("follow,tcp,raw,{index}")])
        .stdin(Stdio::null())
        .output()
        .expect("run tshark");
    assert!(
        out.status.success(),
        "tshark failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("tshark's follow output is UTF-8");
    // A header (`Follow: tcp,raw`, `Filter: ...`, `Node 0: ADDR:PORT`, `Node 1: ADDR:PORT`),
    // then one line of hex per segment, node 1's behind a tab, and a closing `=====` line.
    let mut nodes = [String::new(), String::new()];
    let mut bytes = [Vec::new(), Vec::new()];
    let mut in_body = false;
    for line in text.lines() {
        if let Some(n) = line.strip_prefix("Node 0: ") {
            nodes[0] = n.trim().to_string();
        } else if let Some(n) = line.strip_prefix("Node 1: ") {
            nodes[1] = n.trim().to_string();
            in_body = true;
        } else if in_body && line.starts_with("===") {
            break;
        } else if in_body && !line.trim().is_empty() {
            let (node, hex) = match line.strip_prefix('\t') {
                Some(rest) => (1, rest),
                None => (0, line),
            };
            let decoded = hex::decode(hex.trim())
                .unwrap_or_else(|e| panic!("not hex in tshark's follow output ({e}): {line:?}"));
            bytes[node].extend(decoded);
        }
    }
    // A stream tshark does not have shows as `Node 0: :0`.
    assert!(
        !nodes[0].is_empty() && nodes[0] != ":0",
        "no TCP stream {index} in {}: {text}",
        path.display()
    );
    Follow { nodes, bytes }
}

/// Whether the tests run as root (tcpdump needs it to capture on loopback).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// tcpdump on loopback for one port, started and ready.
pub struct Tcpdump {
    child: std::process::Child,
    file: std::path::PathBuf,
}

impl Tcpdump {
    pub fn start(file: std::path::PathBuf, port: u16) -> Tcpdump {
        let mut child = Command::new("tcpdump")
            .args(["-i", "lo", "-U", "-n", "-w"])
            .arg(&file)
            .args(["tcp", "port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // tcpdump says "listening on lo ..." on stderr once it captures.
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) if line.contains("listening on") => break,
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    panic!("tcpdump did not start listening within 20 s");
                }
            }
        }
        Tcpdump { child, file }
    }

    /// Wait until the capture holds `fins` FINs (tcpdump may lag behind on a busy machine),
    /// then stop it with SIGINT and wait for it.
    pub fn stop(mut self, fins: usize) -> std::path::PathBuf {
        let deadline = Instant::now() + Duration::from_secs(20);
        while tshark_count(&self.file, "tcp.flags.fin==1") < fins && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(200));
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("tcpdump did not stop within 10 s of SIGINT");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.file.clone()
    }
}

impl Drop for Tcpdump {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
