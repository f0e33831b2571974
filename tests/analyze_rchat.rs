//! `rchat analyze` reading rchat's own protocol: the handshake anyone can read, each frame,
//! violations, and `--key` decrypting what was sent to that key ("capture now, decrypt
//! later"). The conversations are made by the library's real protocol code and written as
//! captures by the tests.

mod common;

use std::sync::Arc;

use common::capture::*;
use common::scratch;
use pcap_file::Endianness;
use rchat::crypto::Identity;
use rchat::protocol::secure::{Role, Sealer, Session, hello_frame};
use serde_json::Value;
use tempfile::TempDir;

struct Chat {
    /// The folder holding the files below, removed with the value.
    dir: TempDir,
    file: std::path::PathBuf,
    host_key: std::path::PathBuf,
    guest_key: std::path::PathBuf,
    other_key: std::path::PathBuf,
}

/// A full encrypted conversation: HELLOs, AUTHs, two messages each way, BYEs, written as a
/// pcap; and the three key files (host, guest, an unrelated one).
fn encrypted_chat(tag: &str, tamper: impl Fn(&mut Vec<u8>)) -> Chat {
    let dir = scratch(&format!("analyze-{tag}"));
    let host = Arc::new(Identity::generate(2048).unwrap());
    let guest = Arc::new(Identity::generate(2048).unwrap());
    let other = Identity::generate(2048).unwrap();
    let hh = hello_frame(&host, "alice").to_bytes();
    let jh = hello_frame(&guest, "bob").to_bytes();
    let hs = Session::new(host.clone(), guest.public().clone(), "bob".into(), Role::Host, &hh, &jh);
    let js =
        Session::new(guest.clone(), host.public().clone(), "alice".into(), Role::Joiner, &hh, &jh);
    let h_auth = hs.auth().unwrap().to_frame().to_bytes();
    let j_auth = js.auth().unwrap().to_frame().to_bytes();
    let (mut hseal, _) = hs.split();
    let (mut jseal, _) = js.split();
    let mut from_guest = Vec::new();
    for text in ["hi alice, what's the locker code?", "thanks!"] {
        from_guest.push(jseal.seal(text).unwrap().to_frame().to_bytes());
    }
    let mut from_host = Vec::new();
    for text in ["it is 4711 — don't tell anyone", "bye bob 👋"] {
        from_host.push(hseal.seal(text).unwrap().to_frame().to_bytes());
    }
    let mut host_bye = hseal.bye().unwrap().to_frame().to_bytes();
    tamper(&mut host_bye);
    let guest_bye = jseal.bye().unwrap().to_frame().to_bytes();

    let mut conv = Conv::new(End::new("127.0.0.1", 50123), End::new("127.0.0.1", 9999), 7, 900);
    conv.handshake();
    conv.c(&jh).s(&hh).c(&j_auth).s(&h_auth);
    conv.c(&from_guest[0]).s(&from_host[0]).c(&from_guest[1]).s(&from_host[1]);
    conv.c(&guest_bye).s(&host_bye).close();
    let recs = records(Link::Ethernet, &conv.packets);
    let file = write(dir.path(), "chat.pcap", &pcap_bytes(1, &recs, Endianness::Little, false));
    let key = |name: &str, id: &Identity| write(dir.path(), name, id.to_pem().unwrap().as_bytes());
    let (host_key, guest_key, other_key) =
        (key("alice.pem", &host), key("bob.pem", &guest), key("other.pem", &other));
    Chat { dir, file, host_key, guest_key, other_key }
}

fn rchat_dir<'a>(report: &'a Value, d: &str) -> &'a Value {
    &report["streams"][0]["directions"][d]["rchat"]
}

fn messages(r: &Value) -> Vec<&Value> {
    r["frames"].as_array().unwrap().iter().filter(|f| f["type"] == "MESSAGE").collect()
}

