//! The rchat recogniser on the frames of a room of four (the host "teacher" 0, alice 1, bob 2, carol 3, joined in that order),
//! every frame made by the protocol's own code with real keys; each connection's two
//! directions as the wire carries them.

use super::*;
use crate::analyze::recognise::rchat::room::{CopyForm, share_rooms};
use crate::crypto::PeerKey;
use crate::protocol::room_secure::seal;
use crate::protocol::room_wire::{Joined, Left, Member, RoomMessage, Roster};
use crate::protocol::secure::room_hello_frame;
use crate::protocol::wire::{Frame, FrameType};
use proptest::prelude::*;

pub(super) const ROOM: [u8; 32] = [0x5a; 32];
const NAMES: [&str; 4] = ["teacher", "alice", "bob", "carol"];

/// One member's connection: what the host sent it, what it sent the host.
pub(super) struct Leg {
    pub(super) from_host: Vec<u8>,
    pub(super) to_host: Vec<u8>,
}

pub(super) struct Room {
    pub(super) ids: Vec<Arc<Identity>>,
    /// alice's, bob's and carol's connections.
    pub(super) legs: Vec<Leg>,
}

fn member(id: u16, key: &Identity) -> Member {
    Member { id, name: NAMES[usize::from(id)].into(), spki: key.public().spki_der.clone() }
}

fn bytes(frame: Frame) -> Vec<u8> {
    frame.to_bytes()
}

/// alice (1) says "hello room" to everyone, then "bob, the code is 4711" to bob alone;
/// then she leaves.
pub(super) fn room() -> Room {
    let ids: Vec<Arc<Identity>> =
        (0..4).map(|_| Arc::new(Identity::generate(1024).unwrap())).collect();
    let host = &ids[0];
    let keys: Vec<(u16, &PeerKey)> =
        vec![(0, ids[0].public()), (2, ids[2].public()), (3, ids[3].public())];
    let public = seal(&ids[1], &ROOM, 1, 0, false, &keys, "hello room").unwrap();
    let private =
        seal(&ids[1], &ROOM, 1, 1, true, &[(2, ids[2].public())], "bob, the code is 4711").unwrap();
    let mut legs = Vec::new();
    for me in 1..4u16 {
        let key = &ids[usize::from(me)];
        let hh = bytes(room_hello_frame(host, "teacher"));
        let jh = bytes(hello_frame(key, NAMES[usize::from(me)]));
        let hs = Session::new(
            host.clone(),
            key.public().clone(),
            NAMES[usize::from(me)].into(),
            Role::Host,
            &hh,
            &jh,
        );
        let js = Session::new(
            key.clone(),
            host.public().clone(),
            "teacher".into(),
            Role::Joiner,
            &hh,
            &jh,
        );
        let mut from_host = hh.clone();
        from_host.extend(bytes(hs.auth().unwrap().to_frame()));
        let mut to_host = jh.clone();
        to_host.extend(bytes(js.auth().unwrap().to_frame()));
        let (mut hseal, _) = hs.split();
        let (mut jseal, _) = js.split();
        let mut roster = Roster {
            seq: 0,
            room_id: ROOM,
            you: me,
            your_name: NAMES[usize::from(me)].into(),
            members: (0..=me).map(|id| member(id, &ids[usize::from(id)])).collect(),
            signature: vec![],
        };
        let (seq, signature) = hseal.notice(FrameType::Roster, &roster.fields()).unwrap();
        (roster.seq, roster.signature) = (seq, signature);
        from_host.extend(bytes(roster.to_frame()));
        for id in me + 1..4 {
            let mut joined =
                Joined { seq: 0, member: member(id, &ids[usize::from(id)]), signature: vec![] };
            let (seq, signature) = hseal.notice(FrameType::Joined, &joined.fields()).unwrap();
            (joined.seq, joined.signature) = (seq, signature);
            from_host.extend(bytes(joined.to_frame()));
        }
        if me == 1 {
            to_host.extend(bytes(public.to_frame()));
            to_host.extend(bytes(private.to_frame()));
        } else {
            from_host.extend(bytes(public.for_recipient(me).to_frame()));
            if me == 2 {
                from_host.extend(bytes(private.for_recipient(me).to_frame()));
            }
            let mut left = Left { seq: 0, id: 1, reason: "left".into(), signature: vec![] };
            let (seq, signature) = hseal.notice(FrameType::Left, &left.fields()).unwrap();
            (left.seq, left.signature) = (seq, signature);
            from_host.extend(bytes(left.to_frame()));
        }
        from_host.extend(bytes(hseal.bye().unwrap().to_frame()));
        to_host.extend(bytes(jseal.bye().unwrap().to_frame()));
        legs.push(Leg { from_host, to_host });
    }
    Room { ids, legs }
}

