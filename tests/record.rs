//! `--record`: real host and join processes on loopback write their connection to a pcap
//! file; tshark reads it back (payload each way, no checksum or malformed warnings), and
//! where tcpdump can run, its capture of the same session has the same TCP stream bytes.
//! A recording that cannot be written, from the start or half-way through the chat, is one
//! clear error line and status 1, and never breaks the chat itself.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{
    BIN, Follow, Proc, Tcpdump, follow, have_tool, is_root, scratch,
    tshark_complaints as complaints, tshark_count as count,
};
use tempfile::TempDir;

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A finished session: host and joiner each recorded it.
struct Session {
    /// The folder holding both recordings, removed with the session.
    _dir: TempDir,
    host_file: PathBuf,
    join_file: PathBuf,
    port: u16,
}

/// Run host and join with `--record`, each piping its lines; `during` runs once the host
/// listens (and before the joiner starts), e.g. to start tcpdump.
fn recorded_session(
    tag: &str,
    mode: &[&str],
    host_lines: &[String],
    join_lines: &[String],
    during: impl FnOnce(u16),
) -> Session {
    let dir = scratch(&format!("record-{tag}"));
    let host_file = dir.path().join("host.pcap");
    let join_file = dir.path().join("join.pcap");
    let mut host_args = mode.to_vec();
    host_args.extend(["--record", path_str(&host_file)]);
    let mut join_args = mode.to_vec();
    join_args.extend(["--record", path_str(&join_file)]);
    let (host, join, port) =
        common::converse(&host_args, &join_args, host_lines, join_lines, during);
    assert_eq!(host.out.len(), join_lines.len(), "host got every line");
    assert_eq!(join.out.len(), host_lines.len(), "joiner got every line");
    Session { _dir: dir, host_file, join_file, port }
}

fn lines(tag: &str) -> Vec<String> {
    let mut v: Vec<String> =
        (0..5).map(|i| format!("{tag} line {i}: the locker code is 4719")).collect();
    v.push("x".repeat(64 * 1024));
    v.push("Unicode too: Привет 🙂".into());
    v
}

fn as_stream(lines: &[String]) -> Vec<u8> {
    lines.iter().flat_map(|l| [l.as_bytes(), b"\n"].concat()).collect()
}

/// Both recordings are clean and show the same connection: the joiner is node 0 (it sent
/// the SYN) and the host's port is node 1's.
fn check_pair(s: &Session) -> Follow {
    for file in [&s.host_file, &s.join_file] {
        let complaints = complaints(file);
        assert!(complaints.is_empty(), "tshark complains about {}:\n{complaints}", file.display());
        assert_eq!(count(file, "tcp.flags.syn==1"), 2, "SYN and SYN+ACK in {}", file.display());
        assert_eq!(count(file, "tcp.flags.fin==1"), 2, "a FIN each way in {}", file.display());
    }
    let from_host = follow(&s.host_file);
    let from_join = follow(&s.join_file);
    assert_eq!(from_host, from_join, "host and joiner recorded the same stream");
    assert!(from_host.nodes[1].ends_with(&format!(":{}", s.port)), "{:?}", from_host.nodes);
    from_host
}

#[test]
fn plaintext_recordings_hold_the_lines_each_way() {
    if !have_tool("tshark") {
        return;
    }
    let (h, j) = (lines("host"), lines("joiner"));
    let s = recorded_session("plain", &["--plaintext"], &h, &j, |_| {});
    let f = check_pair(&s);
    assert!(f.bytes[0] == as_stream(&j), "joiner to host: {} bytes", f.bytes[0].len());
    assert!(f.bytes[1] == as_stream(&h), "host to joiner: {} bytes", f.bytes[1].len());
}

#[test]
fn encrypted_recordings_hold_the_frames_each_way() {
    if !have_tool("tshark") {
        return;
    }
    let (h, j) = (lines("host"), lines("joiner"));
    let s = recorded_session("enc", &[], &h, &j, |_| {});
    let f = check_pair(&s);
    for (dir, sent) in [(0, &j), (1, &h)] {
        let bytes = &f.bytes[dir];
        assert!(bytes.starts_with(b"RCHT"), "direction {dir} starts with a frame");
        // HELLO + AUTH + one MESSAGE per line + BYE, each at least a header; the 64 KiB
        // line alone takes 345 RSA blocks of 256 bytes.
        let text: usize = sent.iter().map(String::len).sum();
        assert!(bytes.len() > text + 345 * 66, "direction {dir}: {} bytes", bytes.len());
        let secret = b"locker code is 4719";
        assert!(!bytes.windows(secret.len()).any(|w| w == secret), "no plaintext on the wire");
    }
    // Each message's signature leaves in a write of its own, after the blocks: 2 bytes of
    // length and a 256-byte RSA-2048 signature, for each of the 7 messages a side sends.
    // (What a side received is recorded as its reads returned it, so only its own writes
    // are counted.)
    let port = s.port;
    for (file, sent_by) in [(&s.host_file, "srcport"), (&s.join_file, "dstport")] {
        let filter = format!("tcp.{sent_by}=={port} && tcp.len==258");
        assert_eq!(count(file, &filter), 7, "signature segments in {}", file.display());
    }
}

