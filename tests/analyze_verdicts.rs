//! Verdicts on the real captures, end to end: capture reading, reassembly, message cutting and
//! the classifier together.

mod common;

use common::capture::*;
use common::scratch;

fn verdict(name: &str, dir: &str) -> (String, serde_json::Value) {
    let r = analyze_json(&data(name), &[]);
    let d = r["streams"][0]["directions"][dir].clone();
    (d["verdict"].as_str().unwrap_or_default().to_string(), d)
}

#[test]
fn verdict_plaintext_chat_is_readable() {
    for dir in ["client_to_server", "server_to_client"] {
        assert_eq!(verdict("chat-plaintext.pcap", dir).0, "plaintext", "{dir}");
    }
    let out = rchat(&["analyze", data("chat-plaintext.pcap").to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1 stream on port 9999: 1 readable by anyone on the path"), "{text}");
}

#[test]
fn verdict_random_bytes_are_ciphertext() {
    let (v, d) = verdict("random-ipv6.pcap", "client_to_server");
    assert_eq!(v, "ciphertext", "{d}");
    assert_eq!(d["confidence"], "high");
}

#[test]
fn verdict_tls_is_not_readable() {
    for dir in ["client_to_server", "server_to_client"] {
        let (v, d) = verdict("tls-openssl.pcapng", dir);
        assert!(v == "ciphertext" || v == "mixed", "{dir}: {d}");
    }
}

#[test]
fn verdict_base64_of_random_is_encoded() {
    let (v, d) = verdict("base64-text.pcap", "client_to_server");
    assert_eq!(v, "encoded", "{d}");
    assert_eq!(d["encoding"], "base64");
}

#[test]
fn verdict_rchat_encrypted_messages_are_ciphertext() {
    for dir in ["client_to_server", "server_to_client"] {
        let (v, d) = verdict("rchat-encrypted.pcap", dir);
        assert_ne!(v, "plaintext", "{dir}: {d}");
        // The third frame is the MESSAGE: RSA ciphertext and a signature.
        assert_eq!(d["messages"][2]["verdict"], "ciphertext", "{dir}: {d}");
    }
}

#[test]
fn verdict_summary_line_counts_streams_by_kind() {
    use pcap_file::Endianness;
    let server = End::new("10.0.0.2", 9999);
    let mut text = Conv::new(End::new("10.0.0.1", 40001), server, 1, 2);
    text.handshake();
    text.c(b"hello, this is a perfectly readable line of chat\n")
        .s(b"and this is the readable answer to it, thanks\n")
        .close();
    let mut x: u64 = 0x1234_5678_9abc_def1;
    let noise: Vec<u8> = (0..2048)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let mut secret = Conv::new(End::new("10.0.0.3", 40002), server, 3, 4);
    secret.handshake();
    secret.c(&noise[..1024]).s(&noise[1024..]).close();
    let mut ips = text.packets.clone();
    ips.extend(secret.packets.clone());
    let dir = scratch("analyze-summary");
    let bytes = pcap_bytes(101, &records(Link::Raw(101), &ips), Endianness::Little, false);
    let file = write(dir.path(), "two.pcap", &bytes);
    let out = rchat(&["analyze", file.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("2 streams on port 9999: 1 readable by anyone on the path, 1 ciphertext"),
        "{stdout}"
    );
}

#[test]
fn verdict_of_a_stream_ignores_a_direction_too_short_to_tell() {
    for name in ["two-interfaces.pcapng", "chat-snaplen96.pcap"] {
        let r = analyze_json(&data(name), &[]);
        let st = &r["streams"][0];
        let verdicts = [
            st["directions"]["client_to_server"]["verdict"].clone(),
            st["directions"]["server_to_client"]["verdict"].clone(),
        ];
        assert!(verdicts.contains(&serde_json::json!("inconclusive")), "{name}: {verdicts:?}");
        assert_eq!(st["verdict"], "plaintext", "{name}");
    }
}
