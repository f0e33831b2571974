//! A misbehaving peer against the real `rchat` binary (issue 2, "Tests").
//!
//! The peer lives in this file: it speaks the encrypted protocol over a real loopback
//! `TcpStream` with the library's own codec and crypto (`rchat::protocol`, `rchat::crypto`),
//! then breaks one rule. For every case the binary must say what went wrong in one line of
//! its own, never panic, never hang (every wait here is bounded), and exit as the issue says:
//! a host rejects a bad candidate during the handshake, logs one line and still serves a
//! proper peer afterwards; a running chat ends with exit status 1; a joiner exits 1.

mod common;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use common::Proc;
use rchat::crypto::{Identity, PeerKey};
use rchat::protocol::secure::{
    Opener, Role, Sealer, Session, check_hello, hello_frame, message_input, transcript_hash,
};
use rchat::protocol::wire::{
    Auth, Busy, Frame, FrameHeader, FrameType, HEADER_LEN, Hello, MODE_RSA_OAEP_PSS_SHA256, Message,
};

/// Longest any single read of the in-test peer may block.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Seconds the binary has to print an expected line or to exit.
const WAIT: u64 = 10;

/// Flags for a fast host: 1024-bit keys (a lab setup) and short deadlines.
const WEAK: [&str; 4] = ["--bits", "1024", "--allow-weak-keys", "--frame-timeout"];

fn weak_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = WEAK.to_vec();
    v.push("1");
    v.extend_from_slice(extra);
    v
}

fn key1024() -> Arc<Identity> {
    Arc::new(Identity::generate(1024).expect("1024-bit test key"))
}

/// One real 2048-bit key, shared by the tests that need one.
fn key2048() -> Arc<Identity> {
    static KEY: OnceLock<Arc<Identity>> = OnceLock::new();
    KEY.get_or_init(|| Arc::new(Identity::generate(2048).expect("2048-bit test key"))).clone()
}

/// Deterministic noise that does not start like an rchat frame.
fn noise(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out: Vec<u8> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    if out.first() == Some(&b'R') {
        out[0] = 0xfe;
    }
    out
}

fn read_frame(stream: &mut TcpStream) -> io::Result<Frame> {
    let mut head = [0u8; HEADER_LEN];
    stream.read_exact(&mut head)?;
    let header = FrameHeader::decode(&head).map_err(io::Error::other)?;
    let mut body = vec![0u8; header.len as usize];
    stream.read_exact(&mut body)?;
    Ok(Frame { kind: header.kind, body })
}

fn expect_frame(stream: &mut TcpStream, kind: FrameType) -> Frame {
    let frame = read_frame(stream).unwrap_or_else(|e| panic!("reading a {kind} frame: {e}"));
    assert_eq!(frame.kind, kind, "expected a {kind} frame");
    frame
}

/// Read until the binary closes its side; returns what arrived (bounded by `IO_TIMEOUT`).
fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return all,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
}

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to rchat host");
    stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    stream
}

/// Accept one connection within `WAIT` seconds.
fn accept(listener: &TcpListener) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(WAIT);
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
                return stream;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("rchat join did not connect: {e}"),
        }
    }
}

/// The in-test peer: one side of the encrypted protocol over a real socket.
struct Peer {
    stream: TcpStream,
    me: Arc<Identity>,
    role: Role,
    my_hello: Vec<u8>,
    their_hello: Vec<u8>,
    their_key: Option<PeerKey>,
}

impl Peer {
    fn new(stream: TcpStream, me: Arc<Identity>, role: Role) -> Peer {
        let my_hello = hello_frame(&me, "tester").to_bytes();
        Peer { stream, me, role, my_hello, their_hello: Vec::new(), their_key: None }
    }

    /// Join the binary's host on `port` as a joiner.
    fn join(port: u16, me: Arc<Identity>) -> Peer {
        Peer::new(connect(port), me, Role::Joiner)
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to rchat");
    }

    /// Send our HELLO, then read and check theirs.
    fn exchange_hello(&mut self) {
        let mine = self.my_hello.clone();
        self.send(&mine);
        self.read_hello();
    }

    fn read_hello(&mut self) {
        let frame = expect_frame(&mut self.stream, FrameType::Hello);
        let hello = Hello::decode(&frame.body).expect("the binary's HELLO decodes");
        self.their_key = Some(check_hello(&hello, true, None).expect("the binary's key is fine"));
        self.their_hello = frame.to_bytes();
    }

    fn hellos(&self) -> (&[u8], &[u8]) {
        match self.role {
            Role::Host => (&self.my_hello, &self.their_hello),
            Role::Joiner => (&self.their_hello, &self.my_hello),
        }
    }

    fn transcript(&self) -> [u8; 32] {
        let (h, j) = self.hellos();
        transcript_hash(h, j)
    }

    fn session(&self) -> Session {
        let (h, j) = self.hellos();
        let key = self.their_key.clone().expect("HELLO exchanged first");
        Session::new(self.me.clone(), key, "rchat".into(), self.role, h, j)
    }

    /// The whole handshake, done right.
    fn handshake(&mut self) -> (Sealer, Opener) {
        self.exchange_hello();
        let session = self.session();
        let auth = session.auth().expect("sign AUTH").to_frame().to_bytes();
        self.send(&auth);
        let frame = expect_frame(&mut self.stream, FrameType::Auth);
        session.check_auth(&Auth::decode(&frame.body).unwrap()).expect("the binary's AUTH");
        session.split()
    }

    fn send_message(&mut self, msg: &Message) {
        let bytes = msg.to_frame().to_bytes();
        self.send(&bytes);
    }