fn compare_with_tcpdump(tag: &str, mode: &[&str]) {
    if !have_tool("tshark") || !have_tool("tcpdump") {
        return;
    }
    if !is_root() {
        eprintln!("skipping: tcpdump needs root to capture on loopback");
        return;
    }
    let real_dir = scratch(&format!("record-{tag}-real"));
    let real = real_dir.path().join("tcpdump.pcap");
    let mut dump = None;
    let (h, j) = (lines("host"), lines("joiner"));
    let s = recorded_session(tag, mode, &h, &j, |port| {
        dump = Some(Tcpdump::start(real.clone(), port));
    });
    let real = dump.unwrap().stop(2);
    let recorded = check_pair(&s);
    let captured = follow(&real);
    assert_eq!(captured.nodes, recorded.nodes, "same endpoints");
    for dir in 0..2 {
        assert!(
            captured.bytes[dir] == recorded.bytes[dir],
            "direction {dir}: tcpdump saw {} bytes, the recording has {}",
            captured.bytes[dir].len(),
            recorded.bytes[dir].len()
        );
    }
}

#[test]
fn plaintext_recording_equals_a_tcpdump_capture() {
    compare_with_tcpdump("plain-dump", &["--plaintext"]);
}

#[test]
fn encrypted_recording_equals_a_tcpdump_capture() {
    compare_with_tcpdump("enc-dump", &[]);
}

#[test]
fn ctrl_c_closes_the_recording_properly() {
    if !have_tool("tshark") {
        return;
    }
    let dir = scratch("record-ctrlc");
    let file = dir.path().join("join.pcap");
    let (mut host, port) = Proc::host(&[]);
    let target = format!("127.0.0.1:{port}");
    let mut join = Proc::spawn(&["join", &target, "--record", path_str(&file)]);
    join.send(&["before the interrupt"]);
    host.wait_out_lines(1, 60);
    let pid = join.child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    assert_eq!(join.finish(30), 0, "{:#?}", join.err);
    host.close_stdin();
    assert_eq!(host.finish(30), 0, "{:#?}", host.err);
    let complaints = complaints(&file);
    assert!(complaints.is_empty(), "{complaints}");
    assert_eq!(count(&file, "tcp.flags.fin==1"), 2);
    let f = follow(&file);
    assert!(f.bytes[0].starts_with(b"RCHT") && f.bytes[1].starts_with(b"RCHT"));
}

#[test]
fn an_unwritable_file_is_one_error_before_connecting() {
    let dir = scratch("record-unwritable");
    let bad = dir.path().join("no-such-folder").join("x.pcap");
    for args in [
        vec!["join", "127.0.0.1:1", "--plaintext", "--record", path_str(&bad)],
        vec!["host", "--bind", "127.0.0.1", "--port", "0", "--record", path_str(&bad)],
    ] {
        let out = Command::new(BIN).args(&args).stdin(Stdio::null()).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("rchat: error: cannot write the recording"), "{err}");
        assert!(err.contains("x.pcap"), "{err}");
    }
}

#[test]
fn help_says_it_is_a_reconstruction() {
    for sub in ["host", "join"] {
        let out = Command::new(BIN).args([sub, "--help"]).output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(help.contains("--record") && help.contains("not a sniffer"), "{help}");
    }
}

#[test]
fn ipv6_connections_are_recorded_as_ipv6() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipping: no IPv6 loopback on this machine");
        return;
    }
    if !have_tool("tshark") {
        return;
    }
    let dir = scratch("record-ipv6");
    let (host_file, join_file) = (dir.path().join("host.pcap"), dir.path().join("join.pcap"));
    let mut host = Proc::spawn(&[
        "host",
        "--bind",
        "::1",
        "--port",
        "0",
        "--plaintext",
        "--record",
        path_str(&host_file),
    ]);
    let line = host.wait_err(|l| l.starts_with("listening on port "), 60);
    let port: u16 = line.split_whitespace().nth(3).unwrap().parse().unwrap();
    let target = format!("[::1]:{port}");
    let mut join = Proc::spawn(&["join", &target, "--plaintext", "--record", path_str(&join_file)]);
    join.send(&["over IPv6"]);
    join.close_stdin();
    host.send(&["and back"]);
    host.close_stdin();
    assert_eq!(join.finish(60), 0, "{:#?}", join.err);
    assert_eq!(host.finish(60), 0, "{:#?}", host.err);
    let s = Session { _dir: dir, host_file, join_file, port };
    let f = check_pair(&s);
    assert_eq!(f.nodes[1], format!("[::1]:{port}"));
    assert_eq!(f.bytes, [b"over IPv6\n".to_vec(), b"and back\n".to_vec()]);
    assert_eq!(count(&s.host_file, "ipv6"), count(&s.host_file, "tcp"));
}