fn read(keys: &[&Arc<Identity>], bytes: &[u8], piece: usize) -> RchatReport {
    let keys = keys.iter().map(|k| (*k).clone()).collect();
    crate::analyze::recognise::testing::read_all(FrameLog::new(keys), bytes, piece).unwrap()
}

fn room_messages(r: &RchatReport) -> Vec<&FrameReport> {
    r.frames.iter().filter(|f| f.kind == "ROOM MESSAGE").collect()
}

#[test]
fn room_frames_are_listed_as_an_eavesdropper_reads_them() {
    let room = room();
    let fp = |i: usize| room.ids[i].public().fingerprint.to_string();
    for piece in [1, 4096] {
        let r = read(&[], &room.legs[1].from_host, piece);
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        let hello = r.hello.as_ref().unwrap();
        assert_eq!((hello.name.as_str(), hello.mode), ("teacher", MODE_ROOM));
        let kinds: Vec<&str> = r.frames.iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            ["HELLO", "AUTH", "ROSTER", "JOINED", "ROOM MESSAGE", "ROOM MESSAGE", "LEFT", "BYE"]
        );
        let roster = r.frames[2].room.as_deref().unwrap();
        assert_eq!(roster.room_id.as_deref(), Some(hex::encode(ROOM).as_str()));
        assert_eq!((roster.member_id, roster.member_name.as_deref()), (Some(2), Some("bob")));
        let listed: Vec<(u16, &str, Option<usize>, String)> = roster
            .members
            .iter()
            .map(|m| (m.id, m.name.as_str(), m.key_bits, m.fingerprint.clone()))
            .collect();
        assert_eq!(
            listed,
            (0..3).map(|i| (i as u16, NAMES[i], Some(1024), fp(i))).collect::<Vec<_>>()
        );
        assert_eq!(r.frames[2].seq, Some(0));
        assert_eq!(r.frames[3].seq, Some(1));
        let joined = r.frames[3].room.as_deref().unwrap();
        assert_eq!(joined.members[0].name, "carol");
        assert_eq!(joined.members[0].fingerprint, fp(3));
        let [public, private] = room_messages(&r)[..] else { panic!() };
        let p = public.room.as_deref().unwrap();
        assert_eq!((p.sender, public.seq, p.private), (Some(1), Some(0), Some(false)));
        let forms: Vec<(u16, CopyForm, Option<usize>, Option<u16>)> =
            p.recipients.iter().map(|c| (c.id, c.form, c.blocks, c.block_len)).collect();
        assert_eq!(
            forms,
            [
                (0, CopyForm::Digest, None, None),
                (2, CopyForm::Ciphertext, Some(1), Some(128)),
                (3, CopyForm::Digest, None, None)
            ]
        );
        assert_eq!(public.signature_len, Some(128));
        assert!(public.plaintext.is_none() && public.not_decrypted.is_none());
        let q = private.room.as_deref().unwrap();
        assert_eq!((q.private, private.seq, q.recipients.len()), (Some(true), Some(1), 1));
        let left = r.frames[6].room.as_deref().unwrap();
        assert_eq!((left.member_id, left.reason.as_deref()), (Some(1), Some("left")));
        assert_eq!(r.frames[6].seq, Some(2));
        assert_eq!(r.frames[7].seq, Some(3), "the BYE follows the host's notices");
        let table = r.room.as_ref().unwrap();
        assert_eq!(table.members.iter().map(|m| m.id).collect::<Vec<_>>(), [0, 1, 2, 3]);
        assert_eq!(table.member_id, Some(2));
        // The member's own leg: its HELLO is not a host's, its messages are in full.
        let r = read(&[], &room.legs[0].to_host, piece);
        assert!(r.violations.is_empty(), "{:?}", r.violations);
        assert_eq!(r.hello.as_ref().unwrap().mode, 1);
        let sent = room_messages(&r);
        assert!(
            sent[0]
                .room
                .as_deref()
                .unwrap()
                .recipients
                .iter()
                .all(|c| c.form == CopyForm::Ciphertext)
        );
        assert_eq!(r.room.as_ref().unwrap().room_id, None);
    }
}

