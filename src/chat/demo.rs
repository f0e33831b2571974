//! `rchat demo`: two people, alice (the host) and bob (the joiner), chat in this one process
//! over a real TCP connection on 127.0.0.1, following a short script, so a presenter needs
//! one terminal and Wireshark.
//!
//! Owns the script and the demo's screen (standard output). It must never implement any
//! part of the protocol itself: both sides run the real handshake ([`establish`])
//! and the real [`Link::send_explained`] / [`Link::receive`], so what Wireshark shows is
//! exactly what two `rchat` processes would exchange.

use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::link::{Link, Local, PeerEvent, establish};
use super::record::{Recording, Tap};
use super::terminal::Ui;
use super::{ChatError, KeySource, Settings, net};
use crate::crypto::Identity;
use crate::escape::text as escape;
use crate::protocol::secure::Role;

/// One of the two people in the demo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Person {
    /// The host, who listens.
    Alice,
    /// The joiner, who connects.
    Bob,
}

impl Person {
    /// The display name, also sent in the HELLO.
    pub fn name(self) -> &'static str {
        match self {
            Person::Alice => "alice",
            Person::Bob => "bob",
        }
    }

    /// The other person.
    pub fn other(self) -> Person {
        match self {
            Person::Alice => Person::Bob,
            Person::Bob => Person::Alice,
        }
    }
}

/// The conversation, in order: who says what. The locker code is the secret to look for
/// in Wireshark.
pub const SCRIPT: &[(Person, &str)] = &[
    (Person::Alice, "Hi Bob! Are you at the sports hall?"),
    (Person::Bob, "Yes, but I forgot the code for our locker."),
    (Person::Alice, "It is 4-7-1-9. Please don't tell anyone."),
    (Person::Bob, "Got it: 4719. Thanks!"),
    (Person::Alice, "Bring my blue water bottle, it is on the top shelf."),
    (Person::Bob, "Will do. See you at lunch."),
    (Person::Alice, "See you!"),
];

/// The pause between two lines, so an audience can follow in Wireshark.
pub const PAUSE: Duration = Duration::from_millis(1500);
/// Key size for both people.
const BITS: usize = 2048;

/// A line of the demo on standard output. A closed output does not stop the demo.
fn show(line: impl AsRef<str>) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{}", line.as_ref()).and_then(|()| out.flush());
}

fn settings(plaintext: bool, who: Person) -> Settings {
    Settings {
        plaintext,
        key: KeySource::Fresh(BITS),
        pin: None,
        name: who.name().to_owned(),
        explain: false,
        allow_weak: false,
        handshake_timeout: Duration::from_secs(15),
        frame_timeout: Duration::from_secs(10),
    }
}

/// Make both keys at once (two cores, two people).
fn two_keys() -> Result<(Arc<Identity>, Arc<Identity>), ChatError> {
    let (alice, bob) = thread::scope(|s| {
        let alice = s.spawn(|| Identity::generate(BITS));
        let bob = Identity::generate(BITS);
        (alice.join(), bob)
    });
    let alice = alice.map_err(|_| ChatError::Demo("making alice's key failed".into()))?;
    Ok((Arc::new(alice?), Arc::new(bob?)))
}

/// How to play the demo.
#[derive(Debug, Clone, Copy)]
pub struct DemoSettings {
    /// Send the lines unencrypted.
    pub plaintext: bool,
    /// TCP port on 127.0.0.1 (0 picks a free one).
    pub port: u16,
    /// No pauses between the lines.
    pub fast: bool,
}