    /// Send a MESSAGE as rchat itself does, in two writes: header and blocks first, the
    /// signature after a pause, so the binary decrypts before the signature has arrived.
    fn send_message_split(&mut self, msg: &Message) {
        self.send(&msg.frame_head(msg.signature.len()));
        thread::sleep(Duration::from_millis(100));
        self.send(&msg.frame_tail());
    }

    fn sign(&self, msg: &Message) -> Vec<u8> {
        self.me.sign(&message_input(&self.transcript(), self.role, msg)).expect("sign")
    }

    fn read_message(&mut self, opener: &mut Opener) -> String {
        let frame = expect_frame(&mut self.stream, FrameType::Message);
        opener.open(&Message::decode(&frame.body).unwrap()).expect("the binary's MESSAGE")
    }

    /// Say goodbye and check the binary's goodbye.
    fn goodbye(&mut self, sealer: &mut Sealer, opener: &mut Opener) {
        let bye = sealer.bye().unwrap().to_frame().to_bytes();
        self.send(&bye);
        let _ = self.stream.shutdown(Shutdown::Write);
        let frame = expect_frame(&mut self.stream, FrameType::Bye);
        opener.open_bye(&rchat::protocol::wire::Bye::decode(&frame.body).unwrap()).unwrap();
    }

    fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().unwrap()
    }
}

/// Nothing on stderr looks like a panic.
fn assert_no_panic(p: &mut Proc) {
    assert!(!p.err_has("panicked"), "rchat panicked: {:#?}", p.err);
    assert!(!p.err_has("RUST_BACKTRACE"), "rchat panicked: {:#?}", p.err);
}

/// The binary's final error line; there must be exactly one and it must hold `needle`.
fn assert_one_error(p: &mut Proc, needle: &str) {
    assert_no_panic(p);
    let errors: Vec<&String> = p.err.iter().filter(|l| l.starts_with("rchat: error:")).collect();
    assert_eq!(errors.len(), 1, "expected one error line; stderr: {:#?}", p.err);
    assert!(
        errors[0].contains(needle),
        "expected `{needle}` in the error line; stderr: {:#?}",
        p.err
    );
}

/// Wait for the binary to exit on its own, its stdin still open (so it never says goodbye
/// because its input ended); kill it and fail after `secs`.
fn exit_code(p: &mut Proc, secs: u64) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = p.child.try_wait().unwrap() {
            thread::sleep(Duration::from_millis(100));
            let _ = p.err_has(""); // collect the last lines
            return status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = p.child.kill();
            let _ = p.err_has("");
            panic!("rchat did not exit within {secs} s; stderr: {:#?}", p.err);
        }
        thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------
// The host during the handshake: reject, log one line, keep waiting, then serve a peer.
// ---------------------------------------------------------------------------------------

/// Wait for the host's one line about the candidate from `addr` and check it.
fn expect_rejected(host: &mut Proc, addr: SocketAddr, needle: &str) -> String {
    let prefix = format!("rejected a connection from {addr}: ");
    let line = host.wait_err(|l| l.starts_with(&prefix), WAIT);
    assert!(line.contains(needle), "expected `{needle}` in {line:?}");
    assert!(line.ends_with("still waiting for a peer"), "{line:?}");
    let count = host.err.iter().filter(|l| l.contains(&addr.to_string())).count();
    assert_eq!(count, 1, "one line per rejected candidate; stderr: {:#?}", host.err);
    assert_no_panic(host);
    assert_no_control_chars(host);
    assert!(host.child.try_wait().unwrap().is_none(), "the host must keep running");
    line
}

/// After bad candidates: a proper in-test peer chats both ways with the host, and the host
/// exits 0. The host must have `from host` queued on its stdin.
fn good_peer_chats(host: &mut Proc, port: u16, me: Arc<Identity>) {
    let mut peer = Peer::join(port, me);
    let (mut sealer, mut opener) = peer.handshake();
    assert_eq!(peer.read_message(&mut opener), "from host");
    let msg = sealer.seal("from peer").unwrap();
    peer.send_message(&msg);
    host.wait_out_lines(1, WAIT);
    assert_eq!(host.out, ["from peer"]);
    host.close_stdin();
    peer.goodbye(&mut sealer, &mut opener);
    assert_eq!(host.finish(WAIT), 0, "stderr: {:#?}", host.err);
    assert_no_panic(host);
    assert!(!host.err_has("rchat: error:"), "{:#?}", host.err);
}

/// Start a weak-key host with `from host` queued for whoever it chats with.
fn lab_host(extra: &[&str]) -> (Proc, u16) {
    let (mut host, port) = Proc::host(&weak_args(extra));
    host.send(&["from host"]);
    (host, port)
}

#[test]
fn host_rejects_random_bytes_then_serves_a_peer() {
    let (mut host, port) = lab_host(&[]);
    let mut bad = connect(port);
    bad.write_all(&noise(300)).unwrap();
    let addr = bad.local_addr().unwrap();
    expect_rejected(&mut host, addr, "the peer seems to be in plaintext mode");
    good_peer_chats(&mut host, port, key1024());
}