#[test]
fn a_members_key_opens_exactly_the_messages_addressed_to_it() {
    let room = room();
    let bob = &room.ids[2];
    let carol = &room.ids[3];
    for piece in [1, 4096] {
        // bob's key on the host's leg to bob, and on alice's leg to the host.
        for bytes in [&room.legs[1].from_host, &room.legs[0].to_host] {
            let r = read(&[bob], bytes, piece);
            let texts: Vec<Option<&str>> =
                room_messages(&r).iter().map(|f| f.plaintext.as_deref()).collect();
            assert_eq!(texts, [Some("hello room"), Some("bob, the code is 4711")]);
            assert_eq!((r.decrypted, r.not_decrypted), (2, 0));
        }
        // carol's: the public message on her own leg and alice's; not bob's private one.
        let r = read(&[carol], &room.legs[2].from_host, piece);
        assert_eq!(room_messages(&r)[0].plaintext.as_deref(), Some("hello room"));
        let r = read(&[carol], &room.legs[0].to_host, piece);
        let [public, private] = room_messages(&r)[..] else { panic!() };
        assert_eq!(public.plaintext.as_deref(), Some("hello room"));
        let why = private.not_decrypted.as_deref().unwrap();
        assert_eq!(why, "a private message sent to member 2: not to this key");
        // On bob's leg, carol's copy of the public message is only a digest, and the
        // private one is bob's: both said with the names the ROSTER gave.
        let r = read(&[carol], &room.legs[1].from_host, piece);
        let [public, private] = room_messages(&r)[..] else { panic!() };
        let why = public.not_decrypted.as_deref().unwrap();
        assert!(
            why.starts_with(&format!(
                "only a digest of this key's copy, the one for member 3 (carol, {}), \
                 travels on this connection: the relay sent the copy itself to its \
                 recipient",
                carol.public().fingerprint
            )),
            "{why}"
        );
        let why = private.not_decrypted.as_deref().unwrap();
        assert_eq!(
            why,
            format!(
                "a private message sent to member 2 (bob, {}): not to this key",
                bob.public().fingerprint
            )
        );
        assert_eq!((r.decrypted, r.not_decrypted), (0, 2));
    }
}

#[test]
fn the_hosts_key_opens_its_copies_and_never_a_private_message() {
    let room = room();
    let (host, alice) = (&room.ids[0], &room.ids[1]);
    for piece in [1, 4096] {
        let r = read(&[host], &room.legs[0].to_host, piece);
        let [public, private] = room_messages(&r)[..] else { panic!() };
        assert_eq!(public.plaintext.as_deref(), Some("hello room"));
        assert!(private.plaintext.is_none());
        assert!(private.not_decrypted.as_deref().unwrap().contains("sent to member 2"));
        // On bob's leg the host's copy is a digest: it came in full on alice's.
        let r = read(&[host], &room.legs[1].from_host, piece);
        let [public, private] = room_messages(&r)[..] else { panic!() };
        let why = public.not_decrypted.as_deref().unwrap();
        assert!(
            why.starts_with(
                "only a digest of this key's copy, the one for the host, member 0 (teacher, SHA256:"
            ),
            "{why}"
        );
        assert!(why.ends_with("went to the host on its sender's connection"), "{why}");
        assert!(private.not_decrypted.as_deref().unwrap().contains("(bob, SHA256:"));
        // The sender's own key: its messages are for others.
        let r = read(&[alice], &room.legs[0].to_host, piece);
        let why = room_messages(&r)[0].not_decrypted.as_deref().unwrap();
        assert!(why.starts_with("sent by member 1, the owner of the given key"), "{why}");
        // Several keys: the one that opens wins; else the most telling reason.
        let r = read(&[alice, host], &room.legs[0].to_host, piece);
        let [public, private] = room_messages(&r)[..] else { panic!() };
        assert_eq!(public.plaintext.as_deref(), Some("hello room"));
        assert!(private.not_decrypted.as_deref().unwrap().starts_with("sent by member 1"));
    }
}