#[test]
fn a_failed_handshake_is_recorded_and_closed() {
    if !have_tool("tshark") {
        return;
    }
    // A plaintext joiner meets an encrypted host: it stops with an error after the HELLO.
    let dir = scratch("record-failed");
    let file = dir.path().join("join.pcap");
    let (mut host, port) = Proc::host(&[]);
    let target = format!("127.0.0.1:{port}");
    let mut join = Proc::spawn(&["join", &target, "--plaintext", "--record", path_str(&file)]);
    assert_eq!(join.finish(30), 1, "{:#?}", join.err);
    host.wait_err(|l| l.contains("rejected a connection"), 30);
    let complaints = complaints(&file);
    assert!(complaints.is_empty(), "{complaints}");
    assert_eq!(count(&file, "tcp.flags.fin==1"), 2);
    let f = follow(&file);
    assert!(f.bytes[0].is_empty(), "the joiner sent nothing");
    assert!(f.bytes[1].starts_with(b"RCHT\x01\x01"), "the host's HELLO was received");
}

/// `/dev/full` opens like any file and refuses every write ("No space left on device"):
/// rchat cannot even write the capture file's header, so it stops before connecting, with one
/// error line that names the file and the real reason, and status 1.
#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_is_one_clear_error_before_connecting() {
    // A joiner would connect here; nothing must arrive.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let target = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    for args in [
        vec!["join", &target, "--plaintext", "--record", "/dev/full"],
        vec!["join", &target, "--record", "/dev/full"],
        vec!["host", "--bind", "127.0.0.1", "--port", "0", "--plaintext", "--record", "/dev/full"],
        vec!["host", "--bind", "127.0.0.1", "--port", "0", "--record", "/dev/full"],
    ] {
        let mut cmd = Command::new(BIN);
        cmd.args(&args);
        let out = common::output_within(cmd, 30);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("rchat: error: cannot write the recording /dev/full: "), "{err}");
        assert!(err.contains("No space left on device"), "{args:?}: the reason is hidden: {err}");
        assert!(
            err.trim_end().ends_with("free some space, or choose a file on another disk"),
            "{err}"
        );
    }
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("a joiner connected despite its unwritable recording: {other:?}"),
    }
}

/// `rchat ARGS` with a limit of 16 blocks (8 KiB in dash, 16 KiB in bash) on the size of the
/// files it writes, and SIGXFSZ ignored: a write past the limit fails ("File too large"), as
/// on a disk that fills up during the chat, and the process goes on.
#[cfg(unix)]
fn with_small_file_limit(args: &[&str]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", r#"ulimit -f 16 || exit 99; trap '' XFSZ; exec "$@""#, "sh", BIN]).args(args);
    cmd
}

/// The largest file [`with_small_file_limit`] allows, in any shell.
#[cfg(unix)]
const SMALL_FILE_LIMIT: u64 = 16 * 1024;

/// Nothing but one line of `p`'s stderr speaks of the recording.
#[cfg(unix)]
fn told_once_about_the_recording(p: &Proc) {
    let about_it = p.err.iter().filter(|l| l.contains("recording")).count();
    assert_eq!(about_it, 1, "told once: {:#?}", p.err);
}

/// Check how a chat whose recording failed half-way ended: the side that recorded exits 1
/// with one error line saying the recording is incomplete, naming the file and why;
/// nothing else in its stderr speaks of the recording; the file stops at the limit.
#[cfg(unix)]
fn check_incomplete_recording(recorder: &mut Proc, file: &Path) {
    assert_eq!(recorder.finish(60), 1, "{:#?}", recorder.err);
    let errors: Vec<&String> =
        recorder.err.iter().filter(|l| l.starts_with("rchat: error:")).collect();
    let expected = format!("rchat: error: the recording {} is incomplete: ", file.display());
    assert!(
        errors.len() == 1 && errors[0].starts_with(&expected),
        "expected one line starting {expected:?}: {:#?}",
        recorder.err
    );
    assert!(errors[0].contains("File too large"), "the reason is hidden: {}", errors[0]);
    told_once_about_the_recording(recorder);
    let len = std::fs::metadata(file).unwrap().len();
    assert!(len > 1000 && len <= SMALL_FILE_LIMIT, "the recording is {len} bytes");
}