#[test]
fn host_rejects_a_plaintext_line_as_a_mode_mismatch() {
    let (mut host, port) = lab_host(&[]);
    let mut bad = connect(port);
    bad.write_all(b"hello, is this the chat?\n").unwrap();
    let addr = bad.local_addr().unwrap();
    let line = expect_rejected(&mut host, addr, "the peer seems to be in plaintext mode");
    assert!(line.contains("hello, is this the chat?"), "shows what arrived: {line}");
    assert!(line.contains("--plaintext"), "says which flag to change: {line}");
    // An encrypted host never answers in plaintext: all it sent is its HELLO.
    let _ = bad.shutdown(Shutdown::Write);
    let got = read_to_close(&mut bad);
    let (first, used) = Frame::parse(&got).unwrap().expect("a whole HELLO");
    assert_eq!((first.kind, used), (FrameType::Hello, got.len()));
    good_peer_chats(&mut host, port, key1024());
}

#[test]
fn host_rejects_an_oversized_length_then_serves_a_peer() {
    let (mut host, port) = lab_host(&[]);
    let mut bad = connect(port);
    let header = FrameHeader { kind: FrameType::Hello, len: u32::MAX }.encode();
    bad.write_all(&header).unwrap();
    let addr = bad.local_addr().unwrap();
    let line = expect_rejected(&mut host, addr, "a HELLO frame declared 4294967295 bytes");
    assert!(line.contains("byte limit"), "{line}");
    good_peer_chats(&mut host, port, key1024());
}

#[test]
fn host_rejects_a_truncated_frame_then_close() {
    let (mut host, port) = lab_host(&[]);
    let mut bad = Peer::join(port, key1024());
    bad.read_hello(); // read what the host sent, so our close is a FIN and not a reset
    let hello = bad.my_hello.clone();
    bad.send(&hello[..40]);
    bad.stream.shutdown(Shutdown::Write).unwrap();
    let need = hello.len();
    let needle = format!("disconnected in the middle of a frame (40 of {need} bytes received)");
    expect_rejected(&mut host, bad.local_addr(), &needle);
    good_peer_chats(&mut host, port, key1024());
}

#[test]
fn host_rejects_silence_after_a_frame_header() {
    let (mut host, port) = lab_host(&["--handshake-timeout", "1"]);
    let mut bad = connect(port);
    let started = Instant::now();
    bad.write_all(&FrameHeader { kind: FrameType::Hello, len: 300 }.encode()).unwrap();
    let addr = bad.local_addr().unwrap();
    expect_rejected(&mut host, addr, "within 1 s");
    assert!(started.elapsed() < Duration::from_secs(5), "the frame deadline bounds the wait");
    good_peer_chats(&mut host, port, key1024());
}

#[test]
fn host_names_the_frame_deadline_for_silence_after_a_header() {
    // --frame-timeout 1 fires after about a second; the line then claims 30 s went by and
    // suggests --plaintext, although the peer sent an rchat header.
    let (mut host, port) = lab_host(&["--handshake-timeout", "30"]);
    let mut bad = connect(port);
    let started = Instant::now();
    bad.write_all(&FrameHeader { kind: FrameType::Hello, len: 300 }.encode()).unwrap();
    let line = host.wait_err(|l| l.starts_with("rejected a connection"), WAIT);
    assert!(started.elapsed() < Duration::from_secs(5), "the 1 s frame deadline fired");
    assert!(!line.contains("within 30 s"), "wrong deadline named: {line}");
    assert!(line.contains("rest of the frame"), "{line}");
}

#[test]
fn host_rejects_a_silent_connection_after_the_handshake_deadline() {
    let (mut host, port) = lab_host(&["--handshake-timeout", "1"]);
    let bad = connect(port);
    let addr = bad.local_addr().unwrap();
    expect_rejected(&mut host, addr, "no handshake from the peer within 1 s");
    good_peer_chats(&mut host, port, key1024());
}

#[test]
fn host_rejects_a_weak_key_without_allow_weak_keys_real_2048_bit_keys() {
    // The host runs with a real 2048-bit key and without --allow-weak-keys.
    let (mut host, port) = Proc::host(&[]);
    host.send(&["from host"]);
    let mut bad = Peer::join(port, key1024());
    bad.exchange_hello();
    expect_rejected(&mut host, bad.local_addr(), "the peer's key is only 1024 bits");
    assert!(host.err_has("--allow-weak-keys"));
    // The host never signed anything for the weak candidate.
    assert!(read_to_close(&mut bad.stream).is_empty());

    // A proper peer: the real binary with its own fresh 2048-bit key.
    let target = format!("127.0.0.1:{port}");
    let mut join = Proc::spawn(&["join", &target]);
    join.send(&["from joiner"]);
    join.close_stdin();
    join.wait_out_lines(1, 30);
    host.wait_out_lines(1, 30);
    assert_eq!(join.out, ["from host"]);
    assert_eq!(host.out, ["from joiner"]);
    host.close_stdin();
    assert_eq!(host.finish(30), 0, "{:#?}", host.err);
    assert_eq!(join.finish(30), 0, "{:#?}", join.err);
    assert!(host.err_has("2048-bit key"));
    assert_no_panic(&mut host);
    assert_no_panic(&mut join);
}

#[test]
fn host_rejects_a_malformed_key_in_a_hello() {
    let (mut host, port) = lab_host(&[]);
    let mut bad = connect(port);
    let me = key1024();
    let mut spki = me.public().spki_der.clone();
    spki.truncate(spki.len() / 2);
    let hello = Hello { mode: MODE_RSA_OAEP_PSS_SHA256, name: "bad".into(), spki };
    bad.write_all(&hello.to_frame().to_bytes()).unwrap();
    let addr = bad.local_addr().unwrap();
    expect_rejected(&mut host, addr, "the peer's public key is malformed");
    good_peer_chats(&mut host, port, me);
}

