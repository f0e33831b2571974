//! Chat benchmark on loopback: handshake (key generation included), round-trip time of a
//! 100-byte message, and one-way messages per second, at 2048 and 3072 bits, with the
//! plaintext mode alongside for scale. Run with `cargo bench --bench chat`.
//!
//! Both peers run the library's own handshake and message code (`rchat::chat::session`)
//! over real TCP sockets on 127.0.0.1, each in its own thread, as two `rchat` processes would.

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rchat::chat::link::{Link, Local, PeerEvent, establish};
use rchat::chat::terminal::Ui;
use rchat::chat::{KeySource, Settings};
use rchat::crypto::Identity;
use rchat::protocol::secure::Role;

fn settings(plaintext: bool, bits: usize) -> Settings {
    Settings {
        plaintext,
        key: KeySource::Fresh(bits),
        pin: None,
        name: "bench".into(),
        explain: false,
        allow_weak: false,
        handshake_timeout: Duration::from_secs(30),
        frame_timeout: Duration::from_secs(30),
    }
}

/// Connect two peers; each generates its key (in parallel, as two machines would) and
/// handshakes. Returns (host link, joiner link, time from start to both ready).
fn pair(plaintext: bool, bits: usize) -> (Link, Link, Duration) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let start = Instant::now();
    let host = thread::spawn(move || {
        let me = (!plaintext).then(|| Arc::new(Identity::generate(bits).unwrap()));
        let (stream, peer) = listener.accept().unwrap();
        let s = settings(plaintext, bits);
        let ui = Ui::detached("host");
        let local = Local { role: Role::Host, me: me.as_ref(), settings: &s, ui: &ui, room: false };
        establish(stream, peer, local, None).unwrap()
    });
    let me = (!plaintext).then(|| Arc::new(Identity::generate(bits).unwrap()));
    let stream = TcpStream::connect(addr).unwrap();
    let s = settings(plaintext, bits);
    let joiner = {
        let ui = Ui::detached("guest");
        let local =
            Local { role: Role::Joiner, me: me.as_ref(), settings: &s, ui: &ui, room: false };
        establish(stream, addr, local, None).unwrap()
    };
    let host = host.join().unwrap();
    (host, joiner, start.elapsed())
}

fn expect_message(link: &mut Link) -> String {
    match link.receive().unwrap() {
        PeerEvent::Message(m) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

struct Stats {
    median: Duration,
    min: Duration,
    max: Duration,
}

fn stats(mut v: Vec<Duration>) -> Stats {
    v.sort();
    Stats { median: v[v.len() / 2], min: v[0], max: v[v.len() - 1] }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

/// Median time of one RSA private-key operation (a PSS signature and an OAEP decryption,
/// both blinded as rchat does them), measured on one thread: the unit the chat's figures
/// are made of.
fn private_ops(bits: usize) -> (Duration, Duration) {
    let me = Identity::generate(bits).unwrap();
    let block = me.public().encrypt_blocks(&[b'x'; 100]).unwrap().remove(0);
    let (mut sign, mut decrypt) = (Vec::new(), Vec::new());
    for _ in 0..40 {
        let t = Instant::now();
        me.sign(b"benchmark").unwrap();
        sign.push(t.elapsed());
        let t = Instant::now();
        me.decrypt_block(&block).unwrap();
        decrypt.push(t.elapsed());
    }
    (stats(sign).median, stats(decrypt).median)
}

fn main() {
    // `cargo bench` passes --bench; a filter argument is accepted and ignored.
    let message = "x".repeat(100);
    println!("rchat chat benchmark (loopback, 127.0.0.1)");
    println!("one RSA private-key operation on one core, as the chat does them (blinded):");
    for bits in [2048, 3072] {
        let (sign, decrypt) = private_ops(bits);
        // A round trip is two hops; each hop overlaps the sender's signature with the
        // recipient's decryption. One way, every message costs one of each, on two cores.
        let op = sign.max(decrypt);
        println!(
            "  RSA-{bits}: sign {}, decrypt {}; floor for a round trip ~{}, ceiling one way ~{:.0} msg/s",
            ms(sign),
            ms(decrypt),
            ms(op * 2),
            1.0 / op.as_secs_f64()
        );
    }
    println!(
        "{:<10} {:>6} {:>28} {:>26} {:>14}",
        "mode", "bits", "handshake incl. keygen", "round trip, 100 B", "one-way msg/s"
    );
    for (plaintext, bits, handshakes) in [(false, 2048, 15), (false, 3072, 6), (true, 0, 15)] {
        // Handshake, fresh keys each time.
        let mut hs = Vec::new();
        for _ in 0..handshakes {
            let (_h, _j, t) = pair(plaintext, bits);
            hs.push(t);
        }
        let hs = stats(hs);

        // Round trips on one connection: joiner sends, host answers.
        let (mut host, mut joiner, _) = pair(plaintext, bits);
        let rounds = 200;
        let echo = {
            let message = message.clone();
            thread::spawn(move || {
                for _ in 0..rounds {
                    expect_message(&mut host);
                    host.send(&message).unwrap();
                }
                host
            })
        };
        let mut rtts = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let t = Instant::now();
            joiner.send(&message).unwrap();
            expect_message(&mut joiner);
            rtts.push(t.elapsed());
        }
        let mut host = echo.join().unwrap();
        let rtt = stats(rtts);

        // One way: the joiner sends as fast as it can, the host receives.
        let count = if plaintext { 100_000 } else { 2_000 };
        let receiver = thread::spawn(move || {
            let t = Instant::now();
            for _ in 0..count {
                expect_message(&mut host);
            }
            t.elapsed()
        });
        for _ in 0..count {
            joiner.send(&message).unwrap();
        }
        let elapsed = receiver.join().unwrap();
        let rate = count as f64 / elapsed.as_secs_f64();

        let mode = if plaintext { "plaintext" } else { "encrypted" };
        let bits = if plaintext { "-".to_string() } else { bits.to_string() };
        println!(
            "{mode:<10} {bits:>6} {:>28} {:>26} {:>14.0}",
            format!("{} ({}-{})", ms(hs.median), ms(hs.min), ms(hs.max)),
            format!("{} ({}-{})", ms(rtt.median), ms(rtt.min), ms(rtt.max)),
            rate
        );
    }
    println!("(median, with min-max in brackets; targets at 2048 bits: handshake < 150 ms,");
    println!(" round trip < 10 ms, >= 300 messages/s one way)");
}
