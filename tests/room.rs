//! The room (`rchat host --room`) through the real binary on loopback: a host and members in
//! both modes (every public message reaches everyone, a private one only its recipient, and
//! the host's connections carry it only as ciphertext), `nc` in a plaintext room, 40 members
//! joining at once and a full room, mode mismatches, and the faults one member must not pass
//! on to the room: garbage, a bad signature, a replay, a half-sent frame, a member that
//! stops reading, and a hundred connections that never speak. Also Ctrl-C on a member and on
//! the host, `--explain` on a member, and `/name` refused in an encrypted room.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{Proc, have_tool, scratch};
use rchat::crypto::Identity;
use rchat::protocol::room_secure::seal;
use rchat::protocol::room_wire::{RoomMessage, Roster};
use rchat::protocol::secure::{Role, Sealer, Session, check_hello, hello_frame};
use rchat::protocol::wire::{Auth, Frame, FrameHeader, FrameType, HEADER_LEN, Hello};

/// Seconds any one step may take.
const WAIT: u64 = 60;
const WEAK: [&str; 3] = ["--bits", "1024", "--allow-weak-keys"];

fn target(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// An encrypted room hosted by "teacher" with 1024-bit keys, and its port.
fn weak_room() -> (Proc, u16) {
    Proc::host(&["--room", "--name", "teacher", "--bits", "1024", "--allow-weak-keys"])
}

/// A [`weak_room`] with alice (given `alice_extra` besides [`WEAK`]) and bob in it, once alice
/// has seen bob join: the host, alice and bob.
fn alice_and_bob(alice_extra: &[&str]) -> (Proc, Proc, Proc) {
    let (host, port) = weak_room();
    let flags: Vec<&str> = WEAK.iter().chain(alice_extra).copied().collect();
    let mut alice = member(port, "alice", &flags);
    let bob = member(port, "bob", &WEAK);
    alice.wait_err(|l| l.starts_with("bob joined ("), WAIT);
    (host, alice, bob)
}

/// `rchat join` with a name (and extra flags), waiting until it has entered the room.
fn member(port: u16, name: &str, extra: &[&str]) -> Proc {
    let t = target(port);
    let mut args = vec!["join", t.as_str(), "--name", name];
    args.extend_from_slice(extra);
    let mut p = Proc::spawn(&args);
    p.wait_err(|l| l.starts_with("in the room: ") || l == "nobody else is here yet", WAIT);
    p
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Ctrl-C on a scripted `rchat`: SIGINT, as `kill -INT` sends it.
#[cfg(unix)]
fn interrupt(p: &Proc) {
    let pid = p.child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
}

/// How many lines of `lines` are exactly `line`.
fn count(lines: &[String], line: &str) -> usize {
    lines.iter().filter(|l| *l == line).count()
}

#[test]
fn an_encrypted_room_relays_what_it_cannot_read() {
    let dir = scratch("room-encrypted");
    let record = dir.path().join("room.pcap");
    let bob_key = dir.path().join("bob.pem");
    let keygen = Command::new(common::BIN)
        .args(["keygen", "--out"])
        .arg(&bob_key)
        .args(["--bits", "1024", "--allow-weak-keys"])
        .output()
        .unwrap();
    assert!(keygen.status.success(), "{keygen:?}");
    let rec = record.to_str().unwrap();
    let mut args = vec!["--room", "--name", "teacher", "--record", rec, "--explain"];
    args.extend_from_slice(&WEAK);
    let (mut host, port) = Proc::host(&args);
    let wire = dir.path().join("tcpdump.pcap");
    let dump = match have_tool("tcpdump") && common::is_root() {
        true => Some(common::Tcpdump::start(wire.clone(), port)),
        false => {
            eprintln!("skipping the tcpdump capture: tcpdump needs root to capture on loopback");
            None
        }
    };

    // A member in the wrong mode is told so, as in a two-person chat.
    let mut plain = Proc::spawn(&["join", &target(port), "--plaintext"]);
    plain.wait_err(|l| l.contains("the peer uses encrypted mode"), WAIT);
    assert_eq!(plain.finish(WAIT), 1);

    let mut alice = member(port, "alice", &WEAK);
    let bob_key = bob_key.to_str().unwrap();
    let mut bob = member(port, "bob", &["--key", bob_key, "--allow-weak-keys"]);
    let mut carol = member(port, "bob", &WEAK);
    carol.wait_err(|l| l == "the name bob is taken in this room: you are bob-2", WAIT);
    host.wait_err(|l| l.starts_with("bob-2 joined from "), WAIT);
    alice.wait_err(|l| l.starts_with("bob-2 joined ("), WAIT);

    alice.send(&["hello everyone"]);
    for p in [&mut bob, &mut carol, &mut host] {
        p.wait_out(|l| l == "alice: hello everyone", WAIT);
    }
    alice.send(&["/msg bob the secret word is plum"]);
    bob.wait_out(|l| l == "alice (private): the secret word is plum", WAIT);
    host.wait_err(|l| l.starts_with("relayed a private message from alice to bob: "), WAIT);
    // --explain: the private message came with one copy, and went to bob alone.
    assert!(host.err_has("wire: received ROOM MESSAGE #1 from alice"), "{:#?}", host.err);
    let explained = host.err.iter().find(|l| l.contains("ROOM MESSAGE #1 from alice")).unwrap();
    assert!(explained.contains("(1 copy)") && explained.contains(": bob "), "{explained}");
    host.send(&["from the teacher"]);
    for p in [&mut alice, &mut bob, &mut carol] {
        p.wait_out(|l| l == "teacher: from the teacher", WAIT);
    }
    // /who shows every fingerprint, to compare aloud.
    carol.send(&["/who"]);
    carol.wait_err(|l| l.starts_with("  bob: 1024-bit key SHA256:"), WAIT);

    for p in [&mut alice, &mut bob, &mut carol] {
        p.close_stdin();
    }
    for name in ["alice", "bob", "bob-2"] {
        host.wait_err(|l| l.starts_with(&format!("{name} left")), WAIT);
    }
    host.close_stdin();
    for p in [&mut alice, &mut bob, &mut carol, &mut host] {
        assert_eq!(p.finish(WAIT), 0, "stderr: {:#?}", p.err);
    }
    // The private message reached bob alone; the host read none of it.
    assert!(carol.out.iter().all(|l| !l.contains("plum")), "{:#?}", carol.out);
    assert!(host.out.iter().all(|l| !l.contains("plum")), "{:#?}", host.out);
    assert!(alice.out.iter().all(|l| !l.contains("alice")), "no reflection: {:#?}", alice.out);

    // On the wire, on both legs, the text is nowhere; the recording holds all three members.
    let recorded = std::fs::read(&record).unwrap();
    for text in [&b"plum"[..], b"hello everyone", b"from the teacher"] {
        assert!(!contains(&recorded, text), "{} in the recording", String::from_utf8_lossy(text));
    }
    if have_tool("tshark") {
        let streams = common::tshark_count(&record, "tcp.flags.syn==1 && tcp.flags.ack==0");
        assert_eq!(streams, 3, "one connection per member in the recording");
    }
    // analyze --key on the host's recording: bob's key opens exactly what was sent to bob.
    let analyze = |extra: &[&str]| {
        let mut cmd = Command::new(common::BIN);
        cmd.args(["analyze", "--all-ports"]).arg(&record).args(extra);
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let with_bob = analyze(&["--key", bob_key]);
    for text in ["hello everyone", "the secret word is plum", "from the teacher"] {
        assert!(with_bob.contains(&format!("decrypted \"{text}\"")), "{text}: {with_bob}");
    }
    assert!(with_bob.contains("mode 2: the host of a room"), "{with_bob}");
    assert!(!analyze(&[]).contains("plum"), "nothing opens without a key");
    if let Some(dump) = dump {
        // Both FINs of each member's connection.
        dump.stop(6);
        let captured = std::fs::read(&wire).unwrap();
        assert!(contains(&captured, b"RCHT"), "the capture holds the room's frames");
        for text in [&b"plum"[..], b"hello everyone", b"from the teacher"] {
            assert!(!contains(&captured, text), "{} on the wire", String::from_utf8_lossy(text));
        }
    }
}

#[test]
fn a_plaintext_room_relays_lines_and_nc_can_join() {
    if !have_tool("nc") {
        return;
    }
    let (mut host, port) = Proc::host(&["--room", "--plaintext", "--name", "teacher"]);
    // An encrypted member is told the room is in plaintext.
    let mut encrypted =
        Proc::spawn(&["join", &target(port), "--bits", "1024", "--allow-weak-keys"]);
    encrypted.wait_err(|l| l.contains("the peer seems to be in plaintext mode"), WAIT);
    assert_eq!(encrypted.finish(WAIT), 1);

    let mut carol = member(port, "carol", &["--plaintext"]);
    let mut erin = member(port, "erin", &["--plaintext"]);
    let mut nc = Command::new("nc");
    nc.args(["127.0.0.1", &port.to_string()]);
    let mut dave = Proc::start(nc);
    dave.wait_out(|l| l.starts_with("* you are guest-"), WAIT);
    dave.send(&["/name dave"]);
    dave.wait_out(|l| l == "* you are dave", WAIT);
    carol.wait_err(|l| l.ends_with(" is now dave"), WAIT);

    // What a member sends is relayed as typed; rchat shows it escaped, reordering included.
    dave.send(&["hi from nc \u{202e}txt.exe \u{1b}[2J"]);
    carol.wait_out(|l| l == "dave: hi from nc \\u{202e}txt.exe \\u{1b}[2J", WAIT);
    host.wait_out(|l| l.starts_with("dave: hi from nc \\u{202e}"), WAIT);
    carol.send(&["/msg dave psst"]);
    dave.wait_out(|l| l == "carol (private): psst", WAIT);
    carol.wait_err(|l| l.contains("travels in the clear"), WAIT);
    host.send(&["hello class"]);
    dave.wait_out(|l| l == "teacher: hello class", WAIT);
    carol.wait_out(|l| l == "teacher: hello class", WAIT);
    dave.send(&["/who"]);
    dave.wait_out(|l| l == "* in the room: teacher, carol, erin, dave", WAIT);

    carol.close_stdin();
    dave.wait_out(|l| l == "* carol left", WAIT);
    host.close_stdin();
    dave.wait_out(|l| l == "* the host closed the room", WAIT);
    erin.close_stdin();
    for p in [&mut carol, &mut erin, &mut host] {
        assert_eq!(p.finish(WAIT), 0, "stderr: {:#?}", p.err);
    }
    // A member is told once that the room closed.
    let told = erin.err.iter().filter(|l| *l == "the host closed the room").count();
    assert_eq!(told, 1, "{:#?}", erin.err);
    assert!(
        host.out.iter().all(|l| !l.contains("psst")),
        "a private line is not shown to the host"
    );
    let _ = dave.finish(WAIT);
}

#[test]
fn forty_members_join_at_once_and_a_full_room_says_so() {
    let (mut host, port) = Proc::host(&[
        "--room",
        "--max",
        "40",
        "--name",
        "teacher",
        "--bits",
        "1024",
        "--allow-weak-keys",
    ]);
    let t = target(port);
    let mut members: Vec<Proc> = (0..40)
        .map(|i| {
            let name = format!("s{i}");
            Proc::spawn(&["join", &t, "--name", &name, "--bits", "1024", "--allow-weak-keys"])
        })
        .collect();
    for m in &mut members {
        m.wait_err(|l| l.starts_with("in the room: ") || l == "nobody else is here yet", WAIT);
    }
    host.wait_err(|l| l.ends_with("(41 in the room)"), WAIT);
    let mut late = Proc::spawn(&["join", &t, "--bits", "1024", "--allow-weak-keys"]);
    late.wait_err(|l| l.contains("the room is full (40 members)"), WAIT);
    assert_eq!(late.finish(WAIT), 1);
    host.wait_err(|l| l.contains("the room is full"), WAIT);

    host.send(&["roll call"]);
    for m in &mut members {
        m.wait_out(|l| l == "teacher: roll call", WAIT);
    }
    members[7].send(&["present"]);
    for (i, m) in members.iter_mut().enumerate() {
        if i != 7 {
            m.wait_out(|l| l == "s7: present", WAIT);
        }
    }
    host.close_stdin();
    assert_eq!(host.finish(WAIT), 0, "stderr: {:#?}", host.err);
    for m in &mut members {
        m.wait_err(|l| l == "the host closed the room", WAIT);
        assert_eq!(m.finish(WAIT), 0, "stderr: {:#?}", m.err);
    }
}

/// A member driven by the test through the library: the real handshake, then whatever
/// bytes the test wants to send.
struct Scripted {
    stream: TcpStream,
    me: Arc<Identity>,
    roster: Roster,
    _sealer: Sealer,
}

fn read_frame(s: &mut TcpStream) -> Frame {
    let mut head = [0u8; HEADER_LEN];
    s.read_exact(&mut head).unwrap();
    let header = FrameHeader::decode(&head).unwrap();
    let mut body = vec![0u8; header.len as usize];
    s.read_exact(&mut body).unwrap();
    Frame { kind: header.kind, body }
}

impl Scripted {
    fn join(port: u16, name: &str) -> Scripted {
        let me = Arc::new(Identity::generate(1024).unwrap());
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(WAIT))).unwrap();
        let mine = hello_frame(&me, name).to_bytes();
        stream.write_all(&mine).unwrap();
        let theirs = read_frame(&mut stream);
        assert_eq!(theirs.kind, FrameType::Hello);
        let hello = Hello::decode(&theirs.body).unwrap();
        assert_eq!(hello.mode, rchat::protocol::wire::MODE_ROOM, "the host's HELLO says room");
        let key = check_hello(&hello, true, None).unwrap();
        let session = Session::new(
            me.clone(),
            key,
            "teacher".into(),
            Role::Joiner,
            &theirs.to_bytes(),
            &mine,
        );
        stream.write_all(&session.auth().unwrap().to_frame().to_bytes()).unwrap();
        let auth = read_frame(&mut stream);
        session.check_auth(&Auth::decode(&auth.body).unwrap()).unwrap();
        let (sealer, mut opener) = session.split();
        let frame = read_frame(&mut stream);
        assert_eq!(frame.kind, FrameType::Roster);
        let roster = Roster::decode(&frame.body).unwrap();
        opener
            .open_notice(FrameType::Roster, roster.seq, &roster.fields(), &roster.signature)
            .unwrap();
        Scripted { stream, me, roster, _sealer: sealer }
    }

    /// A message to the host alone, sealed as a member would.
    fn message(&self, seq: u64, text: &str) -> RoomMessage {
        let host = self.roster.members.iter().find(|m| m.id == 0).unwrap();
        let key = rchat::crypto::PeerKey::from_spki(&host.spki).unwrap();
        seal(&self.me, &self.roster.room_id, self.roster.you, seq, false, &[(0, &key)], text)
            .unwrap()
    }

    /// Whether the host closed the connection (after what it still sent).
    fn closed(&mut self) -> bool {
        let mut sink = [0u8; 4096];
        loop {
            match self.stream.read(&mut sink) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    }
}

#[test]
fn a_member_that_misbehaves_is_dropped_and_the_room_goes_on() {
    let (mut host, port) = weak_room();
    let mut alice = member(port, "alice", &WEAK);
    type Attack = fn(&mut Scripted);
    let attacks: [(&str, Attack, &str); 5] = [
        (
            "garbage",
            |m| m.stream.write_all(b"GARBAGE, NOT A FRAME\n").unwrap(),
            "protocol violation",
        ),
        (
            "forger",
            |m| {
                let mut msg = m.message(0, "forged");
                msg.signature[3] ^= 1;
                m.stream.write_all(&msg.to_frame().to_bytes()).unwrap();
            },
            "signature does not match",
        ),
        (
            "replayer",
            |m| {
                let bytes = m.message(0, "once only").to_frame().to_bytes();
                m.stream.write_all(&bytes).unwrap();
                m.stream.write_all(&bytes).unwrap();
            },
            "replayed",
        ),
        (
            "impostor",
            |m| {
                let mut msg = m.message(0, "in alice's name");
                msg.sender = 1;
                m.stream.write_all(&msg.to_frame().to_bytes()).unwrap();
            },
            "another member's name",
        ),
        (
            "halfway",
            |m| {
                let bytes = m.message(0, "cut short").to_frame().to_bytes();
                m.stream.write_all(&bytes[..bytes.len() / 2]).unwrap();
                m.stream.shutdown(std::net::Shutdown::Write).unwrap();
            },
            "connection",
        ),
    ];
    for (name, attack, why) in attacks {
        let mut m = Scripted::join(port, name);
        alice.wait_err(|l| l.starts_with(&format!("{name} joined")), WAIT);
        attack(&mut m);
        let line = host.wait_err(|l| l.starts_with(&format!("dropped {name} ")), WAIT);
        assert!(line.contains(why), "{line}");
        alice.wait_err(|l| l.starts_with(&format!("{name} left: ")), WAIT);
        assert!(m.closed(), "the host closed {name}'s connection");
        // The replayed message was shown once, then refused.
        if name == "replayer" {
            assert_eq!(host.out.iter().filter(|l| *l == "replayer: once only").count(), 1);
        }
    }
    // A room message is at most 4 KiB: a longer line is not sent, and says so.
    alice.send(&[&"x".repeat(4097)]);
    alice.wait_err(|l| l.contains("a room's limit is 4096: not sent"), WAIT);
    host.send(&["still here"]);
    alice.wait_out(|l| l == "teacher: still here", WAIT);
    assert!(host.out.iter().all(|l| !l.contains("xxxx")), "the long line was not sent");
    assert!(!host.out.iter().any(|l| l.contains("forged") || l.contains("alice's name")));
    host.close_stdin();
    assert_eq!(host.finish(WAIT), 0, "stderr: {:#?}", host.err);
    assert_eq!(alice.finish(WAIT), 0);
}

#[test]
fn a_member_that_stops_reading_is_dropped() {
    let (mut host, port) = Proc::host(&["--room", "--plaintext", "--name", "teacher"]);
    let connect = || {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(WAIT))).unwrap();
        s
    };
    // One that never reads, one that talks a lot, one that reads everything.
    let mut stuck = connect();
    stuck.write_all(b"/name stuck\n").unwrap();
    host.wait_err(|l| l.starts_with("stuck joined"), WAIT);
    let mut reader = member(port, "reader", &["--plaintext"]);
    let mut talker = connect();
    talker.write_all(b"/name talker\n").unwrap();
    host.wait_err(|l| l.starts_with("talker joined"), WAIT);
    let line = format!("{}\n", "x".repeat(60_000));
    let writer = thread::spawn(move || {
        for _ in 0..400 {
            if talker.write_all(line.as_bytes()).is_err() {
                break;
            }
        }
        talker
    });
    let dropped = host.wait_err(|l| l.starts_with("dropped stuck "), WAIT);
    assert!(dropped.contains("stopped reading"), "{dropped}");
    reader.wait_err(|l| l.starts_with("stuck left: stopped reading"), WAIT);
    let _talker = writer.join().unwrap();
    // The room goes on for everyone else.
    host.send(&["after the flood"]);
    reader.wait_out(|l| l == "teacher: after the flood", WAIT);
    host.close_stdin();
    assert_eq!(host.finish(WAIT), 0, "stderr: {:#?}", host.err);
    let _ = stuck.shutdown(std::net::Shutdown::Both);
}