#[test]
fn host_rejects_an_unknown_mode_and_an_unexpected_frame() {
    let (mut host, port) = lab_host(&[]);
    let me = key1024();
    let mut bad = connect(port);
    let hello = Hello { mode: 7, name: "x".into(), spki: me.public().spki_der.clone() };
    bad.write_all(&hello.to_frame().to_bytes()).unwrap();
    let addr = bad.local_addr().unwrap();
    expect_rejected(&mut host, addr, "the peer announced mode 7");

    let mut bad = connect(port);
    bad.write_all(&Auth { signature: vec![1; 128] }.to_frame().to_bytes()).unwrap();
    let addr = bad.local_addr().unwrap();
    expect_rejected(&mut host, addr, "unexpected AUTH frame instead of a HELLO");

    let mut bad = connect(port);
    let mut header = FrameHeader { kind: FrameType::Hello, len: 4 }.encode();
    header[4] = 9;
    bad.write_all(&header).unwrap();
    let addr = bad.local_addr().unwrap();
    expect_rejected(&mut host, addr, "protocol version 9 is not supported");
    good_peer_chats(&mut host, port, me);
}

#[test]
fn host_rejects_a_bad_auth_signature() {
    let (mut host, port) = lab_host(&[]);
    let mut bad = Peer::join(port, key1024());
    bad.exchange_hello();
    // A signature by a key other than the one in our HELLO, over the right transcript.
    let other = key1024();
    let session = bad.session();
    let forged = Session::new(
        other,
        bad.their_key.clone().unwrap(),
        "x".into(),
        Role::Joiner,
        bad.hellos().0,
        bad.hellos().1,
    );
    assert_ne!(session.auth().unwrap(), forged.auth().unwrap());
    let auth = forged.auth().unwrap().to_frame().to_bytes();
    bad.send(&auth);
    expect_rejected(&mut host, bad.local_addr(), "bad handshake signature");
    good_peer_chats(&mut host, port, key1024());
}

#[test]
fn host_rejects_an_unsigned_auth() {
    let (mut host, port) = lab_host(&[]);
    let mut bad = Peer::join(port, key1024());
    bad.exchange_hello();
    bad.send(&Auth { signature: vec![] }.to_frame().to_bytes());
    expect_rejected(&mut host, bad.local_addr(), "the peer sent an unsigned handshake");
    good_peer_chats(&mut host, port, key1024());
}

#[test]
fn host_rejects_its_own_auth_reflected() {
    let (mut host, port) = lab_host(&[]);
    let mut bad = Peer::join(port, key1024());
    bad.exchange_hello();
    let theirs = expect_frame(&mut bad.stream, FrameType::Auth).to_bytes();
    bad.send(&theirs);
    expect_rejected(&mut host, bad.local_addr(), "(reflected)");
    good_peer_chats(&mut host, port, key1024());
}

#[test]
fn host_rejects_a_fingerprint_mismatch() {
    let good = key1024();
    let fp = good.public().fingerprint.to_string();
    let (mut host, port) = lab_host(&["--peer-fingerprint", &fp]);
    let mut bad = Peer::join(port, key1024());
    bad.exchange_hello();
    let wrong = bad.me.public().fingerprint.to_string();
    let line = expect_rejected(&mut host, bad.local_addr(), "someone may be in the middle");
    assert!(line.contains(&format!("the peer's fingerprint is {wrong}, not the expected {fp}")));
    // Aborted before its AUTH: the candidate got the HELLO and nothing else.
    assert!(read_to_close(&mut bad.stream).is_empty());
    good_peer_chats(&mut host, port, good);
}

#[test]
fn host_survives_every_bad_candidate_in_a_row() {
    let (mut host, port) = lab_host(&["--handshake-timeout", "1"]);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (noise(64), "plaintext mode"),
        (b"hi\n".to_vec(), "plaintext mode"),
        (FrameHeader { kind: FrameType::Message, len: u32::MAX }.encode().to_vec(), "declared"),
        (FrameHeader { kind: FrameType::Hello, len: 100 }.encode().to_vec(), "within 1 s"),
    ];
    for (bytes, needle) in cases {
        let mut bad = connect(port);
        bad.write_all(&bytes).unwrap();
        let addr = bad.local_addr().unwrap();
        expect_rejected(&mut host, addr, needle);
    }
    let lines = host.err.iter().filter(|l| l.starts_with("rejected a connection")).count();
    assert_eq!(lines, 4, "{:#?}", host.err);
    good_peer_chats(&mut host, port, key1024());
}

// ---------------------------------------------------------------------------------------
// A running chat: a protocol violation ends it with exit status 1 and its own message.
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Victim {
    Host,
    Joiner,
}

#[derive(Clone, Copy, Debug)]
enum Attack {
    Replay,
    Reorder,
    Reflect,
    FlipCiphertext,
    BadSignature,
    /// Blocks that do not decrypt, sent ahead of a signature that does not match.
    ForgedSplit,
    /// The first message again, its signature arriving after the blocks.
    ReplaySplit,
    Unsigned,
    Oversized,
    Truncated,
    Silence,
    NotUtf8,
    WrongBlockSize,
    UnexpectedHello,
    UnsignedBye,
    CloseWithoutBye,
}

/// Chat properly, then attack; the binary must end with exit 1 and the line holding `needle`.
fn attack_running_chat(victim: Victim, attack: Attack, needle: &str) {
    attack_running_chat_with(victim, attack, needle, false);
}