#[test]
fn the_handshake_and_frames_are_shown_without_a_key() {
    let chat = encrypted_chat("rchat-nokey", |_| {});
    let report = analyze_json(&chat.file, &[]);
    let c2s = rchat_dir(&report, "client_to_server");
    let s2c = rchat_dir(&report, "server_to_client");
    assert_eq!(c2s["hello"]["name"], "bob");
    assert_eq!(s2c["hello"]["name"], "alice");
    assert_eq!(c2s["hello"]["key_bits"], 2048);
    // The fingerprint an eavesdropper computes is the one `rchat fingerprint` prints.
    let out = rchat(&["fingerprint", chat.host_key.to_str().unwrap()]);
    let printed = String::from_utf8(out.stdout).unwrap();
    assert!(printed.starts_with(s2c["hello"]["fingerprint"].as_str().unwrap()), "{printed}");
    let types: Vec<&str> =
        s2c["frames"].as_array().unwrap().iter().map(|f| f["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["HELLO", "AUTH", "MESSAGE", "MESSAGE", "BYE"]);
    let m = messages(s2c);
    assert_eq!(m[1]["seq"], 1);
    assert_eq!(m[0]["blocks"], 1);
    assert_eq!(m[0]["block_len"], 256);
    assert_eq!(m[0]["signature_len"], 256);
    assert!(m[0]["plaintext"].is_null());
    assert_eq!(m[0]["verdict"], "ciphertext");
    assert!(s2c["violations"].as_array().unwrap().is_empty());

    let out = rchat(&["analyze", chat.file.to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("rchat handshake: HELLO from \"alice\" with a 2048-bit RSA public key"));
    let len = m[0]["length"].as_u64().unwrap();
    let line =
        format!("MESSAGE #0: {len} bytes, 1 RSA-OAEP block of 256 bytes, 256-byte signature");
    assert!(text.contains(&line), "{text}");
    assert!(text.contains("MESSAGE #1"), "{text}");
    assert!(!text.contains("4711"), "no key, no plaintext: {text}");
}

#[test]
fn the_recipients_key_decrypts_what_was_sent_to_it() {
    let chat = encrypted_chat("rchat-key", |_| {});
    // bob's key opens what alice sent him, not what he sent her.
    let report = analyze_json(&chat.file, &["--key", chat.guest_key.to_str().unwrap()]);
    let s2c = rchat_dir(&report, "server_to_client");
    let m = messages(s2c);
    assert_eq!(m[0]["plaintext"], "it is 4711 — don't tell anyone");
    assert_eq!(m[1]["plaintext"], "bye bob 👋");
    assert_eq!(s2c["decrypted"], 2);
    let c2s = rchat_dir(&report, "client_to_server");
    assert_eq!(c2s["decrypted"], 0);
    assert!(messages(c2s)[0]["not_decrypted"].as_str().unwrap().contains("owner of the given key"));

    // alice's key opens the other direction.
    let report = analyze_json(&chat.file, &["--key", chat.host_key.to_str().unwrap()]);
    let m = messages(rchat_dir(&report, "client_to_server"));
    assert_eq!(m[0]["plaintext"], "hi alice, what's the locker code?");

    let out =
        rchat(&["analyze", chat.file.to_str().unwrap(), "--key", chat.guest_key.to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("decrypted \"it is 4711 — don't tell anyone\""), "{text}");
    assert!(text.contains("with the given key: 2 message(s) decrypted, 0 not"), "{text}");
}

#[test]
fn a_wrong_key_decrypts_nothing_and_says_why() {
    let chat = encrypted_chat("rchat-wrongkey", |_| {});
    let report = analyze_json(&chat.file, &["--key", chat.other_key.to_str().unwrap()]);
    for d in ["client_to_server", "server_to_client"] {
        let r = rchat_dir(&report, d);
        assert_eq!(r["decrypted"], 0, "{d}");
        for m in messages(r) {
            assert!(m["not_decrypted"].as_str().unwrap().contains("another key"), "{m}");
        }
    }
}

#[test]
fn a_plaintext_session_with_a_key_is_simply_readable() {
    let dir = scratch("analyze-rchat-plainkey");
    let mut conv = Conv::new(End::new("127.0.0.1", 50124), End::new("127.0.0.1", 9999), 1, 2);
    conv.handshake();
    conv.c(b"the locker code is 4711\n").s(b"thanks\n").close();
    let recs = records(Link::Ethernet, &conv.packets);
    let file = write(dir.path(), "plain.pcap", &pcap_bytes(1, &recs, Endianness::Little, false));
    let key =
        write(dir.path(), "k.pem", Identity::generate(2048).unwrap().to_pem().unwrap().as_bytes());
    let report = analyze_json(&file, &["--key", key.to_str().unwrap()]);
    let c2s = &report["streams"][0]["directions"]["client_to_server"];
    assert_eq!(c2s["verdict"], "plaintext");
    assert!(c2s["rchat"].is_null());
}

#[test]
fn protocol_violations_are_reported_not_hidden() {
    // alice's BYE claims sequence number 7 instead of 2.
    let chat = encrypted_chat("rchat-violation", |bye| {
        bye[10..18].copy_from_slice(&7u64.to_be_bytes());
    });
    let report = analyze_json(&chat.file, &[]);
    let v = rchat_dir(&report, "server_to_client")["violations"].as_array().unwrap().clone();
    assert_eq!(v.len(), 1, "{v:?}");
    assert!(v[0].as_str().unwrap().contains("sequence number 7 where 2 was due"), "{v:?}");
    let out = rchat(&["analyze", chat.file.to_str().unwrap()]);
    assert!(String::from_utf8(out.stdout).unwrap().contains("protocol violation:"));
}

#[test]
fn an_unreadable_key_is_one_error_line() {
    let chat = encrypted_chat("rchat-badkey", |_| {});
    let missing = chat.dir.path().join("no-such-folder").join("key.pem");
    let out = rchat(&["analyze", chat.file.to_str().unwrap(), "--key", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot read key file"), "{err}");
}

/// A session recorded by rchat itself (`--record`), with saved keys: analyze reads the
/// recording like any capture and the receiver's key opens what was sent to it.
#[test]
fn a_recorded_session_is_read_and_decrypted() {
    let dir = scratch("analyze-rchat-recorded");
    let key = |name: &str| {
        let path = dir.path().join(name);
        let out = rchat(&["keygen", "--out", path.to_str().unwrap()]);
        assert!(out.status.success());
        path
    };
    let (alice, bob) = (key("alice.pem"), key("bob.pem"));
    let recording = dir.path().join("host.pcap");
    let (a, b, rec) = (alice.to_str().unwrap(), bob.to_str().unwrap(), recording.to_str().unwrap());
    let (_, _, port) = common::converse(
        &["--name", "alice", "--key", a, "--record", rec],
        &["--name", "bob", "--key", b],
        &["the code is 4719 🙂".into()],
        &["thanks alice".into()],
        |_| {},
    );
    let port = port.to_string();

    let report = analyze_json(&recording, &["--port", &port, "--key", bob.to_str().unwrap()]);
    let s2c = rchat_dir(&report, "server_to_client");
    assert_eq!(s2c["hello"]["name"], "alice");
    assert_eq!(messages(s2c)[0]["plaintext"], "the code is 4719 🙂");
    let c2s = rchat_dir(&report, "client_to_server");
    assert_eq!(c2s["hello"]["name"], "bob");
    assert_eq!(c2s["decrypted"], 0, "bob's own messages are encrypted to alice");
    let report = analyze_json(&recording, &["--port", &port, "--key", alice.to_str().unwrap()]);
    assert_eq!(messages(rchat_dir(&report, "client_to_server"))[0]["plaintext"], "thanks alice");
}

/// The one-terminal demo, recorded, read back by analyze in both modes.
#[test]
fn a_recorded_demo_is_read_by_analyze() {
    let dir = scratch("analyze-rchat-demo");
    for (mode, expect) in [(&[][..], "ciphertext"), (&["--plaintext"][..], "plaintext")] {
        let file = dir.path().join(format!("demo{}.pcap", mode.len()));
        let mut args = vec!["demo", "--fast", "--port", "0", "--record", file.to_str().unwrap()];
        args.extend_from_slice(mode);
        let out = rchat(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let report = analyze_json(&file, &["--all-ports"]);
        let stream = &report["streams"][0];
        let c2s = &stream["directions"]["client_to_server"];
        if expect == "plaintext" {
            assert_eq!(stream["verdict"], "plaintext", "{stream}");
            assert!(c2s["rchat"].is_null());
        } else {
            assert_ne!(stream["verdict"], "plaintext", "{stream}");
            assert_eq!(c2s["rchat"]["hello"]["name"], "bob");
            assert!(c2s["rchat"]["violations"].as_array().unwrap().is_empty());
        }
    }
}

/// A real tcpdump capture (shipped in captures/, with the keys saved when it was made): bob's
/// key opens the messages alice sent him.
#[test]
fn a_shipped_tcpdump_capture_is_decrypted_with_a_saved_key() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let file = root.join("captures/chat-encrypted.pcapng");
    let bob = root.join("captures/keys/bob.pem");
    let report = analyze_json(&file, &["--key", bob.to_str().unwrap()]);
    let streams = report["streams"].as_array().unwrap();
    let decrypted: Vec<String> = streams
        .iter()
        .flat_map(|s| ["client_to_server", "server_to_client"].map(|d| &s["directions"][d]))
        .filter(|d| !d["rchat"].is_null())
        .flat_map(|d| messages(&d["rchat"]).into_iter().cloned().collect::<Vec<_>>())
        .filter_map(|m| m["plaintext"].as_str().map(str::to_owned))
        .collect();
    assert!(decrypted.iter().any(|t| t.contains("marmalade")), "{decrypted:?}");
}

/// Both sides' keys at once open the whole conversation.
#[test]
fn both_keys_open_both_directions() {
    let chat = encrypted_chat("rchat-twokeys", |_| {});
    let report = analyze_json(
        &chat.file,
        &["--key", chat.host_key.to_str().unwrap(), "--key", chat.guest_key.to_str().unwrap()],
    );
    assert_eq!(rchat_dir(&report, "client_to_server")["decrypted"], 2);
    assert_eq!(rchat_dir(&report, "server_to_client")["decrypted"], 2);
    assert_eq!(messages(rchat_dir(&report, "client_to_server"))[1]["plaintext"], "thanks!");
}

/// A room of four recorded on the host's port: the host "teacher" (member 0) and the
/// connections of alice (1), bob (2) and carol (3), joined in that order, every frame made by
/// the library's room code with real keys. alice says "hello room" to everyone, then
/// "bob, the locker code is 4711" to bob alone (`/msg`); the host relays each copy to its
/// recipient with the others as digests; alice leaves.
struct RoomCapture {
    _dir: TempDir,
    file: std::path::PathBuf,
    /// teacher's, alice's, bob's and carol's key files.
    keys: Vec<std::path::PathBuf>,
    fingerprints: Vec<String>,
}

const ROOM_NAMES: [&str; 4] = ["teacher", "alice", "bob", "carol"];
const PUBLIC_TEXT: &str = "hello room";
const PRIVATE_TEXT: &str = "bob, the locker code is 4711";

fn room_capture() -> RoomCapture {
    use rchat::protocol::room_secure::seal;
    use rchat::protocol::room_wire::{Joined, Left, Member, Roster};
    use rchat::protocol::secure::room_hello_frame;
    use rchat::protocol::wire::FrameType;

    let dir = scratch("analyze-rchat-room");
    let ids: Vec<Arc<Identity>> =
        (0..4).map(|_| Arc::new(Identity::generate(2048).unwrap())).collect();
    let room_id: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0xa5);
    let member = |id: u16| Member {
        id,
        name: ROOM_NAMES[usize::from(id)].into(),
        spki: ids[usize::from(id)].public().spki_der.clone(),
    };
    let everyone = [(0u16, ids[0].public()), (2, ids[2].public()), (3, ids[3].public())];
    let public = seal(&ids[1], &room_id, 1, 0, false, &everyone, PUBLIC_TEXT).unwrap();
    let private =
        seal(&ids[1], &room_id, 1, 1, true, &[(2, ids[2].public())], PRIVATE_TEXT).unwrap();

    let mut packets = Vec::new();
    let mut legs: Vec<(Conv, Sealer, Sealer)> = Vec::new();
    // Each member joins: handshake, ROSTER, and a JOINED to those already in.
    for me in 1..4u16 {
        let key = &ids[usize::from(me)];
        let name = ROOM_NAMES[usize::from(me)];
        let server = End::new("127.0.0.1", 9999);
        let mut conv = Conv::new(End::new("127.0.0.1", 50200 + me), server, 100 * u32::from(me), 7);
        let hh = room_hello_frame(&ids[0], "teacher").to_bytes();
        let jh = hello_frame(key, name).to_bytes();
        let hs =
            Session::new(ids[0].clone(), key.public().clone(), name.into(), Role::Host, &hh, &jh);
        let js = Session::new(
            key.clone(),
            ids[0].public().clone(),
            "teacher".into(),
            Role::Joiner,
            &hh,
            &jh,
        );
        conv.handshake();
        conv.c(&jh).s(&hh);
        conv.c(&js.auth().unwrap().to_frame().to_bytes());
        conv.s(&hs.auth().unwrap().to_frame().to_bytes());
        let (mut hseal, _) = hs.split();
        let (jseal, _) = js.split();
        let mut roster = Roster {
            seq: 0,
            room_id,
            you: me,
            your_name: name.into(),
            members: (0..=me).map(member).collect(),
            signature: vec![],
        };
        (roster.seq, roster.signature) = hseal.notice(FrameType::Roster, &roster.fields()).unwrap();
        conv.s(&roster.to_frame().to_bytes());
        packets.append(&mut conv.packets);
        for (earlier, seal, _) in legs.iter_mut() {
            let mut joined = Joined { seq: 0, member: member(me), signature: vec![] };
            (joined.seq, joined.signature) =
                seal.notice(FrameType::Joined, &joined.fields()).unwrap();
            earlier.s(&joined.to_frame().to_bytes());
            packets.append(&mut earlier.packets);
        }
        legs.push((conv, hseal, jseal));
    }
    // alice speaks to everyone, then to bob alone; the host relays.
    let [alice, bob, carol] = &mut legs[..] else { unreachable!() };
    alice.0.c(&public.to_frame().to_bytes());
    packets.append(&mut alice.0.packets);
    for (leg, id) in [(&mut *bob, 2), (&mut *carol, 3)] {
        leg.0.s(&public.for_recipient(id).to_frame().to_bytes());
        packets.append(&mut leg.0.packets);
    }
    alice.0.c(&private.to_frame().to_bytes());
    packets.append(&mut alice.0.packets);
    bob.0.s(&private.for_recipient(2).to_frame().to_bytes());
    packets.append(&mut bob.0.packets);
    // alice leaves; the others hear of it; everyone says goodbye.
    for (i, (conv, seal, member_seal)) in legs.iter_mut().enumerate() {
        conv.c(&member_seal.bye().unwrap().to_frame().to_bytes());
        if i > 0 {
            let mut left = Left { seq: 0, id: 1, reason: "left".into(), signature: vec![] };
            (left.seq, left.signature) = seal.notice(FrameType::Left, &left.fields()).unwrap();
            conv.s(&left.to_frame().to_bytes());
        }
        conv.s(&seal.bye().unwrap().to_frame().to_bytes());
        conv.close();
        packets.append(&mut conv.packets);
    }
    let recs = records(Link::Ethernet, &packets);
    let file = write(dir.path(), "room.pcap", &pcap_bytes(1, &recs, Endianness::Little, false));
    let keys = ids
        .iter()
        .zip(ROOM_NAMES)
        .map(|(id, name)| {
            write(dir.path(), &format!("{name}.pem"), id.to_pem().unwrap().as_bytes())
        })
        .collect();
    let fingerprints = ids.iter().map(|id| id.public().fingerprint.to_string()).collect();
    RoomCapture { _dir: dir, file, keys, fingerprints }
}

/// Every ROOM MESSAGE of the report: (the member's client port, direction, frame).
fn room_messages(report: &Value) -> Vec<(u64, &'static str, &Value)> {
    let mut out = Vec::new();
    for s in report["streams"].as_array().unwrap() {
        let port: u64 = s["client"].as_str().unwrap().rsplit(':').next().unwrap().parse().unwrap();
        for d in ["client_to_server", "server_to_client"] {
            let frames = s["directions"][d]["rchat"]["frames"].as_array().unwrap();
            for f in frames.iter().filter(|f| f["type"] == "ROOM MESSAGE") {
                out.push((port, d, f));
            }
        }
    }
    out
}

#[test]
fn a_room_capture_is_read_and_each_key_opens_what_was_addressed_to_it() {
    let room = room_capture();
    let key = |i: usize| room.keys[i].to_str().unwrap();
    let fp = |i: usize| room.fingerprints[i].as_str();

    // Without a key: the room, its members and keys, and each message's addressing.
    let report = analyze_json(&room.file, &[]);
    let streams = report["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 3);
    for s in streams {
        assert_eq!(s["verdict"], "ciphertext", "{}", s["eavesdropper"]);
        let s2c = &s["directions"]["server_to_client"];
        assert_eq!(s2c["rchat"]["hello"]["mode"], 2);
        assert_eq!(s2c["rchat"]["hello"]["name"], "teacher");
        for m in s2c["messages"].as_array().unwrap() {
            let head = m["kind"].as_str().unwrap();
            assert!(["key", "handshake", "framing", "message"].contains(&head));
        }
        let kinds: Vec<(&str, &str)> = s2c["rchat"]["frames"]
            .as_array()
            .unwrap()
            .iter()
            .zip(s2c["messages"].as_array().unwrap())
            .map(|(f, m)| (f["type"].as_str().unwrap(), m["kind"].as_str().unwrap()))
            .filter(|(t, _)| ["ROSTER", "JOINED", "ROOM MESSAGE", "LEFT"].contains(t))
            .collect();
        for (t, k) in &kinds {
            let want = match *t {
                "ROSTER" | "JOINED" => "key",
                "LEFT" => "framing",
                _ => "message",
            };
            assert_eq!(k, &want, "{kinds:?}");
        }
        let say = s["eavesdropper"].as_str().unwrap();
        assert!(say.starts_with("encrypted: the text is hidden; still visible: room "), "{say}");
        assert!(say.contains("with 4 members named in the clear"), "{say}");
        assert!(say.contains("four 2048-bit RSA public keys"), "{say}");
    }
    let bob_stream = &streams[1];
    let roster = &bob_stream["directions"]["server_to_client"]["rchat"]["frames"][2];
    assert_eq!(roster["type"], "ROSTER");
    assert_eq!(roster["room"]["member_id"], 2);
    assert_eq!(roster["room"]["member_name"], "bob");
    let listed: Vec<(u64, &str, u64, &str)> = roster["room"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let (id, name) = (m["id"].as_u64().unwrap(), m["name"].as_str().unwrap());
            (id, name, m["key_bits"].as_u64().unwrap(), m["fingerprint"].as_str().unwrap())
        })
        .collect();
    assert_eq!(listed, (0..3).map(|i| (i as u64, ROOM_NAMES[i], 2048, fp(i))).collect::<Vec<_>>());
    let room_id = roster["room"]["room_id"].as_str().unwrap();
    assert_eq!(room_id.len(), 64);
    // The member's own leg learns the room from its other direction, and names everyone.
    let alice_up = &streams[0]["directions"]["client_to_server"]["rchat"]["room"];
    assert_eq!(alice_up["room_id"], room_id);
    assert_eq!(alice_up["members"].as_array().unwrap().len(), 4);
    let all = room_messages(&report);
    assert_eq!(all.len(), 5, "2 sent by alice, 2 relayed to bob, 1 to carol");
    let (_, _, first) =
        all.iter().find(|(p, d, _)| *p == 50201 && *d == "client_to_server").unwrap();
    assert_eq!(first["room"]["sender"], 1);
    assert_eq!(first["room"]["private"], false);
    let forms: Vec<(u64, &str)> = first["room"]["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_u64().unwrap(), c["form"].as_str().unwrap()))
        .collect();
    assert_eq!(forms, [(0, "ciphertext"), (2, "ciphertext"), (3, "ciphertext")]);
    assert!(all.iter().all(|(_, _, f)| f["plaintext"].is_null() && f["not_decrypted"].is_null()));

    // bob's key: exactly the copies addressed to bob open, on alice's leg and on his.
    let report = analyze_json(&room.file, &["--key", key(2)]);
    for (port, dir, f) in room_messages(&report) {
        let to_bob = f["room"]["recipients"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == 2 && c["form"] == "ciphertext");
        if to_bob {
            let text = f["plaintext"].as_str().unwrap();
            assert!(text == PUBLIC_TEXT || text == PRIVATE_TEXT, "{port} {dir}: {text}");
        } else {
            assert!(f["plaintext"].is_null(), "{port} {dir}: {f}");
            let why = f["not_decrypted"].as_str().unwrap();
            // On carol's leg bob's copy is a digest.
            assert_eq!(port, 50203, "{why}");
            assert!(
                why.starts_with(&format!(
                    "only a digest of this key's copy, the one for member 2 (bob, {}), travels",
                    fp(2)
                )),
                "{why}"
            );
        }
    }
    let opened: Vec<&str> =
        room_messages(&report).iter().filter_map(|(_, _, f)| f["plaintext"].as_str()).collect();
    assert_eq!(opened, [PUBLIC_TEXT, PRIVATE_TEXT, PUBLIC_TEXT, PRIVATE_TEXT]);

    // The host's key: its copies of the public message, never the private one.
    let report = analyze_json(&room.file, &["--key", key(0)]);
    let msgs = room_messages(&report);
    let opened: Vec<(u64, &str)> =
        msgs.iter().filter_map(|(p, _, f)| f["plaintext"].as_str().map(|t| (*p, t))).collect();
    assert_eq!(opened, [(50201, PUBLIC_TEXT)], "only on alice's leg does its copy travel in full");
    let to_bob = format!("a private message sent to member 2 (bob, {}): not to this key", fp(2));
    let privates: Vec<&str> = msgs
        .iter()
        .filter(|(_, _, f)| f["room"]["private"] == true)
        .map(|(_, _, f)| f["not_decrypted"].as_str().unwrap())
        .collect();
    assert_eq!(privates, [to_bob.as_str(), to_bob.as_str()]);
    let relayed: Vec<&str> = msgs
        .iter()
        .filter(|(_, d, f)| *d == "server_to_client" && f["room"]["private"] == false)
        .map(|(_, _, f)| f["not_decrypted"].as_str().unwrap())
        .collect();
    assert_eq!(relayed.len(), 2);
    for why in relayed {
        let host = format!("the one for the host, member 0 (teacher, {}), travels", fp(0));
        assert!(why.contains(&host), "{why}");
    }

    // The human report, with and without bob's key.
    let out = rchat(&["analyze", "--color", "never", room.file.to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("HELLO from \"teacher\" with a 2048-bit RSA public key"), "{text}");
    assert!(text.contains("; mode 2: the host of a room"), "{text}");
    assert!(text.contains(&format!("rchat room: id {room_id}")), "{text}");
    assert!(text.contains("ROSTER #0: "), "{text}");
    assert!(text.contains(&format!("member 2 \"bob\", 2048-bit key {}", fp(2))), "{text}");
    assert!(text.contains("JOINED #1: member 3 \"carol\""), "{text}");
    assert!(text.contains("LEFT #"), "{text}");
    assert!(text.contains("ROOM MESSAGE #1 from member 1 \"alice\", private: "), "{text}");
    assert!(text.contains("member 0 \"teacher\" (digest)"), "{text}");
    assert!(!text.contains("4711"), "no key, no plaintext: {text}");
    let out = rchat(&["analyze", "--color", "never", room.file.to_str().unwrap(), "--key", key(2)]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(&format!("decrypted \"{PRIVATE_TEXT}\"")), "{text}");
    assert!(text.contains("with the given key: 2 message(s) decrypted, 0 not"), "{text}");
    assert!(text.contains("with the given key: 0 message(s) decrypted, 1 not"), "{text}");
    // The page says the same, HTML-escaped.
    let out = rchat(&["analyze", "--html", "-", room.file.to_str().unwrap(), "--key", key(2)]);
    let page = String::from_utf8(out.stdout).unwrap();
    let line = "<li>ROOM MESSAGE #1 from member 1 &quot;alice&quot;, private: ";
    assert!(page.contains(line), "{page}");
    assert!(page.contains(&format!("decrypted &quot;{PRIVATE_TEXT}&quot;")), "{page}");
}
