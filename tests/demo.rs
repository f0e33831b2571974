//! `rchat demo`: the scripted chat in one process, both modes, with and without a recording,
//! and cut short by Ctrl-C.

mod common;

use std::process::{Command, Stdio};
use std::time::Instant;

use common::{BIN, follow, have_tool, scratch};
#[cfg(unix)]
use common::{Proc, tshark_complaints, tshark_count};
use rchat::chat::demo::{PAUSE, SCRIPT};
#[cfg(unix)]
use rchat::protocol::wire::{Frame, FrameType};

fn demo(extra: &[&str]) -> (String, String) {
    let start = Instant::now();
    let out = Command::new(BIN)
        .args(["demo", "--fast", "--port", "0"])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    // Without --fast the pauses between the lines alone take this long.
    let paused = PAUSE * (SCRIPT.len() as u32 - 1);
    assert!(start.elapsed() < paused, "--fast does not wait: {:?}", start.elapsed());
    (stdout, stderr)
}

/// Every scripted line was sent by its speaker and received by the other, in order.
fn check_script(stdout: &str) {
    let mut lines = stdout.lines();
    for (from, text) in SCRIPT {
        let to = from.other().name();
        let said = format!("{} → {to}: {text}", from.name());
        let got = format!("  {to} received: {text}");
        assert!(lines.any(|l| l == said), "missing {said:?} in:\n{stdout}");
        assert!(lines.any(|l| l == got), "missing {got:?} in:\n{stdout}");
    }
}

#[test]
fn encrypted_demo_shows_fingerprints_and_every_line() {
    let (stdout, _) = demo(&[]);
    assert_eq!(stdout.matches("fingerprint SHA256:").count(), 2, "{stdout}");
    assert!(stdout.contains("wire: sent MESSAGE #0"), "{stdout}");
    check_script(&stdout);
}

#[test]
fn plaintext_demo_shows_every_line() {
    let (stdout, _) = demo(&["--plaintext"]);
    assert!(!stdout.contains("fingerprint"), "{stdout}");
    assert!(stdout.contains("bytes in the clear"), "{stdout}");
    check_script(&stdout);
}

#[test]
fn recorded_demo_opens_in_tshark() {
    let dir = scratch("demo");
    let plain = dir.path().join("plain.pcap");
    let enc = dir.path().join("enc.pcap");
    let (stdout, _) = demo(&["--plaintext", "--record", plain.to_str().unwrap()]);
    check_script(&stdout);
    assert!(stdout.contains("recorded to"), "{stdout}");
    demo(&["--record", enc.to_str().unwrap()]);
    if !have_tool("tshark") {
        return;
    }
    let bytes = follow(&plain).bytes.concat();
    for (_, text) in SCRIPT {
        let line = format!("{text}\n");
        assert!(bytes.windows(line.len()).any(|w| w == line.as_bytes()), "{text} not on the wire");
    }
    let bytes = follow(&enc).bytes.concat();
    assert!(bytes.starts_with(b"RCHT"), "the encrypted stream starts with a frame");
    let secret = b"4719";
    assert!(!bytes.windows(secret.len()).any(|w| w == secret), "no plaintext when encrypted");
}

#[test]
fn a_busy_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = Command::new(BIN).args(["demo", "--fast", "--port", &port]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already in use") && err.contains("--port"), "{err}");
}

/// The frame types of one direction of a recorded encrypted stream, decoded by rchat; every
/// byte must belong to a whole frame.
#[cfg(unix)]
fn frame_types(bytes: &[u8]) -> Vec<FrameType> {
    let mut kinds = vec![];
    let mut rest = bytes;
    while !rest.is_empty() {
        let (frame, used) = Frame::parse(rest)
            .unwrap_or_else(|e| panic!("not an rchat frame after {kinds:?}: {e}"))
            .unwrap_or_else(|| panic!("the stream ends inside a frame after {kinds:?}"));
        kinds.push(frame.kind);
        rest = &rest[used..];
    }
    kinds
}

/// `rchat demo` (with its pauses) recording to a file in a scratch folder: the folder (keep
/// it), the file and the running demo.
#[cfg(unix)]
fn recorded_demo(tag: &str) -> (tempfile::TempDir, std::path::PathBuf, Proc) {
    let dir = scratch(tag);
    let file = dir.path().join("demo.pcap");
    let demo = Proc::spawn(&["demo", "--port", "0", "--record", file.to_str().unwrap()]);
    (dir, file, demo)
}

/// Send Ctrl-C's signal to a running demo.
#[cfg(unix)]
fn interrupt(demo: &Proc) {
    let pid = demo.child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
}