/// As [`attack_running_chat`]; `strong` uses real 2048-bit keys on both sides.
fn attack_running_chat_with(victim: Victim, attack: Attack, needle: &str, strong: bool) {
    let (flags, key) = if strong {
        (vec!["--frame-timeout", "1"], key2048())
    } else {
        (weak_args(&[]), key1024())
    };
    let (mut bin, mut peer, _listener) = match victim {
        Victim::Host => {
            let (bin, port) = Proc::host(&flags);
            (bin, Peer::join(port, key), None)
        }
        Victim::Joiner => {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let target = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
            let mut args = vec!["join", target.as_str()];
            args.extend(flags);
            let bin = Proc::spawn(&args);
            let stream = accept(&listener);
            (bin, Peer::new(stream, key, Role::Host), Some(listener))
        }
    };
    let bits = if strong { 2048 } else { 1024 };
    assert_eq!(peer.me.public().bits(), bits);
    // The binary says something first, so there is one of its messages to reflect.
    bin.send(&["from the binary"]);
    let (mut sealer, mut opener) = peer.handshake();
    assert_eq!(peer.their_key.as_ref().unwrap().bits(), bits, "the binary's key size");
    let theirs = expect_frame(&mut peer.stream, FrameType::Message);
    let text = opener.open(&Message::decode(&theirs.body).unwrap()).unwrap();
    assert_eq!(text, "from the binary");
    // One good message gets through first, its signature sent after its blocks.
    let first = sealer.seal("good one").unwrap();
    peer.send_message_split(&first);
    bin.wait_out_lines(1, WAIT);

    let started = Instant::now();
    match attack {
        Attack::Replay => peer.send_message(&first),
        Attack::Reorder => {
            let _skipped = sealer.seal("skipped").unwrap();
            let next = sealer.seal("secret after a gap").unwrap();
            peer.send_message(&next);
        }
        Attack::Reflect => peer.send(&theirs.to_bytes()),
        Attack::FlipCiphertext => {
            let mut msg = sealer.seal("secret flipped").unwrap();
            let mid = msg.blocks.len() / 2;
            msg.blocks[mid] ^= 0x01;
            msg.signature = peer.sign(&msg); // the signature passes, OAEP must fail
            peer.send_message(&msg);
        }
        Attack::BadSignature => {
            let mut msg = sealer.seal("secret forged").unwrap();
            msg.signature[7] ^= 0x80;
            peer.send_message(&msg);
        }
        Attack::ForgedSplit => {
            let mut msg = sealer.seal("secret forged").unwrap();
            msg.blocks[3] ^= 0x01;
            msg.signature[7] ^= 0x80;
            peer.send_message_split(&msg);
        }
        Attack::ReplaySplit => peer.send_message_split(&first),
        Attack::Unsigned => {
            let mut msg = sealer.seal("secret unsigned").unwrap();
            msg.signature.clear();
            peer.send_message(&msg);
        }
        Attack::Oversized => {
            let max = FrameType::Message.max_body() as u32;
            peer.send(&FrameHeader { kind: FrameType::Message, len: max + 1 }.encode());
        }
        Attack::Truncated => {
            let bytes = sealer.seal("secret cut").unwrap().to_frame().to_bytes();
            peer.send(&bytes[..bytes.len() / 2]);
            peer.stream.shutdown(Shutdown::Write).unwrap();
        }
        Attack::Silence => {
            let bytes = sealer.seal("secret slow").unwrap().to_frame().to_bytes();
            peer.send(&bytes[..HEADER_LEN + 3]);
        }
        Attack::NotUtf8 => {
            // Properly encrypted and signed, in sequence, but not text.
            let key = peer.their_key.clone().unwrap();
            let blocks = key.encrypt_blocks(&[0x66, 0xff, 0xfe, 0x80]).unwrap().concat();
            let block_len = key.size() as u16;
            let mut msg = Message { seq: 1, block_len, blocks, signature: vec![] };
            msg.signature = peer.sign(&msg);
            peer.send_message(&msg);
        }
        Attack::WrongBlockSize => {
            let mut msg =
                Message { seq: 1, block_len: 100, blocks: vec![7; 300], signature: vec![] };
            msg.signature = peer.sign(&msg);
            peer.send_message(&msg);
        }
        Attack::UnsignedBye => {
            let mut bye = sealer.bye().unwrap();
            bye.signature.clear();
            peer.send(&bye.to_frame().to_bytes());
        }
        Attack::CloseWithoutBye => peer.stream.shutdown(Shutdown::Write).unwrap(),
        Attack::UnexpectedHello => {
            let hello = peer.my_hello.clone();
            peer.send(&hello);
        }
    }
    let code = exit_code(&mut bin, WAIT);
    assert_eq!(code, 1, "{attack:?} against the {victim:?}: stderr {:#?}", bin.err);
    assert!(started.elapsed() < Duration::from_secs(5), "{attack:?} took {:?}", started.elapsed());
    assert_one_error(&mut bin, needle);
    assert_eq!(bin.out, ["good one"], "only the good message is shown");
}

#[test]
fn chat_host_rejects_a_replayed_message() {
    attack_running_chat(
        Victim::Host,
        Attack::Replay,
        "message 0 was replayed (expected message 1)",
    );
}

#[test]
fn chat_host_rejects_a_reordered_message() {
    attack_running_chat(
        Victim::Host,
        Attack::Reorder,
        "message 2 arrived where message 1 was due: messages were reordered or dropped",
    );
}

#[test]
fn chat_host_rejects_its_own_message_reflected() {
    attack_running_chat(Victim::Host, Attack::Reflect, "sent back one of our own messages");
}