/// Run `rchat demo`, writing the connection to `recording` when there is one.
pub fn run(args: DemoSettings, recording: Option<Recording>) -> Result<(), ChatError> {
    let plaintext = args.plaintext;
    // Ctrl-C (even while the keys are made) skips the rest of the script: the goodbyes still
    // close the recording properly. A second Ctrl-C stops at once.
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    });
    let listener = net::listen(Some(IpAddr::V4(Ipv4Addr::LOCALHOST)), args.port)?
        .pop()
        .ok_or_else(|| ChatError::Demo("no listening socket".into()))?;
    let host_addr = listener.local_addr().map_err(ChatError::Write)?;
    let port = host_addr.port();

    let mode = if plaintext { "PLAINTEXT mode: readable by anyone" } else { "encrypted mode" };
    show(format!(
        "rchat demo: alice and bob chat over TCP on {host_addr}, {mode} \
         (Wireshark: loopback interface, filter tcp.port == {port})"
    ));
    let keys = if plaintext {
        None
    } else {
        show("making a 2048-bit RSA key for each of them ...");
        let (alice, bob) = two_keys()?;
        for (who, id) in [(Person::Alice, &alice), (Person::Bob, &bob)] {
            show(format!(
                "{:<12} {}-bit RSA, fingerprint {}",
                format!("{}'s key:", who.name()),
                id.public().bits(),
                id.public().fingerprint
            ));
        }
        Some((alice, bob))
    };
    let (alice_key, bob_key) = keys.unzip();

    // bob connects first (the listening socket queues him), then alice accepts.
    let bob_stream = net::connect("127.0.0.1", port, net::CONNECT_TIMEOUT)?;
    let (alice_stream, bob_addr) = listener.accept().map_err(ChatError::Write)?;
    // The recording is alice's view of the connection: she is 127.0.0.1:PORT.
    let tap = recording.map(|file| {
        let tap = Tap::new(host_addr, bob_addr, false);
        tap.attach(file);
        tap
    });
    let (alice, bob) = handshake(
        (alice_stream, bob_addr, alice_key),
        (bob_stream, host_addr, bob_key),
        plaintext,
        tap.clone(),
    );
    let (mut alice, mut bob) = match (alice, bob) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            if let Some(tap) = &tap {
                let _ = tap.finish();
            }
            return Err(e);
        }
    };
    show(format!("bob ({bob_addr}) joined alice ({host_addr}): the chat starts"));
    if !plaintext {
        show(
            "  wire: each sent a HELLO (name and public key, readable by anyone) and an AUTH \
             (a signature proving it holds the private key)",
        );
    }
    show("");

    let pause = if args.fast { Duration::ZERO } else { PAUSE };
    for (i, &(from, text)) in SCRIPT.iter().enumerate() {
        if !wait(if i == 0 { Duration::ZERO } else { pause }, &stop) {
            show("(stopped early)");
            break;
        }
        let (sender, receiver) = pair(from, &mut alice, &mut bob);
        let to = from.other().name();
        show(format!("{} → {to}: {text}", from.name()));
        show(format!("  {}", sender.send_explained(text)?));
        match receiver.receive()? {
            PeerEvent::Message(got) => show(format!("  {to} received: {}", escape(&got))),
            other => return Err(unexpected(to, "a message", &other)),
        }
    }

    show("");
    for leaver in [Person::Alice, Person::Bob] {
        let stayer = leaver.other();
        let (link, other) = pair(leaver, &mut alice, &mut bob);
        link.goodbye()?;
        match other.receive()? {
            PeerEvent::Bye | PeerEvent::Closed => {}
            event => return Err(unexpected(stayer.name(), "a goodbye", &event)),
        }
    }
    show(if plaintext {
        "alice and bob left: each closed the connection (TCP FIN)"
    } else {
        "alice and bob left: each sent a signed BYE frame, then closed the connection (TCP FIN)"
    });
    bob.close()?;
    alice.close()?;
    if let Some(path) = tap.as_ref().and_then(Tap::path) {
        show(format!(
            "recorded to {}: open it in Wireshark or tshark (rebuilt from alice's socket, \
             not captured from the wire)",
            path.display()
        ));
    }
    Ok(())
}

/// `who`'s link first, the other person's second.
fn pair<'a>(who: Person, alice: &'a mut Link, bob: &'a mut Link) -> (&'a mut Link, &'a mut Link) {
    match who {
        Person::Alice => (alice, bob),
        Person::Bob => (bob, alice),
    }
}

/// Sleep for `pause` unless `stop` is set first; false when stopped.
fn wait(pause: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + pause;
    loop {
        if stop.load(Ordering::SeqCst) {
            return false;
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        thread::sleep(left.min(Duration::from_millis(50)));
    }
}

type Side = (TcpStream, SocketAddr, Option<Arc<Identity>>);

/// Both handshakes at once, as two machines would do them: alice on a thread of her own.
fn handshake(
    alice: Side,
    bob: Side,
    plaintext: bool,
    tap: Option<Tap>,
) -> (Result<Link, ChatError>, Result<Link, ChatError>) {
    let run = |(stream, addr, key): Side, who: Person, tap: Option<Tap>| {
        let role = if who == Person::Alice { Role::Host } else { Role::Joiner };
        let ui = Ui::detached(who.name());
        let settings = settings(plaintext, who);
        establish(
            stream,
            addr,
            Local { role, me: key.as_ref(), settings: &settings, ui: &ui, room: false },
            tap,
        )
    };
    thread::scope(|s| {
        let host = s.spawn(|| run(alice, Person::Alice, tap));
        let joiner = run(bob, Person::Bob, None);
        let host =
            host.join().unwrap_or_else(|_| Err(ChatError::Demo("alice's handshake failed".into())));
        (host, joiner)
    })
}

fn unexpected(who: &str, wanted: &str, got: &PeerEvent) -> ChatError {
    ChatError::Demo(format!("{who} expected {wanted} but got {got:?}"))
}
