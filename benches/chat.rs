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

use rchat::chat::session::{Link, PeerEvent, establish};
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
        establish(stream, peer, Role::Host, me, &s, &Ui::detached("host")).unwrap()
    });
    let me = (!plaintext).then(|| Arc::new(Identity::generate(bits).unwrap()));
    let stream = TcpStream::connect(addr).unwrap();
    let s = settings(plaintext, bits);
    let joiner = establish(stream, addr, Role::Joiner, me, &s, &Ui::detached("guest")).unwrap();
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

fn main() {
    // `cargo bench` passes --bench; a filter argument is accepted and ignored.
    let message = "x".repeat(100);
    println!("rchat chat benchmark (loopback, 127.0.0.1)");
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