#[test]
fn chat_joiner_rejects_its_own_message_reflected() {
    attack_running_chat(Victim::Joiner, Attack::Reflect, "sent back one of our own messages");
}

#[test]
fn chat_host_rejects_a_flipped_ciphertext_byte_even_when_re_signed() {
    attack_running_chat(
        Victim::Host,
        Attack::FlipCiphertext,
        "block 0 of a message could not be decrypted (OAEP check failed)",
    );
}

#[test]
fn chat_joiner_rejects_a_flipped_ciphertext_byte_even_when_re_signed() {
    attack_running_chat(Victim::Joiner, Attack::FlipCiphertext, "could not be decrypted");
}

#[test]
fn chat_host_rejects_a_bad_signature() {
    attack_running_chat(
        Victim::Host,
        Attack::BadSignature,
        "a message signature does not match: the frame was altered or forged",
    );
}

#[test]
fn chat_joiner_rejects_a_bad_signature_real_2048_bit_keys() {
    attack_running_chat_with(
        Victim::Joiner,
        Attack::BadSignature,
        "signature does not match",
        true,
    );
}

#[test]
fn chat_host_rejects_a_flipped_ciphertext_byte_real_2048_bit_keys() {
    attack_running_chat_with(Victim::Host, Attack::FlipCiphertext, "OAEP check failed", true);
}

#[test]
fn chat_joiner_rejects_a_replayed_message() {
    attack_running_chat(Victim::Joiner, Attack::Replay, "was replayed");
}

#[test]
fn chat_host_decrypting_ahead_still_reports_a_forgery_as_a_bad_signature() {
    // The blocks arrive first and fail to decrypt; that must not be what the peer is told.
    attack_running_chat(
        Victim::Host,
        Attack::ForgedSplit,
        "a message signature does not match: the frame was altered or forged",
    );
}

#[test]
fn chat_joiner_decrypting_ahead_still_reports_a_forgery_real_2048_bit_keys() {
    attack_running_chat_with(Victim::Joiner, Attack::ForgedSplit, "signature does not match", true);
}

#[test]
fn chat_host_decrypting_ahead_still_rejects_a_replay() {
    attack_running_chat(
        Victim::Host,
        Attack::ReplaySplit,
        "message 0 was replayed (expected message 1)",
    );
}

#[test]
fn chat_host_rejects_an_unsigned_message() {
    attack_running_chat(Victim::Host, Attack::Unsigned, "the peer sent an unsigned message");
}

#[test]
fn chat_host_rejects_an_oversized_frame_length() {
    let max = FrameType::Message.max_body();
    let needle = format!("protocol violation: a MESSAGE frame declared {} bytes", max + 1);
    attack_running_chat(Victim::Host, Attack::Oversized, &needle);
}

#[test]
fn chat_host_rejects_a_truncated_frame_then_close() {
    attack_running_chat(Victim::Host, Attack::Truncated, "disconnected in the middle of a frame");
}

#[test]
fn chat_joiner_rejects_a_truncated_frame_then_close() {
    attack_running_chat(Victim::Joiner, Attack::Truncated, "disconnected in the middle of a frame");
}

#[test]
fn chat_host_rejects_a_signed_message_that_is_not_utf8() {
    attack_running_chat(Victim::Host, Attack::NotUtf8, "a decrypted message is not UTF-8 text");
}

#[test]
fn chat_joiner_rejects_blocks_of_the_wrong_size() {
    attack_running_chat(
        Victim::Joiner,
        Attack::WrongBlockSize,
        "ciphertext blocks are 100 bytes but our key makes 128-byte blocks",
    );
}

#[test]
fn chat_host_rejects_a_hello_during_the_chat() {
    attack_running_chat(
        Victim::Host,
        Attack::UnexpectedHello,
        "the peer sent an unexpected HELLO frame during the chat",
    );
}

#[test]
fn chat_host_rejects_an_unsigned_goodbye() {
    attack_running_chat(Victim::Host, Attack::UnsignedBye, "the peer sent an unsigned goodbye");
}

#[test]
fn chat_joiner_reports_a_close_without_goodbye_as_connection_lost() {
    attack_running_chat(
        Victim::Joiner,
        Attack::CloseWithoutBye,
        "connection lost: the peer closed the connection without saying goodbye",
    );
}

#[test]
fn chat_host_rejects_silence_after_a_frame_header() {
    attack_running_chat(
        Victim::Host,
        Attack::Silence,
        "the peer went silent: the rest of the frame did not arrive in time",
    );
}

#[test]
fn chat_joiner_rejects_silence_after_a_frame_header() {
    attack_running_chat(Victim::Joiner, Attack::Silence, "the peer went silent");
}

// ---------------------------------------------------------------------------------------
// A second connection while a chat runs.
// ---------------------------------------------------------------------------------------