#[test]
fn a_key_outside_the_room_is_told_without_trying_it() {
    let room = room();
    let stranger = Arc::new(Identity::generate(1024).unwrap());
    let r = read(&[&stranger], &room.legs[1].from_host, 4096);
    let why = room_messages(&r)[0].not_decrypted.as_deref().unwrap();
    let fp = |i: usize| room.ids[i].public().fingerprint.to_string();
    assert_eq!(
        why,
        format!(
            "sent to member 0 (teacher, {}), member 2 (bob, {}) and member 3 (carol, {}): \
             not to this key",
            fp(0),
            fp(2),
            fp(3)
        )
    );
    let r = read(&[&stranger, &room.ids[3]], &room.legs[0].to_host, 4096);
    let why = room_messages(&r)[1].not_decrypted.as_deref().unwrap();
    assert!(why.ends_with("not to any of the given keys"), "{why}");
}

#[test]
fn the_capture_names_the_members_on_every_connection() {
    let room = room();
    let host = &room.ids[0];
    let mut c2s = read(&[host], &room.legs[0].to_host, 4096);
    let mut s2c = read(&[host], &room.legs[0].from_host, 4096);
    let mut bob_c2s = read(&[host], &room.legs[1].to_host, 4096);
    let mut bob_s2c = read(&[host], &room.legs[1].from_host, 4096);
    assert!(c2s.room.as_ref().unwrap().members.is_empty());
    share_rooms(&mut [[Some(&mut c2s), Some(&mut s2c)], [Some(&mut bob_c2s), Some(&mut bob_s2c)]]);
    let table = c2s.room.as_ref().unwrap();
    assert_eq!(table.room_id.as_deref(), Some(hex::encode(ROOM).as_str()));
    assert_eq!(table.members.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), NAMES);
    let why = room_messages(&c2s)[1].not_decrypted.as_deref().unwrap();
    assert_eq!(
        why,
        format!(
            "a private message sent to member 2 (bob, {}): not to this key",
            room.ids[2].public().fingerprint
        )
    );
    assert!(c2s.notes.is_empty(), "{:?}", c2s.notes);
}

#[test]
fn a_relay_handing_out_another_key_is_noticed_across_connections() {
    let room = room();
    let mut alice = read(&[], &room.legs[0].from_host, 4096);
    // The ROSTER to carol names bob with another key.
    let mut forged = room.legs[2].from_host.clone();
    let bob_spki = &room.ids[2].public().spki_der;
    let at = forged.windows(bob_spki.len()).position(|w| w == &bob_spki[..]).unwrap();
    forged[at + bob_spki.len() - 5] ^= 1;
    let mut carol = read(&[], &forged, 4096);
    share_rooms(&mut [[None, Some(&mut alice)], [None, Some(&mut carol)]]);
    let notes = [&alice.notes[..], &carol.notes[..]].concat();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].starts_with("member 2 (\"bob\") is named with key"), "{notes:?}");
}

