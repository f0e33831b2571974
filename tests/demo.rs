//! `rchat demo`: the scripted chat in one process, both modes, with and without a recording.

mod common;

use std::process::{Command, Stdio};
use std::time::Instant;

use common::{BIN, follow, have_tool, scratch};
use rchat::chat::demo::{PAUSE, SCRIPT};

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