#[test]
fn a_second_connection_gets_busy_and_the_chat_goes_on() {
    let (mut host, port) = lab_host(&[]);
    let mut peer = Peer::join(port, key1024());
    let (mut sealer, mut opener) = peer.handshake();
    assert_eq!(peer.read_message(&mut opener), "from host");

    // A raw second client: a BUSY frame with a reason, then the host closes.
    let mut second = connect(port);
    second.write_all(&hello_frame(&key1024(), "late").to_bytes()).unwrap();
    let busy = expect_frame(&mut second, FrameType::Busy);
    let reason = Busy::decode(&busy.body).unwrap().reason;
    assert_eq!(reason, "this host is already in a chat");
    assert!(read_to_close(&mut second).is_empty(), "nothing after the BUSY frame");
    let addr = second.local_addr().unwrap();
    host.wait_err(|l| l == format!("refused a connection from {addr}: already in a chat"), WAIT);

    // The real binary as a late joiner: told the host is busy, exit 1.
    let target = format!("127.0.0.1:{port}");
    let mut late = Proc::spawn(&["join", &target, "--bits", "1024", "--allow-weak-keys"]);
    assert_eq!(late.finish(WAIT), 1, "{:#?}", late.err);
    assert_one_error(&mut late, "the host is busy: this host is already in a chat");

    // The running chat is untouched.
    peer.send_message(&sealer.seal("still here").unwrap());
    host.wait_out_lines(1, WAIT);
    host.send(&["me too"]);
    assert_eq!(peer.read_message(&mut opener), "me too");
    assert_eq!(host.out, ["still here"]);
    host.close_stdin();
    peer.goodbye(&mut sealer, &mut opener);
    assert_eq!(host.finish(WAIT), 0, "{:#?}", host.err);
    assert_no_panic(&mut host);
}

#[test]
fn silent_candidates_cannot_lock_the_host_out() {
    // A hundred connections that never speak (a classmate's nc, a scanner, a script that
    // reopens them): the host keeps a few handshakes per address and closes the oldest
    // silent one for each newcomer, so a proper peer gets in at once, long before the
    // handshake deadline would have freed a place.
    let (mut host, port) = lab_host(&["--handshake-timeout", "60"]);
    let mut silent: Vec<TcpStream> = (0..100).map(|_| connect(port)).collect();
    let started = Instant::now();
    let mut peer = Peer::join(port, key1024());
    let (mut sealer, mut opener) = peer.handshake();
    assert_eq!(peer.read_message(&mut opener), "from host");
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(20), "the peer waited {waited:?} behind silent ones");
    peer.send_message(&sealer.seal("from peer").unwrap());
    host.wait_out_lines(1, WAIT);
    assert_eq!(host.out, ["from peer"]);
    // The first silent connection was closed to make room (at most the host's HELLO came
    // first): it reads the end well before the handshake deadline.
    let first = silent.first_mut().unwrap();
    let _ = first.set_read_timeout(Some(Duration::from_secs(WAIT)));
    let before = Instant::now();
    let got = read_to_close(first);
    assert!(before.elapsed() < Duration::from_secs(WAIT), "closed, not timed out");
    assert!(got.len() < 1000, "no more than a HELLO: {} bytes", got.len());
    let addr = first.local_addr().unwrap();
    assert!(host.err_has(&format!("closed the connection from {addr}: it had sent nothing")));
    host.close_stdin();
    peer.goodbye(&mut sealer, &mut opener);
    assert_eq!(host.finish(WAIT), 0, "stderr: {:#?}", host.err);
    assert_no_panic(&mut host);
}

#[test]
fn candidates_that_all_talk_fill_the_host_and_the_next_is_refused() {
    // Eight connections from one address that each send the start of a frame (they talk, so
    // none is closed to make room): the ninth is turned away with a BUSY frame.
    let (mut host, port) = lab_host(&["--handshake-timeout", "60"]);
    let talking: Vec<TcpStream> = (0..8)
        .map(|_| {
            let mut s = connect(port);
            assert_eq!(read_frame(&mut s).ok().map(|f| f.kind), Some(FrameType::Hello));
            s.write_all(&hello_frame(&key1024(), "slow").to_bytes()[..10]).unwrap();
            s
        })
        .collect();
    // Each has been read from before the next arrives: wait until the host heard the last.
    thread::sleep(Duration::from_millis(300));
    let mut ninth = connect(port);
    let frame = read_frame(&mut ninth).expect("a frame for the ninth connection");
    assert_eq!(frame.kind, FrameType::Busy, "{:#?}", host.err);
    let reason = Busy::decode(&frame.body).unwrap().reason;
    assert!(reason.contains("too many connections at once"), "{reason}");
    let addr = ninth.local_addr().unwrap();
    host.wait_err(|l| l.starts_with(&format!("refused a connection from {addr}")), WAIT);
    // Once they hang up, their places are free again.
    drop(talking);
    good_peer_chats(&mut host, port, key1024());
}

// ---------------------------------------------------------------------------------------
// The joiner against a misbehaving host: exit 1, one clear line.
// ---------------------------------------------------------------------------------------

/// Start `rchat join` against an in-test host, let `host_side` misbehave, and check the
/// joiner exits 1 with one error line holding `needle`.
fn joiner_against(extra: &[&str], needle: &str, host_side: impl FnOnce(&mut TcpStream, &Frame)) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("127.0.0.1:{}", listener.local_addr().unwrap().port());
    let mut args = vec!["join", target.as_str()];
    args.extend_from_slice(extra);
    let mut join = Proc::spawn(&args);
    let mut stream = accept(&listener);
    // The joiner speaks first: its HELLO.
    let hello = expect_frame(&mut stream, FrameType::Hello);
    host_side(&mut stream, &hello);
    assert_eq!(join.finish(WAIT), 1, "{:#?}", join.err);
    assert_one_error(&mut join, needle);
    assert!(join.out.is_empty());
    assert_no_control_chars(&mut join);
}

#[test]
fn joiner_exits_on_random_bytes_saying_plaintext_mode() {
    joiner_against(
        &["--bits", "1024", "--allow-weak-keys"],
        "the peer seems to be in plaintext mode",
        |s, _| s.write_all(&noise(200)).unwrap(),
    );
}

