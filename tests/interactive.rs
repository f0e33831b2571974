//! The chat as a person sees it: the real binary in a terminal (tmux), a peer's messages
//! arriving while a line is half typed, timestamps, and `/quit`; and `rchat analyze`'s
//! histogram sketch, drawn on a terminal. Skips without tmux.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::{BIN, Proc, have_tool, scratch};
use tempfile::TempDir;

/// A tmux server of our own, so tests never touch a user's sessions; its socket lives in a
/// scratch folder, removed with the value.
struct Tmux {
    socket: PathBuf,
    _dir: TempDir,
}

impl Tmux {
    fn start(tag: &str, command: &str) -> Tmux {
        let dir = scratch(&format!("interactive-{tag}"));
        let t = Tmux { socket: dir.path().join("tmux.sock"), _dir: dir };
        let status = Command::new("tmux")
            .arg("-S")
            .arg(&t.socket)
            .args(["new-session", "-d", "-s", "t", "-x", "160", "-y", "40"])
            .arg(format!("{command}; echo EXIT=$?; sleep 30"))
            .status()
            .unwrap();
        assert!(status.success());
        t
    }

    fn keys(&self, keys: &[&str]) {
        let status = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(["send-keys", "-t", "t"])
            .args(keys)
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(["capture-pane", "-p", "-t", "t"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Wait for the host on screen to listen, and read its port.
    fn host_port(&self) -> u16 {
        let screen = self.wait_for(|s| s.contains("waiting for a peer"), 60);
        screen
            .lines()
            .find_map(|l| l.strip_prefix("listening on port "))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .expect("port on screen")
    }

    fn wait_for(&self, pred: impl Fn(&str) -> bool, secs: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("screen never matched; it shows:\n{s}");
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux").arg("-S").arg(&self.socket).arg("kill-server").status();
    }
}

fn last_line(screen: &str) -> &str {
    screen.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("")
}

#[test]
fn incoming_messages_do_not_garble_the_line_being_typed() {
    if !have_tool("tmux") {
        return;
    }
    let tmux = Tmux::start("typing", &format!("{BIN} host --bind 127.0.0.1 --port 0 --name alice"));
    let port = tmux.host_port();

    tmux.keys(&["half typed"]);
    let target = format!("127.0.0.1:{port}");
    let mut bob = Proc::spawn(&["join", &target, "--name", "bob"]);
    bob.send(&["hello alice", "second line"]);

    let screen = tmux.wait_for(|s| s.contains("bob: second line"), 60);
    // Each message has its own stamped line, and the half-typed line is intact below them.
    let stamped = screen.lines().filter(|l| l.starts_with('[') && l.contains("] bob: ")).count();
    assert_eq!(stamped, 2, "{screen}");
    assert!(screen.contains("bob's fingerprint: SHA256:"), "{screen}");
    assert_eq!(last_line(&screen), "alice> half typed", "{screen}");

    tmux.keys(&[" and finished", "Enter"]);
    bob.wait_out_lines(1, 30);
    assert_eq!(bob.out, ["half typed and finished"]);
    let screen = tmux.wait_for(|s| s.contains("] alice: half typed and finished"), 30);
    assert!(!screen.contains("alice> half typed and finished"), "echo replaced: {screen}");

    tmux.keys(&["/quit", "Enter"]);
    bob.wait_err(|l| l == "alice left", 30);
    bob.close_stdin();
    assert_eq!(bob.finish(30), 0, "{:#?}", bob.err);
    tmux.wait_for(|s| s.contains("EXIT=0"), 30);
}

#[test]
fn when_the_peer_leaves_the_terminal_is_handed_back_on_enter() {
    if !have_tool("tmux") {
        return;
    }
    let tmux = Tmux::start("leave", &format!("{BIN} host --plaintext --bind 127.0.0.1 --port 0"));
    let port = tmux.host_port();
    let target = format!("127.0.0.1:{port}");
    let mut peer = Proc::spawn(&["join", &target, "--plaintext"]);
    peer.send(&["bye now"]);
    peer.close_stdin();
    assert_eq!(peer.finish(30), 0);
    tmux.wait_for(|s| s.contains("press Enter to exit"), 30);
    tmux.keys(&["Enter"]);
    tmux.wait_for(|s| s.contains("EXIT=0"), 30);
}

/// On a terminal, `rchat analyze` sketches each direction's histogram in one line; with
/// NO_COLOR set it does not (unless `--histogram` asks).
#[test]
fn analyze_sketches_the_histograms_on_a_terminal() {
    if !have_tool("tmux") {
        return;
    }
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/captures/chat-plaintext.pcap");
    let tmux = Tmux::start("sketch", &format!("env -u NO_COLOR {BIN} analyze {file}"));
    let screen = tmux.wait_for(|s| s.contains("EXIT=0"), 30);
    let sketches: Vec<&str> = screen.lines().filter(|l| l.contains("bytes 00 ")).collect();
    assert_eq!(sketches.len(), 2, "{screen}");
    assert!(sketches.iter().all(|l| l.contains(" ff (random bytes: all \u{2584})")), "{screen}");
    let tmux = Tmux::start("no-sketch", &format!("NO_COLOR=1 {BIN} analyze {file}"));
    let screen = tmux.wait_for(|s| s.contains("EXIT=0"), 30);
    assert!(!screen.contains("bytes 00 "), "{screen}");
}

#[test]
fn a_room_member_sees_stamped_escaped_lines_above_what_it_types() {
    if !have_tool("tmux") {
        return;
    }
    let weak = ["--bits", "1024", "--allow-weak-keys"];
    let mut args = vec!["--room", "--name", "teacher"];
    args.extend_from_slice(&weak);
    let (mut host, port) = Proc::host(&args);
    let join = format!("{BIN} join 127.0.0.1:{port} --name carol {}", weak.join(" "));
    let tmux = Tmux::start("room", &join);
    tmux.wait_for(|s| s.contains("in the room: teacher"), 60);
    tmux.keys(&["half typed"]);
    // A right-to-left override would make the line read backwards: it shows as an escape.
    host.send(&["look \u{202e}txet"]);
    let screen = tmux.wait_for(|s| s.contains("] teacher: look \\u{202e}txet"), 60);
    assert_eq!(last_line(&screen), "carol> half typed", "{screen}");
    tmux.keys(&[" and sent", "Enter"]);
    host.wait_out(|l| l == "carol: half typed and sent", 30);
    tmux.keys(&["/who", "Enter"]);
    tmux.wait_for(|s| s.contains("carol (you): 1024-bit key SHA256:"), 30);
    tmux.keys(&["/quit", "Enter"]);
    host.wait_err(|l| l.starts_with("carol left"), 30);
    tmux.wait_for(|s| s.contains("EXIT=0"), 30);
    host.close_stdin();
    assert_eq!(host.finish(30), 0, "{:#?}", host.err);
}