/// A demo cut short by Ctrl-C: it ends with status 0 after "(stopped early)", sends no line
/// after it, both say goodbye, and its recording is a whole capture: clean in tshark, a FIN
/// each way, and each direction a run of whole frames from a HELLO to a BYE, holding every
/// line shown as received. Returns how many lines were received.
#[cfg(unix)]
fn check_stopped_early(mut demo: Proc, file: &std::path::Path) -> usize {
    assert_eq!(demo.finish(30), 0, "stdout: {:#?}\nstderr: {:#?}", demo.out, demo.err);
    let out = &demo.out;
    let stopped = out.iter().position(|l| l == "(stopped early)");
    let stopped = stopped.unwrap_or_else(|| panic!("no \"(stopped early)\" in {out:#?}"));
    let received = out.iter().filter(|l| l.contains(" received: ")).count();
    assert!(received < SCRIPT.len(), "the whole script was played: {out:#?}");
    assert!(!out[stopped..].iter().any(|l| l.contains(" → ")), "a line after the stop: {out:#?}");
    let left = "alice and bob left: each sent a signed BYE frame, then closed the connection";
    assert!(out[stopped..].iter().any(|l| l.starts_with(left)), "no goodbyes: {out:#?}");
    assert!(out.last().is_some_and(|l| l.starts_with("recorded to ")), "{out:#?}");
    assert!(!demo.err.iter().any(|l| l.contains("error")), "{:#?}", demo.err);

    if have_tool("tshark") {
        let complaints = tshark_complaints(file);
        assert!(complaints.is_empty(), "tshark complains about the recording:\n{complaints}");
        assert_eq!(tshark_count(file, "tcp.flags.fin==1"), 2, "a FIN each way");
        let f = follow(file);
        let mut messages = 0;
        for (node, bytes) in f.bytes.iter().enumerate() {
            let kinds = frame_types(bytes);
            assert_eq!(kinds.first(), Some(&FrameType::Hello), "node {node}: {kinds:?}");
            assert_eq!(kinds.last(), Some(&FrameType::Bye), "node {node} said goodbye: {kinds:?}");
            messages += kinds.iter().filter(|k| **k == FrameType::Message).count();
        }
        assert_eq!(messages, received, "every line shown as received is in the recording");
    }
    received
}

/// Ctrl-C while the demo pauses between two lines (no `--fast`): the rest of the script is
/// skipped (see [`check_stopped_early`]).
#[cfg(unix)]
#[test]
fn ctrl_c_during_a_pause_skips_to_the_goodbyes() {
    let (_dir, file, mut demo) = recorded_demo("demo-ctrlc");
    // Once bob shows the first line, the demo pauses before the next one.
    let first = format!("  bob received: {}", SCRIPT[0].1);
    demo.wait_out(|l| l == first, 120);
    let interrupted = Instant::now();
    interrupt(&demo);
    let received = check_stopped_early(demo, &file);
    assert!(received >= 1, "the first line was received before the stop");
    // Playing the rest of the script would have taken at least this long.
    let rest = PAUSE * (SCRIPT.len() as u32 - 2);
    assert!(interrupted.elapsed() < rest, "Ctrl-C did not cut the script short");
}

/// Ctrl-C while the keys are being made: no line of the script is sent, but the two still
/// connect and say goodbye, so the recording is whole.
#[cfg(unix)]
#[test]
fn ctrl_c_while_the_keys_are_made_still_ends_properly() {
    let (_dir, file, mut demo) = recorded_demo("demo-ctrlc-keys");
    demo.wait_out(|l| l.starts_with("making a 2048-bit RSA key"), 60);
    interrupt(&demo);
    assert_eq!(check_stopped_early(demo, &file), 0);
}

/// A second Ctrl-C stops the demo at once, with status 130.
#[cfg(unix)]
#[test]
fn a_second_ctrl_c_stops_at_once() {
    let mut demo = Proc::spawn(&["demo", "--port", "0"]);
    demo.wait_out(|l| l.starts_with("making a 2048-bit RSA key"), 60);
    // Ctrl-C again and again until it stops: the first skips to the goodbyes, and one of the
    // next (two sent close together may arrive as one) must stop it before it ends by itself.
    let deadline = Instant::now() + std::time::Duration::from_secs(30);
    while demo.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        interrupt(&demo);
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    assert_eq!(demo.finish(30), 130, "stdout: {:#?}\nstderr: {:#?}", demo.out, demo.err);
    assert!(!demo.out.iter().any(|l| l.contains(" → ")), "the script went on: {:#?}", demo.out);
}