#[test]
fn joiner_exits_on_a_truncated_hello() {
    let me = key1024();
    let hello = hello_frame(&me, "host").to_bytes();
    let needle = format!("disconnected in the middle of a frame (50 of {} bytes", hello.len());
    joiner_against(&["--bits", "1024", "--allow-weak-keys"], &needle, |s, _| {
        s.write_all(&hello[..50]).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
    });
}

#[test]
fn joiner_exits_on_a_wrong_fingerprint_before_sending_auth() {
    let me = key1024();
    let pinned = key1024().public().fingerprint.to_string();
    let got = me.public().fingerprint.to_string();
    let needle = format!("the peer's fingerprint is {got}, not the expected {pinned}");
    let args = ["--bits", "1024", "--allow-weak-keys", "--peer-fingerprint", &pinned];
    joiner_against(&args, &needle, |s, _| {
        s.write_all(&hello_frame(&me, "host").to_bytes()).unwrap();
        assert!(read_to_close(s).is_empty(), "no AUTH after a fingerprint mismatch");
    });
}

#[test]
fn joiner_exits_on_a_weak_host_key_real_2048_bit_joiner() {
    let me = key1024();
    joiner_against(&[], "the peer's key is only 1024 bits: add --allow-weak-keys", |s, _| {
        s.write_all(&hello_frame(&me, "host").to_bytes()).unwrap();
        assert!(read_to_close(s).is_empty(), "no AUTH to a weak key");
    });
}

#[test]
fn joiner_exits_on_a_silent_host() {
    let args = ["--bits", "1024", "--allow-weak-keys", "--handshake-timeout", "1"];
    joiner_against(&args, "no handshake from the peer within 1 s", |s, _| {
        let _ = read_to_close(s);
    });
}

#[test]
fn joiner_exits_on_silence_after_a_frame_header() {
    let args = ["--bits", "1024", "--allow-weak-keys", "--frame-timeout", "1"];
    let started = Instant::now();
    // The handshake deadline is the default 15 s: the frame deadline must end it first.
    joiner_against(&args, "the rest of the frame did not arrive in time", |s, _| {
        s.write_all(&FrameHeader { kind: FrameType::Hello, len: 300 }.encode()).unwrap();
        let _ = read_to_close(s);
    });
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
}

#[test]
fn joiner_exits_on_a_bad_auth_from_the_host() {
    let me = key1024();
    joiner_against(&["--bits", "1024", "--allow-weak-keys"], "bad handshake signature", |s, _| {
        s.write_all(&hello_frame(&me, "host").to_bytes()).unwrap();
        s.write_all(&Auth { signature: vec![0x5a; 128] }.to_frame().to_bytes()).unwrap();
        let _ = read_to_close(s);
    });
}

#[test]
fn joiner_exits_on_its_own_hello_reflected() {
    // A host that mirrors everything: the joiner's own HELLO and AUTH come back to it.
    joiner_against(&["--bits", "1024", "--allow-weak-keys"], "(reflected)", |s, hello| {
        s.write_all(&hello.to_bytes()).unwrap();
        let auth = expect_frame(s, FrameType::Auth);
        s.write_all(&auth.to_bytes()).unwrap();
        let _ = read_to_close(s);
    });
}

// ---------------------------------------------------------------------------------------
// Text from the peer never reaches the terminal raw.
// ---------------------------------------------------------------------------------------

/// Control characters that would move the cursor, clear the screen or ring the bell.
const NASTY: &str = "\u{1b}[2J\u{1b}[Hfake prompt\u{7}\r";

fn assert_no_control_chars(p: &mut Proc) {
    let _ = p.err_has("");
    for line in p.err.iter().chain(p.out.iter()) {
        assert!(
            !line.chars().any(|c| c.is_control() && c != '\t'),
            "a control character reached the terminal: {line:?}"
        );
    }
}

#[test]
fn a_hello_name_with_control_characters_is_shown_escaped() {
    let (mut host, port) = lab_host(&[]);
    let me = key1024();
    let mut peer = Peer::join(port, me.clone());
    peer.my_hello = Hello {
        mode: MODE_RSA_OAEP_PSS_SHA256,
        name: format!("evil{NASTY}"),
        spki: me.public().spki_der.clone(),
    }
    .to_frame()
    .to_bytes();
    let (mut sealer, mut opener) = peer.handshake();
    assert_eq!(peer.read_message(&mut opener), "from host");
    peer.send_message(&sealer.seal(&format!("text{NASTY}")).unwrap());
    host.wait_out_lines(1, WAIT);
    host.close_stdin();
    peer.goodbye(&mut sealer, &mut opener);
    assert_eq!(host.finish(WAIT), 0, "{:#?}", host.err);
    assert!(host.err_has("connected to evil"), "{:#?}", host.err);
    assert_no_control_chars(&mut host);
}

#[test]
fn a_busy_reason_with_control_characters_is_shown_escaped_by_the_joiner() {
    let reason = format!("busy{NASTY}");
    joiner_against(&["--bits", "1024", "--allow-weak-keys"], "the host is busy", |s, _| {
        s.write_all(&Busy { reason }.to_frame().to_bytes()).unwrap();
    });
}

#[test]
fn a_busy_frame_from_a_candidate_is_logged_escaped_by_the_host() {
    let (mut host, port) = lab_host(&[]);
    let mut bad = connect(port);
    bad.write_all(&Busy { reason: format!("busy{NASTY}") }.to_frame().to_bytes()).unwrap();
    let addr = bad.local_addr().unwrap();
    expect_rejected(&mut host, addr, "unexpected BUSY frame instead of a HELLO");
    assert_no_control_chars(&mut host);
}
