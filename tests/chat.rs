//! The chat through the real binary on loopback: both modes, both directions, the
//! awkward messages, pinning, mode mismatches, netcat as the peer, and bad usage.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{BIN, Proc, have_tool, scratch};

/// Run a host and a joiner in `mode`, each piping its lines, and return what each printed
/// on stdout (the other's messages).
fn converse(
    mode: &[&str],
    host_lines: &[String],
    join_lines: &[String],
) -> (Vec<String>, Vec<String>) {
    let (host, join, _) = common::converse(mode, mode, host_lines, join_lines, |_| {});
    (host.out.clone(), join.out.clone())
}

/// Compare received lines with sent ones without printing 64 KiB lines on failure.
fn assert_same(got: &[String], want: &[String]) {
    let short = |v: &[String]| -> Vec<String> {
        v.iter()
            .map(|l| if l.len() > 80 { format!("<{} bytes>", l.len()) } else { l.clone() })
            .collect()
    };
    assert!(got == want, "got {:?}\nwant {:?}", short(got), short(want));
}

fn awkward_messages() -> Vec<String> {
    vec![
        "hello, plain ASCII".to_string(),
        "你好，世界 — Unicode: Привет 🙂🔐".to_string(),
        String::new(),
        "x".repeat(64 * 1024),
        "after the big one".to_string(),
    ]
}

#[test]
fn encrypted_round_trip_both_directions() {
    let msgs = awkward_messages();
    let from_host: Vec<String> = msgs.iter().map(|m| format!("H{m}")).collect();
    let from_host = [from_host[..3].to_vec(), vec![msgs[3].clone()]].concat();
    let (host_got, join_got) = converse(&[], &from_host, &msgs);
    assert_same(&host_got, &msgs);
    assert_same(&join_got, &from_host);
}

#[test]
fn plaintext_round_trip_both_directions() {
    let msgs = awkward_messages();
    let from_host: Vec<String> = msgs.iter().rev().cloned().collect();
    let (host_got, join_got) = converse(&["--plaintext"], &from_host, &msgs);
    assert_same(&host_got, &msgs);
    assert_same(&join_got, &from_host);
}

#[test]
fn a_thousand_messages_in_a_row_each_way() {
    let lines: Vec<String> = (0..1000).map(|i| format!("message number {i}")).collect();
    for mode in [&[][..], &["--plaintext"][..]] {
        let (host_got, join_got) = converse(mode, &lines, &lines);
        assert_same(&host_got, &lines);
        assert_same(&join_got, &lines);
    }
}

#[test]
fn ipv6_loopback_works_when_available() {
    if TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipping: no IPv6 loopback on this machine");
        return;
    }
    let mut host = Proc::spawn(&["host", "--bind", "::1", "--port", "0"]);
    let line = host.wait_err(|l| l.starts_with("listening on port "), 60);
    let port: u16 = line.split_whitespace().nth(3).unwrap().parse().unwrap();
    let target = format!("[::1]:{port}");
    let mut join = Proc::spawn(&["join", &target]);
    join.send(&["over IPv6"]);
    join.close_stdin();
    host.close_stdin();
    assert_eq!(join.finish(60), 0);
    assert_eq!(host.finish(60), 0);
    assert_eq!(host.out, ["over IPv6"]);
}

#[test]
fn lines_typed_before_the_peer_arrives_are_sent() {
    let (mut host, port) = Proc::host(&[]);
    host.send(&["typed while waiting", "and another"]);
    std::thread::sleep(Duration::from_millis(300));
    let target = format!("127.0.0.1:{port}");
    let mut join = Proc::spawn(&["join", &target]);
    join.wait_out_lines(2, 60);
    assert_eq!(join.out, ["typed while waiting", "and another"]);
    host.close_stdin();
    join.close_stdin();
    assert_eq!(join.finish(60), 0);
    assert_eq!(host.finish(60), 0);
    assert!(join.err_has("host left"), "{:#?}", join.err);
}