#[test]
fn names_from_the_capture_are_escaped_in_every_sentence() {
    let ids: Vec<Arc<Identity>> =
        (0..2).map(|_| Arc::new(Identity::generate(1024).unwrap())).collect();
    let evil = "bob\u{1b}[2J\u{202e}";
    let mut from_host = bytes(room_hello_frame(&ids[0], "teacher"));
    let roster = Roster {
        seq: 0,
        room_id: ROOM,
        you: 1,
        your_name: evil.into(),
        members: vec![
            member(0, &ids[0]),
            Member { id: 1, name: evil.into(), spki: ids[1].public().spki_der.clone() },
        ],
        signature: vec![1; 128],
    };
    from_host.extend(bytes(roster.to_frame()));
    let other = Arc::new(Identity::generate(1024).unwrap());
    let msg = seal(&ids[0], &ROOM, 0, 0, true, &[(1, ids[1].public())], "hi").unwrap();
    from_host.extend(bytes(msg.to_frame()));
    let r = read(&[&other], &from_host, 4096);
    let why = room_messages(&r)[0].not_decrypted.as_deref().unwrap();
    assert!(!why.contains('\u{1b}') && !why.contains('\u{202e}'), "{why:?}");
    assert!(why.contains("bob\\u{1b}[2J\\u{202e}"), "{why:?}");
    // The JSON keeps the name as sent, for a program to read.
    assert_eq!(r.room.as_ref().unwrap().members[1].name, evil);
}

#[test]
fn breaks_of_the_rooms_rules_are_reported() {
    let room = room();
    // alice's public message sent twice on her leg: a replay.
    let r = read(&[], &room.legs[0].to_host, 4096);
    let msg = room_messages(&r)[0];
    let (at, len) = (msg.offset as usize, msg.length as usize);
    let mut replayed = room.legs[0].to_host.clone();
    let copy = replayed[at..at + len].to_vec();
    replayed.splice(at + len..at + len, copy.clone());
    let r = read(&[], &replayed, 4096);
    assert!(
        r.violations.iter().any(|v| v.contains("member 1's sequence number 0 after")),
        "{:?}",
        r.violations
    );
    // A relayed message (with digests) on the member's own leg, and a ROSTER from the
    // member's side.
    let mut wrong = room.legs[0].to_host.clone();
    let relayed = RoomMessage::decode(&copy[HEADER_LEN..]).unwrap().for_recipient(2);
    wrong.splice(at..at, bytes(RoomMessage { seq: 9, ..relayed }.to_frame()));
    let r = read(&[], &wrong, 4096);
    assert!(r.violations.iter().any(|v| v.contains("only as a digest")), "{:?}", r.violations);
    let from_host = read(&[], &room.legs[0].from_host, 4096);
    let roster = &from_host.frames[2];
    let (at, len) = (roster.offset as usize, roster.length as usize);
    let mut member_roster = room.legs[0].to_host.clone();
    member_roster.extend_from_slice(&room.legs[0].from_host[at..at + len]);
    let r = read(&[], &member_roster, 4096);
    assert!(
        r.violations.iter().any(|v| v.contains("a ROSTER from a side that is not a room's host")),
        "{:?}",
        r.violations
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// Room frames cut short, garbled or with random bodies never make the recogniser
    /// panic, with or without a key to try.
    #[test]
    fn garbled_room_frames_never_panic(
        leg in 0usize..3,
        to_host in any::<bool>(),
        cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 0..6),
        kind in 6u8..=9,
        body in prop::collection::vec(any::<u8>(), 0..400),
        piece in 1usize..64,
    ) {
        let room = fixture();
        let leg = &room.legs[leg];
        let mut bytes = if to_host { leg.to_host.clone() } else { leg.from_host.clone() };
        for (at, x) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= x;
        }
        bytes.truncate(cut.index(bytes.len() + 1));
        // And a frame of a room's type with a random body.
        bytes.extend_from_slice(b"RCHT\x01");
        bytes.push(kind);
        bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&body);
        for keys in [vec![], vec![room.ids[2].clone()]] {
            let log = FrameLog::new(keys);
            let _ = crate::analyze::recognise::testing::read_all(log, &bytes, piece);
        }
    }
}

/// One room for every case of the property test: keys take long to make.
fn fixture() -> &'static Room {
    static ROOM_FIXTURE: std::sync::OnceLock<Room> = std::sync::OnceLock::new();
    ROOM_FIXTURE.get_or_init(room)
}