/// Plaintext: the joiner's recording fails after its first line is recorded. The chat goes
/// on both ways, goodbyes included (the host ends normally); the joiner ends with status 1 and
/// one line saying the recording is incomplete; the file holds the first line, not the last.
#[cfg(unix)]
#[test]
fn a_recording_that_fails_mid_chat_does_not_break_the_chat_plaintext() {
    let dir = scratch("record-full-plain");
    let file = dir.path().join("join.pcap");
    let (mut host, port) = Proc::host(&["--plaintext"]);
    let target = format!("127.0.0.1:{port}");
    let mut join = Proc::start(with_small_file_limit(&[
        "join",
        &target,
        "--plaintext",
        "--record",
        path_str(&file),
    ]));
    let big = "x".repeat(20_000);
    join.send(&["recorded before the disk filled up"]);
    host.wait_out_lines(1, 60);
    join.send(&[&big, "sent after the recording failed"]);
    host.wait_out_lines(3, 60);
    host.send(&["the host answers"]);
    join.wait_out_lines(1, 60);
    join.close_stdin();
    host.close_stdin();
    assert_eq!(host.finish(60), 0, "{:#?}", host.err);
    assert_eq!(
        host.out,
        ["recorded before the disk filled up", &big, "sent after the recording failed"]
    );
    assert!(host.err_has("left (connection closed)"), "{:#?}", host.err);
    assert_eq!(join.out, ["the host answers"]);
    check_incomplete_recording(&mut join, &file);
    let bytes = std::fs::read(&file).unwrap();
    let has = |s: &[u8]| bytes.windows(s.len()).any(|w| w == s);
    assert!(has(b"recorded before the disk filled up\n"), "the first line was recorded");
    assert!(!has(b"sent after the recording failed"), "nothing is recorded after the failure");
}

/// Encrypted: the host's recording fails on a long message after the handshake and a first
/// message were recorded. The chat goes on (the joiner gets the long message, the host the
/// next one, and both say goodbye); the host ends with status 1 and one line saying the
/// recording is incomplete.
#[cfg(unix)]
#[test]
fn a_recording_that_fails_mid_chat_does_not_break_the_chat_encrypted() {
    let dir = scratch("record-full-enc");
    let file = dir.path().join("host.pcap");
    let (mut host, port) = Proc::host_with(&["--record", path_str(&file)], with_small_file_limit);
    let target = format!("127.0.0.1:{port}");
    let mut join = Proc::spawn(&["join", &target]);
    join.send(&["recorded before the disk filled up"]);
    host.wait_out_lines(1, 60);
    // About 27 KB of ciphertext: past the limit, whatever the shell.
    let big = "y".repeat(20_000);
    host.send(&[&big]);
    join.wait_out_lines(1, 60);
    join.send(&["sent after the recording failed"]);
    host.wait_out_lines(2, 60);
    join.close_stdin();
    host.close_stdin();
    assert_eq!(join.finish(60), 0, "{:#?}", join.err);
    assert_eq!(join.out, [big]);
    assert!(join.err_has("host left"), "{:#?}", join.err);
    assert_eq!(host.out, ["recorded before the disk filled up", "sent after the recording failed"]);
    assert!(host.err_has("guest left"), "{:#?}", host.err);
    check_incomplete_recording(&mut host, &file);
    assert!(std::fs::read(&file).unwrap().windows(4).any(|w| w == b"RCHT"), "HELLO recorded");
}

/// Encrypted: the host's recording fails, then the joiner vanishes without a goodbye. The
/// broken chat is the error (status 1), and the incomplete recording is still said, once, as a
/// warning.
#[cfg(unix)]
#[test]
fn a_broken_chat_with_a_broken_recording_says_both() {
    let dir = scratch("record-full-dropped");
    let file = dir.path().join("host.pcap");
    let (mut host, port) = Proc::host_with(&["--record", path_str(&file)], with_small_file_limit);
    let mut join = Proc::spawn(&["join", &format!("127.0.0.1:{port}")]);
    host.send(&[&"z".repeat(20_000)]);
    join.wait_out_lines(1, 60);
    // Killed: the connection closes without a goodbye. The host ends by itself (its input
    // stays open until it has).
    drop(join);
    host.wait_err(|l| l.starts_with("rchat: error:"), 60);
    assert_eq!(host.finish(60), 1, "{:#?}", host.err);
    let error = "rchat: error: connection lost: the peer closed the connection";
    let warning = format!("warning: the recording {} is incomplete: ", file.display());
    let said = |start: &str| host.err.iter().filter(|l| l.starts_with(start)).count();
    assert_eq!((said(error), said(&warning)), (1, 1), "{:#?}", host.err);
    told_once_about_the_recording(&host);
}
