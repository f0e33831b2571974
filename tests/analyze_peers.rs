//! `rchat analyze` on real captures of other people's programs (`tests/data/peers/`: the
//! program this project grew out of, in both modes and two key sizes, chats built on the
//! `cryptography` package, openssl's TLS 1.2 and 1.3, OpenSSH, an HTTP GET), checked against
//! what the peers themselves logged when the captures were made (`expected.json`): each
//! direction's verdict, its messages and their sizes, the keys sent in the clear (matched with
//! `rchat fingerprint` of the key file the peer saved), the protocol, and raw RSA blocks.

mod common;

use std::path::Path;

use common::capture::*;
use serde_json::Value;

fn peers() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/peers")
}

/// `rchat fingerprint FILE`: the `SHA256:...` it prints first.
fn fingerprint_of(file: &Path) -> String {
    let out = rchat(&["fingerprint", file.to_str().unwrap()]);
    assert!(out.status.success(), "rchat fingerprint {}: {:?}", file.display(), out);
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace().next().unwrap().to_string()
}

/// The fingerprints of the keys recognised in a direction.
fn recognised(d: &Value) -> Vec<String> {
    d["recognized"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["fingerprint"].as_str().map(str::to_string))
        .collect()
}

/// The lengths of a direction's `message` parts.
fn message_sizes(d: &Value) -> Vec<u64> {
    d["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "message")
        .map(|m| m["length"].as_u64().unwrap())
        .collect()
}

#[test]
fn every_peer_capture_says_what_the_peers_sent() {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(peers().join("expected.json")).unwrap())
            .unwrap();
    let mut checked = 0;
    for (name, want) in expected.as_object().unwrap() {
        let port = want["port"].as_u64().unwrap().to_string();
        let r = analyze_json(&peers().join(name), &["--port", &port]);
        assert_eq!(r["schema_version"], 2);
        let streams = r["streams"].as_array().unwrap();
        assert_eq!(streams.len(), 1, "{name}");
        let s = &streams[0];
        assert_eq!(s["verdict"], want["verdict"], "{name}: {}", s["eavesdropper"]);
        for dir in ["client_to_server", "server_to_client"] {
            let w = &want[dir];
            let d = &s["directions"][dir];
            let at = format!("{name} {dir}");
            assert_eq!(d["verdict"], w["verdict"], "{at}: {}", d["reason"]);
            // The messages the sender logged, one by one, when the capture holds them.
            if let Some(sizes) = w["message_sizes"].as_array()
                && want["verdict"] != "inconclusive"
            {
                let sizes: Vec<u64> = sizes.iter().map(|v| v.as_u64().unwrap()).collect();
                assert_eq!(message_sizes(d), sizes, "{at}");
            }
            // Its key, sent in the clear: found, with the fingerprint of the file it saved.
            let key = &w["key"];
            if key.is_object() && want["verdict"] != "inconclusive" {
                let found = recognised(d);
                let fp = key["fingerprint"].as_str().unwrap().to_string();
                if let Some(pem) = key["pem_file"].as_str().filter(|p| !p.starts_with("tls")) {
                    assert_eq!(fingerprint_of(&peers().join(pem)), fp, "{at}: {pem}");
                }
                let in_clear = key["in_clear"].as_bool().unwrap();
                assert_eq!(found.contains(&fp), in_clear, "{at}: {found:?}, want {fp}");
                let k = &d["recognized"][0];
                if in_clear {
                    assert_eq!(k["bits"], key["bits"], "{at}");
                    assert_eq!(k["algorithm"], "RSA", "{at}");
                }
            } else {
                assert!(recognised(d).is_empty(), "{at}: no key was sent");
            }
            // The protocol, named.
            let protocol = match name.split(['-', '.']).next().unwrap() {
                "tls12" | "tls13" => Some("tls"),
                "ssh" => Some("ssh"),
                "http" => Some("http"),
                "oaep" => Some("length-prefix"),
                _ => None,
            };
            assert_eq!(d["protocol"]["name"].as_str(), protocol, "{at}");
            if let Some(banner) = w["banner"].as_str() {
                assert_eq!(d["protocol"]["ssh"]["banner"], banner, "{at}");
            }
            if let Some(host_key) = w["host_key"].as_str() {
                assert_eq!(d["protocol"]["ssh"]["host_key"], host_key, "{at}");
            }
            if let Some(requests) = w["requests"].as_array() {
                assert_eq!(&d["protocol"]["http"]["requests"], &Value::Array(requests.clone()));
            }
            if name.starts_with("tls") {
                let tls = &d["protocol"]["tls"];
                let version = if name.starts_with("tls12") { "TLS 1.2" } else { "TLS 1.3" };
                assert_eq!(tls["version"], version, "{at}");
                if dir == "client_to_server" {
                    assert_eq!(tls["sni"], "localhost", "{at}");
                }
                assert!(tls["application_records"].as_u64().unwrap() >= 2, "{at}");
            }
            checked += 1;
        }
        // Raw RSA: the original program's messages are each one block to the other side's key.
        let raw = name.starts_with("original-rsa");
        for (dir, other) in
            [("client_to_server", "server_to_client"), ("server_to_client", "client_to_server")]
        {
            let d = &s["directions"][dir];
            assert_eq!(d["raw_rsa"].is_object(), raw, "{name} {dir}: {}", d["raw_rsa"]);
            if raw {
                let bits = want[dir]["key"]["bits"].as_u64().unwrap();
                assert_eq!(d["raw_rsa"]["block_bytes"].as_u64(), Some(bits / 8));
                assert_eq!(d["raw_rsa"]["key_fingerprint"], want[other]["key"]["fingerprint"]);
                let n = want[dir]["messages"].as_u64();
                assert_eq!(d["raw_rsa"]["messages"].as_u64(), n, "{name} {dir}");
            }
        }
    }
    assert_eq!(checked, 2 * expected.as_object().unwrap().len());
}

#[test]
fn the_human_report_names_keys_and_protocol_before_the_verdict() {
    let out = rchat(&[
        "analyze",
        "--color",
        "never",
        peers().join("original-rsa-1024.pcap").to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let key = text.find("    key: 1024-bit RSA public key (PEM RSA PUBLIC KEY").expect(&text);
    let verdict = text.find("    messages: ciphertext").expect(&text);
    assert!(key < verdict, "{text}");
    assert!(text.contains("    raw RSA: each message is one 128-byte RSA block"), "{text}");
    assert!(
        text.contains(
            "  an eavesdropper: encrypted: the text is hidden; each message is one 128-byte RSA \
             block (raw RSA to the recipient's key sent at the start); still visible: two \
             1024-bit RSA public keys, 5 messages of 128 bytes and their times"
        ),
        "{text}"
    );
    let out = rchat(&[
        "analyze",
        "--color",
        "never",
        peers().join("original-plain-1024.pcap").to_str().unwrap(),
    ]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(
            "  an eavesdropper: readable by anyone on the path: the messages are plain text; two \
             1024-bit RSA public keys exchanged in the clear"
        ),
        "{text}"
    );
}