#[test]
fn a_hundred_silent_connections_do_not_keep_a_member_out() {
    let dir = scratch("room-silent");
    let key = dir.path().join("k.pem");
    let keygen = Command::new(common::BIN)
        .args(["keygen", "--out"])
        .arg(&key)
        .args(["--bits", "1024", "--allow-weak-keys"])
        .output()
        .unwrap();
    assert!(keygen.status.success());
    let (mut host, port) = Proc::host(&[
        "--room",
        "--name",
        "teacher",
        "--bits",
        "1024",
        "--allow-weak-keys",
        "--handshake-timeout",
        "60",
    ]);
    let silent: Vec<TcpStream> =
        (0..100).map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap()).collect();
    let started = Instant::now();
    let mut late = member(port, "late", &["--key", key.to_str().unwrap(), "--allow-weak-keys"]);
    let waited = started.elapsed();
    eprintln!("a member got in behind 100 silent connections in {waited:?}");
    assert!(waited < Duration::from_secs(20), "waited {waited:?} behind silent connections");
    host.wait_err(|l| l.starts_with("late joined"), WAIT);
    host.send(&["welcome"]);
    late.wait_out(|l| l == "teacher: welcome", WAIT);
    drop(silent);
    host.close_stdin();
    assert_eq!(host.finish(WAIT), 0, "stderr: {:#?}", host.err);
    assert_eq!(late.finish(WAIT), 0);
}