fn fingerprint_of(path: &str) -> String {
    let out = Command::new(BIN).args(["fingerprint", path]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_string()
}

fn keygen(dir: &std::path::Path, name: &str) -> String {
    let path = dir.join(name);
    let p = path.to_str().unwrap().to_string();
    let out = Command::new(BIN).args(["keygen", "--out", &p]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    p
}

#[test]
fn keygen_writes_a_private_file_and_refuses_to_overwrite() {
    let dir = scratch("chat-keygen");
    let key = keygen(dir.path(), "host.pem");
    let text = std::fs::read_to_string(&key).unwrap();
    assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let again = Command::new(BIN).args(["keygen", "--out", &key]).output().unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert_eq!(std::fs::read_to_string(&key).unwrap(), text, "file must be untouched");
    let forced = Command::new(BIN).args(["keygen", "--out", &key, "--force"]).output().unwrap();
    assert!(forced.status.success());
    assert_ne!(std::fs::read_to_string(&key).unwrap(), text);
    // The fingerprint keygen prints is the one `fingerprint` computes.
    let printed = String::from_utf8(forced.stdout).unwrap();
    assert!(printed.contains(&fingerprint_of(&key)), "{printed}");
    let weak = Command::new(BIN)
        .args(["keygen", "--out", dir.path().join("weak.pem").to_str().unwrap(), "--bits", "1024"])
        .output()
        .unwrap();
    assert_eq!(weak.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&weak.stderr).contains("--allow-weak-keys"));
}

#[test]
fn fingerprint_reads_public_keys_and_rejects_junk() {
    let dir = scratch("chat-fp");
    let key = keygen(dir.path(), "k.pem");
    let fp = fingerprint_of(&key);
    assert!(fp.starts_with("SHA256:") && fp.len() == 50, "{fp}");
    if have_tool("openssl") {
        let public = dir.path().join("k.pub.pem");
        let status = Command::new("openssl")
            .args(["pkey", "-in", &key, "-pubout", "-out", public.to_str().unwrap()])
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(fingerprint_of(public.to_str().unwrap()), fp);
    }
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "hello\n").unwrap();
    let out = Command::new(BIN).args(["fingerprint", junk.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("not an RSA key file"), "{err}");
    let missing = dir.path().join("missing.pem");
    let out = Command::new(BIN).args(["fingerprint", missing.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read key file"));
}

#[test]
fn saved_keys_and_pinned_fingerprints() {
    let dir = scratch("chat-pin");
    let host_key = keygen(dir.path(), "host.pem");
    let join_key = keygen(dir.path(), "join.pem");
    let host_fp = fingerprint_of(&host_key);
    let join_fp = fingerprint_of(&join_key);

    // Both sides pin the right fingerprints: the chat works.
    let (mut host, port) = Proc::host(&["--key", &host_key, "--peer-fingerprint", &join_fp]);
    assert!(host.err_has(&host_fp), "host shows its own fingerprint: {:#?}", host.err);
    let target = format!("127.0.0.1:{port}");
    let mut join =
        Proc::spawn(&["join", &target, "--key", &join_key, "--peer-fingerprint", &host_fp]);
    join.send(&["pinned"]);
    join.close_stdin();
    host.close_stdin();
    assert_eq!(join.finish(60), 0, "{:#?}", join.err);
    assert_eq!(host.finish(60), 0, "{:#?}", host.err);
    assert_eq!(host.out, ["pinned"]);
    assert!(join.err_has(&host_fp));

    // The joiner pins a fingerprint the host does not have: it refuses before any message.
    let (mut host, port) = Proc::host(&["--key", &host_key]);
    let target = format!("127.0.0.1:{port}");
    let mut join = Proc::spawn(&["join", &target, "--peer-fingerprint", &join_fp]);
    join.send(&["must never be sent"]);
    assert_eq!(join.finish(60), 1);
    assert!(join.err_has("not the expected"), "{:#?}", join.err);
    host.wait_err(|l| l.contains("rejected a connection"), 30);
    assert!(host.out.is_empty());
    // ... and the host is still waiting for a proper peer.
    let mut good = Proc::spawn(&["join", &target]);
    good.send(&["proper peer"]);
    good.close_stdin();
    host.close_stdin();
    assert_eq!(good.finish(60), 0, "{:#?}", good.err);
    assert_eq!(host.finish(60), 0);
    assert_eq!(host.out, ["proper peer"]);
}

#[test]
fn mode_mismatch_is_reported_on_both_sides() {
    // Encrypted host, plaintext joiner: the joiner sees the HELLO and stops; the host
    // rejects that connection and keeps waiting.
    let (mut host, port) = Proc::host(&[]);
    let target = format!("127.0.0.1:{port}");
    let mut join = Proc::spawn(&["join", &target, "--plaintext"]);
    // It may already have read the HELLO and stopped: then the line is never sent.
    join.try_send(&["secret typed in the wrong mode"]);
    assert_eq!(join.finish(30), 1);
    assert!(join.err_has("the peer uses encrypted mode"), "{:#?}", join.err);
    assert!(join.err_has("remove --plaintext"), "{:#?}", join.err);
    let line = host.wait_err(|l| l.contains("rejected a connection"), 30);
    assert!(!line.contains("secret"), "nothing is sent in the other mode: {line}");

    // Plaintext host, encrypted joiner.
    let (mut host, port) = Proc::host(&["--plaintext"]);
    let target = format!("127.0.0.1:{port}");
    let mut join = Proc::spawn(&["join", &target]);
    assert_eq!(join.finish(30), 1);
    assert!(join.err_has("--plaintext"), "{:#?}", join.err);
    let line = host.wait_err(|l| l.contains("rejected a connection"), 30);
    assert!(line.contains("encrypted mode"), "{line}");

    // Encrypted joiner against a plaintext speaker that talks first.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let speaker = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        s.write_all(b"hi there\n").unwrap();
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    });
    let target = format!("127.0.0.1:{port}");
    let mut join = Proc::spawn(&["join", &target]);
    assert_eq!(join.finish(30), 1);
    assert!(join.err_has("seems to be in plaintext mode"), "{:#?}", join.err);
    assert!(join.err_has("hi there"), "{:#?}", join.err);
    speaker.join().unwrap();
}

/// netcat as the other side of a plaintext chat, in both roles.
#[test]
fn netcat_is_a_plaintext_peer() {
    if !have_tool("nc") {
        return;
    }
    // rchat hosts, nc joins.
    let (mut host, port) = Proc::host(&["--plaintext"]);
    let mut nc = Command::new("nc")
        .args(["-q", "5", "127.0.0.1", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    nc.stdin.take().unwrap().write_all("from nc\nсообщение\n".as_bytes()).unwrap();
    host.send(&["from rchat"]);
    host.close_stdin();
    host.wait_out_lines(2, 30);
    assert_eq!(host.out, ["from nc", "сообщение"]);
    let mut got = String::new();
    nc.stdout.take().unwrap().read_to_string(&mut got).unwrap();
    assert_eq!(got, "from rchat\n");
    assert_eq!(host.finish(30), 0, "{:#?}", host.err);
    let _ = nc.wait();

    // nc hosts, rchat joins. nc needs a moment to listen: retry while it refuses.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut nc = Command::new("nc")
        .args(["-l", "-q", "5", "127.0.0.1", &port.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Like a person at nc, its input stays open while the chat runs.
    let mut nc_in = nc.stdin.take().unwrap();
    nc_in.write_all(b"hello from nc host\n").unwrap();
    let target = format!("127.0.0.1:{port}");
    let mut attempts = 0;
    let mut join = loop {
        let mut j = Proc::spawn(&["join", &target, "--plaintext"]);
        j.send(&["hello from rchat joiner"]);
        j.close_stdin();
        std::thread::sleep(Duration::from_millis(200));
        if j.child.try_wait().unwrap().is_some() && j.err_has("refused") && attempts < 50 {
            attempts += 1;
            continue;
        }
        break j;
    };
    join.wait_out_lines(1, 30);
    drop(nc_in);
    assert_eq!(join.finish(30), 0, "{:#?}", join.err);
    assert_eq!(join.out, ["hello from nc host"]);
    let mut got = String::new();
    nc.stdout.take().unwrap().read_to_string(&mut got).unwrap();
    assert_eq!(got, "hello from rchat joiner\n");
    let _ = nc.wait();
}

#[test]
fn a_second_connection_is_refused_while_chatting() {
    let (mut host, port) = Proc::host(&["--plaintext"]);
    let target = format!("127.0.0.1:{port}");
    let mut first = TcpStream::connect(&target).unwrap();
    host.wait_err(|l| l.starts_with("connected to"), 30);
    let mut second = TcpStream::connect(&target).unwrap();
    second.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut refusal = String::new();
    second.read_to_string(&mut refusal).unwrap();
    assert!(refusal.contains("already in a chat"), "{refusal}");
    first.write_all(b"still here\n").unwrap();
    host.wait_out_lines(1, 30);
    assert_eq!(host.out, ["still here"]);
    drop(first);
    host.close_stdin();
    assert_eq!(host.finish(30), 0);
}

#[test]
fn connection_errors_are_one_clear_line() {
    // Nobody listens on this port.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let target = format!("127.0.0.1:{port}");
    let mut join = Proc::spawn(&["join", &target]);
    assert_eq!(join.finish(30), 1);
    assert!(join.err_has("refused the connection"), "{:#?}", join.err);
    assert_eq!(join.err.iter().filter(|l| l.starts_with("rchat: error:")).count(), 1);

    // The port is taken.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let mut host = Proc::spawn(&["host", "--bind", "127.0.0.1", "--port", &port]);
    assert_eq!(host.finish(30), 1);
    assert!(host.err_has("already in use"), "{:#?}", host.err);

    // A name that does not resolve.
    let mut join = Proc::spawn(&["join", "no-such-host.invalid"]);
    assert_eq!(join.finish(30), 1);
    assert!(join.err_has("cannot find host"), "{:#?}", join.err);

    // An unreadable key file.
    let dir = scratch("chat-errors");
    let missing = dir.path().join("no-such-folder").join("key.pem");
    let mut join = Proc::spawn(&["join", &target, "--key", missing.to_str().unwrap()]);
    assert_eq!(join.finish(30), 1);
    assert!(join.err_has("cannot read key file"), "{:#?}", join.err);
}

#[test]
fn bad_usage_exits_2() {
    for args in [
        &["join"][..],
        &["join", "host:notaport"],
        &["join", "127.0.0.1", "--bits", "1000"],
        &["join", "127.0.0.1", "--peer-fingerprint", "SHA256:short"],
        &["join", "127.0.0.1", "--plaintext", "--peer-fingerprint", "x"],
        &["host", "--port", "70000"],
        &["join", "127.0.0.1", "--name", ""],
        &["join", "127.0.0.1", "--name", "bad\u{1b}[2Jname"],
        &["join", "127.0.0.1", "--bits", "1024"],
        &["frobnicate"],
    ] {
        let out = Command::new(BIN).args(args).stdin(Stdio::null()).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    }
}

#[test]
fn explain_shows_what_crossed_the_wire() {
    let (mut host, port) = Proc::host(&["--explain"]);
    let target = format!("127.0.0.1:{port}");
    let mut join = Proc::spawn(&["join", &target, "--explain"]);
    join.send(&["explained"]);
    join.close_stdin();
    host.close_stdin();
    assert_eq!(join.finish(60), 0);
    assert_eq!(host.finish(60), 0);
    assert!(join.err_has("wire: sent HELLO"));
    assert!(join.err_has("wire: sent MESSAGE #0"));
    assert!(join.err_has("sent as 278 + 258 bytes: the blocks at once"), "{:#?}", join.err);
    assert!(host.err_has("wire: received MESSAGE #0"));
    assert!(host.err_has("RSA-OAEP block(s) of 256 bytes"));

    let (mut host, port) = Proc::host(&["--explain", "--plaintext"]);
    let target = format!("127.0.0.1:{port}");
    let mut join = Proc::spawn(&["join", &target, "--plaintext"]);
    join.send(&["hi"]);
    join.close_stdin();
    host.close_stdin();
    assert_eq!(join.finish(60), 0);
    assert_eq!(host.finish(60), 0);
    assert!(host.err_has("wire: received 3 bytes in the clear: 68 69 0a"), "{:#?}", host.err);
}

/// Ctrl-C (SIGINT) in a scripted chat says goodbye before leaving.
#[cfg(unix)]
#[test]
fn ctrl_c_says_goodbye() {
    let (mut host, port) = Proc::host(&[]);
    let target = format!("127.0.0.1:{port}");
    let mut join = Proc::spawn(&["join", &target, "--name", "zoe"]);
    join.send(&["before ctrl-c"]);
    host.wait_out_lines(1, 60);
    let status =
        Command::new("kill").args(["-INT", &join.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    assert_eq!(join.finish(30), 0, "{:#?}", join.err);
    host.wait_err(|l| l == "zoe left", 30);
    host.close_stdin();
    assert_eq!(host.finish(30), 0, "{:#?}", host.err);
}

/// A host name works as well as an address (`localhost` may resolve to ::1 first: every
/// address of the name is tried).
#[test]
fn join_by_host_name() {
    let (mut host, port) = Proc::host(&["--plaintext"]);
    let target = format!("localhost:{port}");
    let mut join = Proc::spawn(&["join", &target, "--plaintext"]);
    join.send(&["by name"]);
    join.close_stdin();
    host.close_stdin();
    assert_eq!(join.finish(30), 0, "{:#?}", join.err);
    assert_eq!(host.finish(30), 0, "{:#?}", host.err);
    assert_eq!(host.out, ["by name"]);
}

/// A joiner that refuses the host's key leaves after the HELLOs; the host says so (not a
/// mode mismatch) and keeps waiting.
#[test]
fn the_host_says_when_a_joiner_refused_its_key() {
    let (mut host, port) = Proc::host(&[]);
    let target = format!("127.0.0.1:{port}");
    let wrong = "SHA256:iZgY65n7JkkvKp1vFbbMYlDvA050BXJQaVom6PBSzBI";
    let mut join = Proc::spawn(&["join", &target, "--peer-fingerprint", wrong]);
    assert_eq!(join.finish(30), 1);
    let line = host.wait_err(|l| l.contains("rejected a connection"), 30);
    assert!(line.contains("probably refused our key"), "{line}");
    assert!(!line.contains("--plaintext"), "{line}");
}

/// Keys of different sizes chat (each side encrypts to the other's modulus), and a saved
/// key under 2048 bits is refused for our own use unless --allow-weak-keys is given.
#[test]
fn key_sizes_mix_and_weak_key_files_are_refused() {
    let (mut host, port) = Proc::host(&["--bits", "3072"]);
    assert!(host.err_has("3072-bit RSA"), "{:#?}", host.err);
    let target = format!("127.0.0.1:{port}");
    let mut join = Proc::spawn(&["join", &target, "--explain"]);
    join.send(&["from a 2048-bit key to a 3072-bit one"]);
    host.send(&["and back"]);
    join.close_stdin();
    host.close_stdin();
    assert_eq!(join.finish(60), 0, "{:#?}", join.err);
    assert_eq!(host.finish(60), 0, "{:#?}", host.err);
    assert_eq!(host.out, ["from a 2048-bit key to a 3072-bit one"]);
    assert_eq!(join.out, ["and back"]);
    assert!(join.err_has("RSA-OAEP block(s) of 384 bytes"), "{:#?}", join.err);

    let dir = scratch("chat-weakfile");
    let weak = dir.path().join("weak.pem");
    let weak = weak.to_str().unwrap();
    let out = Command::new(BIN)
        .args(["keygen", "--out", weak, "--bits", "1024", "--allow-weak-keys"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut refused = Proc::spawn(&["join", &target, "--key", weak]);
    assert_eq!(refused.finish(30), 1);
    assert!(refused.err_has("--allow-weak-keys"), "{:#?}", refused.err);
    assert!(refused.err_has("1024 bits"), "{:#?}", refused.err);
}