#[test]
fn max_is_checked_before_anything_starts() {
    for (args, needle) in [
        (&["host", "--room", "--max", "0"][..], "--max must be 1 to 99"),
        (&["host", "--room", "--max", "100"][..], "--max must be 1 to 99"),
        (&["host", "--max", "5"][..], "--room"),
    ] {
        let out = Command::new(common::BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

/// Ctrl-C on a member: it says goodbye and exits; the host and the others see it leave
/// politely (not dropped), and the room goes on without it.
#[cfg(unix)]
#[test]
fn ctrl_c_on_a_member_leaves_and_the_room_goes_on() {
    let (mut host, mut alice, mut bob) = alice_and_bob(&[]);
    alice.send(&["before ctrl-c"]);
    bob.wait_out(|l| l == "alice: before ctrl-c", WAIT);
    host.wait_out(|l| l == "alice: before ctrl-c", WAIT);

    interrupt(&alice);
    let interrupted = Instant::now();
    assert_eq!(alice.finish(WAIT), 0, "stderr: {:#?}", alice.err);
    assert!(interrupted.elapsed() < Duration::from_secs(10), "{:?}", interrupted.elapsed());
    host.wait_err(|l| l == "alice left (2 in the room)", WAIT);
    bob.wait_err(|l| l == "alice left", WAIT);

    // The host is still running, and the room no longer holds alice.
    host.send(&["still open"]);
    bob.wait_out(|l| l == "teacher: still open", WAIT);
    bob.send(&["/who"]);
    bob.wait_err(|l| l == "in the room (2):", WAIT);
    bob.send(&["/msg alice are you there"]);
    bob.wait_err(|l| l == "warning: nobody called alice here: /who lists the room", WAIT);
    bob.send(&["after alice"]);
    host.wait_out(|l| l == "bob: after alice", WAIT);
    assert!(host.child.try_wait().unwrap().is_none(), "the host kept running");
    assert!(!host.err_has("dropped alice"), "a Ctrl-C is a goodbye: {:#?}", host.err);
    assert!(!bob.err_has("alice left:"), "a polite leave has no reason: {:#?}", bob.err);
    assert!(alice.out.iter().all(|l| !l.contains("still open")), "{:#?}", alice.out);

    host.close_stdin();
    assert_eq!(host.finish(WAIT), 0, "stderr: {:#?}", host.err);
    bob.wait_err(|l| l == "the host closed the room", WAIT);
    assert_eq!(bob.finish(WAIT), 0, "stderr: {:#?}", bob.err);
}

/// Ctrl-C on the host closes the room: every member is told once that the host closed it,
/// and exits; in an encrypted room (a signed goodbye) and in a plaintext one (a last line).
#[cfg(unix)]
#[test]
fn ctrl_c_on_the_host_closes_the_room_for_everyone() {
    let (mut host, port) = weak_room();
    let mut alice = member(port, "alice", &WEAK);
    let mut bob = member(port, "bob", &WEAK);
    let (mut plain_host, plain_port) = Proc::host(&["--room", "--plaintext", "--name", "teacher"]);
    let mut carol = member(plain_port, "carol", &["--plaintext"]);
    host.wait_err(|l| l.starts_with("bob joined from "), WAIT);
    host.send(&["closing soon"]);
    plain_host.send(&["closing soon"]);
    for m in [&mut alice, &mut bob, &mut carol] {
        m.wait_out(|l| l == "teacher: closing soon", WAIT);
    }

    interrupt(&host);
    interrupt(&plain_host);
    let interrupted = Instant::now();
    for h in [&mut host, &mut plain_host] {
        assert_eq!(h.finish(WAIT), 0, "stderr: {:#?}", h.err);
    }
    for m in [&mut alice, &mut bob, &mut carol] {
        m.wait_err(|l| l == "the host closed the room", WAIT);
        // Their input is still open: the host's goodbye alone ends the room for them.
        assert_eq!(m.finish(WAIT), 0, "stderr: {:#?}", m.err);
        assert_eq!(count(&m.err, "the host closed the room"), 1, "{:#?}", m.err);
        assert!(!m.err.iter().any(|l| l.starts_with("error")), "{:#?}", m.err);
    }
    assert!(interrupted.elapsed() < Duration::from_secs(10), "{:?}", interrupted.elapsed());
}

/// `--explain` on a member: the handshake's frames, then each message it sends, its copies
/// counted (one per recipient); a member without the flag prints no `wire:` line.
#[test]
fn explain_on_a_member_shows_what_it_sends() {
    let (mut host, mut alice, mut bob) = alice_and_bob(&["--explain"]);
    let handshake =
        ["wire: sent HELLO, ", "wire: received HELLO, ", "wire: sent and received AUTH ("];
    for prefix in handshake {
        assert!(alice.err.iter().any(|l| l.starts_with(prefix)), "{prefix}: {:#?}", alice.err);
    }
    let bytes = |line: &str| -> usize {
        let (_, rest) = line.split_once(", ").expect("a size");
        rest.split(' ').next().unwrap().parse().expect("a number of bytes")
    };

    // To everyone: a copy for the host and one for bob.
    alice.send(&["hello room"]);
    let public = alice.wait_err(|l| l.starts_with("wire: sent ROOM MESSAGE #0, "), WAIT);
    assert!(public.contains(" bytes: 2 copies of the text, each encrypted"), "{public}");
    assert!(public.ends_with("the relay can read only its own copy"), "{public}");
    bob.wait_out(|l| l == "alice: hello room", WAIT);
    host.wait_out(|l| l == "alice: hello room", WAIT);
    // To bob alone: one copy, so fewer bytes.
    alice.send(&["/msg bob just you"]);
    let private = alice.wait_err(|l| l.starts_with("wire: sent ROOM MESSAGE #1, "), WAIT);
    assert!(private.contains(" bytes: 1 copy of the text, each encrypted"), "{private}");
    assert!(bytes(&private) < bytes(&public), "{private} / {public}");
    bob.wait_out(|l| l == "alice (private): just you", WAIT);
    // A message alice receives reaches her as usual.
    bob.send(&["hello alice"]);
    alice.wait_out(|l| l == "bob: hello alice", WAIT);
    assert_eq!(count(&alice.err, &public), 1, "each message is explained once");

    for m in [&mut alice, &mut bob] {
        m.close_stdin();
    }
    for m in [&mut alice, &mut bob] {
        assert_eq!(m.finish(WAIT), 0, "stderr: {:#?}", m.err);
    }
    assert!(bob.err.iter().all(|l| !l.starts_with("wire:")), "no --explain: {:#?}", bob.err);
    host.close_stdin();
    assert_eq!(host.finish(WAIT), 0, "stderr: {:#?}", host.err);
}

/// In an encrypted room a name is bound to its key in the roster: `/name` is refused on the
/// member's screen, nothing is sent, and the others still know it by its first name.
#[test]
fn a_member_of_an_encrypted_room_cannot_rename_itself() {
    let (mut host, mut alice, mut bob) = alice_and_bob(&[]);

    alice.send(&["/name mallory"]);
    alice.wait_err(
        |l| l == "warning: names are fixed in an encrypted room: join again with --name",
        WAIT,
    );
    alice.send(&["still alice"]);
    bob.wait_out(|l| l == "alice: still alice", WAIT);
    host.wait_out(|l| l == "alice: still alice", WAIT);
    // bob's roster still says alice, with her key; there is no mallory to write to.
    bob.send(&["/who"]);
    bob.wait_err(|l| l.starts_with("  alice: 1024-bit key SHA256:"), WAIT);
    bob.send(&["/msg mallory hi"]);
    bob.wait_err(|l| l == "warning: nobody called mallory here: /who lists the room", WAIT);
    host.send(&["/who"]);
    host.wait_err(|l| l.starts_with("  alice: SHA256:"), WAIT);

    for m in [&mut alice, &mut bob] {
        m.close_stdin();
    }
    for m in [&mut alice, &mut bob] {
        assert_eq!(m.finish(WAIT), 0, "stderr: {:#?}", m.err);
    }
    host.close_stdin();
    assert_eq!(host.finish(WAIT), 0, "stderr: {:#?}", host.err);
    // Nobody heard of mallory: no rename notice, and the command was not sent as a message.
    for p in [&host, &bob] {
        assert!(!p.out.iter().any(|l| l.contains("mallory")), "{:#?}", p.out);
        let told = p.err.iter().filter(|l| l.contains("mallory") && !l.contains("nobody called"));
        assert_eq!(told.count(), 0, "{:#?}", p.err);
    }
    assert!(!bob.err.iter().any(|l| l.contains(" is now ")), "{:#?}", bob.err);
}

/// A member that leaves (Ctrl-C, `/quit` or the end of its input) while the room goes on is
/// not told that the host closed the room: the host's goodbye then only answers its own.
#[cfg(unix)]
#[test]
fn a_member_that_leaves_is_not_told_the_room_closed() {
    let (mut host, port) = weak_room();
    let (mut plain_host, plain_port) = Proc::host(&["--room", "--plaintext", "--name", "teacher"]);
    let mut leavers = vec![
        member(port, "alice", &WEAK),
        member(port, "bob", &WEAK),
        member(port, "carol", &WEAK),
        member(plain_port, "dave", &["--plaintext"]),
        member(plain_port, "erin", &["--plaintext"]),
    ];
    host.wait_err(|l| l.starts_with("carol joined from "), WAIT);
    plain_host.wait_err(|l| l.starts_with("erin joined from "), WAIT);
    interrupt(&leavers[0]);
    leavers[1].send(&["/quit"]);
    leavers[2].close_stdin();
    interrupt(&leavers[3]);
    leavers[4].send(&["/quit"]);
    for m in &mut leavers {
        assert_eq!(m.finish(WAIT), 0, "stderr: {:#?}", m.err);
    }
    for name in ["alice", "bob", "carol"] {
        host.wait_err(|l| l.starts_with(&format!("{name} left (")), WAIT);
    }
    for name in ["dave", "erin"] {
        plain_host.wait_err(|l| l.starts_with(&format!("{name} left (")), WAIT);
    }
    let how = ["Ctrl-C", "/quit", "end of input", "Ctrl-C (plaintext)", "/quit (plaintext)"];
    let told: Vec<&str> = (leavers.iter().zip(how))
        .filter(|(m, _)| count(&m.err, "the host closed the room") > 0)
        .map(|(_, how)| how)
        .collect();
    assert!(told.is_empty(), "told the room closed after leaving by {told:?}");
    for h in [&mut host, &mut plain_host] {
        h.close_stdin();
        assert_eq!(h.finish(WAIT), 0, "stderr: {:#?}", h.err);
    }
}

/// `--explain` on a member also explains a message it receives, as the two-person chat and
/// the room's host do.
#[test]
fn explain_on_a_member_shows_what_it_receives() {
    let (mut host, mut alice, mut bob) = alice_and_bob(&["--explain"]);
    bob.send(&["hello alice"]);
    alice.wait_out(|l| l == "bob: hello alice", WAIT);
    host.send(&["from the teacher"]);
    alice.wait_out(|l| l == "teacher: from the teacher", WAIT);
    alice.close_stdin();
    assert_eq!(alice.finish(WAIT), 0, "stderr: {:#?}", alice.err);
    let received: Vec<&String> =
        alice.err.iter().filter(|l| l.starts_with("wire: received ROOM MESSAGE")).collect();
    assert_eq!(received.len(), 2, "one explanation per message received: {:#?}", alice.err);
    for (line, from) in received.iter().zip(["bob", "teacher"]) {
        assert!(
            line.starts_with(&format!("wire: received ROOM MESSAGE #0 from {from}, ")),
            "{line}"
        );
        assert!(line.contains("the copy encrypted to this key (opened with RSA-OAEP)"), "{line}");
        assert!(line.contains("1 other recipient's copy as its SHA-256 digest"), "{line}");
        assert!(line.ends_with(&format!("{from}'s RSA-PSS signature over all of them checked")));
    }
    let bye = alice.err.iter().filter(|l| l.starts_with("wire: sent BYE, ")).count();
    assert_eq!(bye, 1, "the goodbye explained: {:#?}", alice.err);
    bob.close_stdin();
    assert_eq!(bob.finish(WAIT), 0);
    host.close_stdin();
    assert_eq!(host.finish(WAIT), 0);
}
