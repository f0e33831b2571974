//! The shipped captures are what `captures/README.md` says they are: each file listed exists
//! with the sha256 given, every `rchat analyze` output shown there is still true, and
//! `rchat analyze --json` gives each stream the verdict the README shows in brackets; every
//! key in `captures/keys/` has the fingerprint listed. The captures of the original program
//! show its keys and one RSA block per message. The script that makes them,
//! `make-captures.sh`, stops at once where tcpdump cannot capture.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::BIN;

fn captures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("captures")
}

fn readme() -> String {
    fs::read_to_string(captures_dir().join("README.md")).expect("captures/README.md")
}

/// One row of the README's table of captures.
#[derive(Debug)]
struct Listed {
    file: String,
    link_type: String,
    sha256: String,
}

/// The README's table: rows whose first cell is a file name in backquotes, whose second is
/// the link type and whose last is a 64-digit hex string in backquotes.
fn listed_files(readme: &str) -> Vec<Listed> {
    let mut out = vec![];
    for line in readme.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).filter(|c| !c.is_empty()).collect();
        let (Some(first), Some(last)) = (cells.first(), cells.last()) else { continue };
        let file = first.trim_matches('`');
        let hash = last.trim_matches('`');
        if cells.len() >= 3 && hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            out.push(Listed {
                file: file.to_string(),
                link_type: cells[1].to_string(),
                sha256: hash.to_lowercase(),
            });
        }
    }
    out
}

/// Each shown analysis: the arguments after `$ rchat` and the lines shown under it.
fn shown_analyses(readme: &str) -> Vec<(Vec<String>, Vec<String>)> {
    let mut out = vec![];
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if line.trim() != "```text" {
            continue;
        }
        let Some(command) = lines.next() else { break };
        let Some(args) = command.strip_prefix("$ rchat ") else { continue };
        let shown: Vec<String> = lines
            .by_ref()
            .take_while(|l| l.trim() != "```")
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        out.push((args.split_whitespace().map(String::from).collect(), shown));
    }
    out
}

fn run_rchat(args: &[String]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(captures_dir())
        .env("NO_COLOR", "1")
        .output()
        .expect("run rchat");
    assert!(
        out.status.success(),
        "rchat {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

#[test]
fn every_listed_capture_exists_with_its_sha256() {
    let files = listed_files(&readme());
    assert_eq!(files.len(), 6, "expected six captures in the README table: {files:?}");
    for Listed { file, link_type, sha256 } in files {
        let bytes = fs::read(captures_dir().join(&file))
            .unwrap_or_else(|e| panic!("captures/{file} is listed but cannot be read: {e}"));
        let actual = common::capture::sha256(&bytes);
        assert_eq!(actual, sha256, "sha256 of captures/{file} differs from the README");
        assert!(bytes.len() < 32 * 1024, "captures/{file} should stay small");

        let args = ["analyze".to_string(), "--json".into(), file.clone()];
        let report: serde_json::Value = serde_json::from_str(&run_rchat(&args)).unwrap();
        let links: Vec<&str> =
            report["link_types"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
        assert_eq!(links, [link_type.to_uppercase()], "link type of captures/{file}");
    }
}

/// The private keys of rchat's encrypted captures and the public keys of the original
/// program's: each file in `captures/keys/` has a row `| NAME | `FINGERPRINT` |` (NAME the file
/// name without `.pem`) in the README.
#[test]
fn every_shipped_key_has_its_fingerprint_listed() {
    let mut names = vec![];
    for key in common::files_under(&captures_dir().join("keys")) {
        let name = key.file_stem().unwrap().to_string_lossy().to_string();
        let out = run_rchat(&["fingerprint".into(), key.display().to_string()]);
        let fp = out.split_whitespace().next().unwrap_or_default();
        assert!(readme().contains(&format!("| {name} | `{fp}` |")), "fingerprint of {name}: {out}");
        names.push(name);
    }
    for name in ["alice", "bob"].into_iter().chain(ORIGINAL_KEYS) {
        assert!(names.iter().any(|n| n == name), "captures/keys/{name}.pem is missing");
    }
}

#[test]
fn analyze_says_what_the_readme_shows() {
    let analyses = shown_analyses(&readme());
    assert!(analyses.len() >= 7, "expected an analysis per capture, found {}", analyses.len());
    for (args, shown) in analyses {
        assert_eq!(args.first().map(String::as_str), Some("analyze"), "{args:?}");
        let mut full = args.clone();
        full.extend(["--color".into(), "never".into()]);
        let real = run_rchat(&full);
        let real_lines: Vec<&str> = real.lines().map(str::trim).collect();
        for line in &shown {
            assert!(
                real_lines.contains(&line.as_str()),
                "`rchat {}` no longer prints {line:?}; it prints:\n{real}",
                args.join(" ")
            );
        }

        // The bracketed verdict of each stream line shown, against the JSON report.
        let claimed: Vec<(u64, String)> = shown
            .iter()
            .filter_map(|l| {
                let rest = l.strip_prefix("stream ")?;
                let (id, _) = rest.split_once(':')?;
                let verdict = l.rsplit_once('[')?.1.strip_suffix(']')?;
                Some((id.parse().ok()?, verdict.to_string()))
            })
            .collect();
        assert!(!claimed.is_empty(), "no stream line shown for `rchat {}`", args.join(" "));
        let mut json_args = args.clone();
        json_args.push("--json".into());
        let report: serde_json::Value =
            serde_json::from_str(&run_rchat(&json_args)).expect("one JSON document");
        let streams = report["streams"].as_array().expect("streams");
        for (id, verdict) in claimed {
            let stream = streams
                .iter()
                .find(|s| s["id"].as_u64() == Some(id))
                .unwrap_or_else(|| panic!("no stream {id} in the JSON report"));
            assert_eq!(stream["verdict"].as_str(), Some(verdict.as_str()), "stream {id}");
        }
    }
}

#[test]
fn the_plaintext_captures_read_and_the_encrypted_ones_do_not() {
    let file = |name: &str| vec!["analyze".to_string(), "--json".into(), name.into()];
    let verdicts = |name: &str| -> Vec<String> {
        let report: serde_json::Value = serde_json::from_str(&run_rchat(&file(name))).unwrap();
        report["streams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["verdict"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(verdicts("chat-plaintext.pcap"), ["plaintext"]);
    assert_eq!(verdicts("chat-encrypted.pcapng"), ["ciphertext"]);
    assert_eq!(verdicts("chat-any-interface.pcap"), ["ciphertext"]);

    // The secret is in the plaintext capture's bytes and not in the encrypted one's.
    let secret = b"marmalade";
    let has = |name: &str| {
        let bytes = fs::read(captures_dir().join(name)).unwrap();
        bytes.windows(secret.len()).any(|w| w == secret)
    };
    assert!(has("chat-plaintext.pcap"));
    assert!(!has("chat-encrypted.pcapng"));
    assert_eq!(verdicts("original-plaintext.pcap"), ["plaintext"]);
    assert_eq!(verdicts("original-encrypted.pcap"), ["ciphertext"]);
    assert!(has("original-plaintext.pcap"));
    assert!(!has("original-encrypted.pcap"));
}

/// The public keys of the original program's captures, in `captures/keys/`.
const ORIGINAL_KEYS: [&str; 4] = [
    "original-plaintext-alice",
    "original-plaintext-bob",
    "original-encrypted-alice",
    "original-encrypted-bob",
];

/// What Lab 1 and Lab 5 show of the original program: analyze names each side's key, a
/// 1024-bit RSA public key in PEM with the fingerprint of the key shipped for that side (Alice
/// hosts, so she is the server), and in encrypted mode finds every message to be one 128-byte
/// RSA block to the other side's key: 2 from Bob, 3 from Alice.
#[test]
fn the_original_program_shows_its_keys_and_one_rsa_block_per_message() {
    let fingerprint = |name: &str| {
        let key = captures_dir().join("keys").join(format!("{name}.pem"));
        let out = run_rchat(&["fingerprint".into(), key.display().to_string()]);
        out.split_whitespace().next().unwrap_or_default().to_string()
    };
    for mode in ["plaintext", "encrypted"] {
        let file = format!("original-{mode}.pcap");
        let args = ["analyze".to_string(), "--json".into(), file.clone()];
        let report: serde_json::Value = serde_json::from_str(&run_rchat(&args)).unwrap();
        let streams = report["streams"].as_array().unwrap();
        assert_eq!(streams.len(), 1, "{file}: one conversation");
        let dirs = &streams[0]["directions"];
        for (dir, sender, recipient, messages) in
            [("client_to_server", "bob", "alice", 2), ("server_to_client", "alice", "bob", 3)]
        {
            let d = &dirs[dir];
            let keys = d["recognized"].as_array().unwrap();
            assert_eq!(keys.len(), 1, "{file} {dir}: one key: {keys:?}");
            assert_eq!(keys[0]["format"], "PEM RSA PUBLIC KEY", "{file} {dir}");
            assert_eq!(keys[0]["bits"], 1024, "{file} {dir}");
            assert_eq!(keys[0]["fingerprint"], fingerprint(&format!("original-{mode}-{sender}")));
            let kinds: Vec<&str> = d["messages"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|m| m["kind"].as_str())
                .collect();
            assert_eq!(kinds.iter().filter(|k| **k == "message").count(), messages, "{file} {dir}");
            let raw = &d["raw_rsa"];
            if mode == "plaintext" {
                assert!(raw.is_null(), "{file} {dir}: no RSA blocks in plaintext mode: {raw}");
                continue;
            }
            assert_eq!(raw["block_bytes"], 128, "{file} {dir}");
            assert_eq!(raw["messages"], messages, "{file} {dir}");
            assert_eq!(raw["key_bits"], 1024, "{file} {dir}");
            let to = fingerprint(&format!("original-{mode}-{recipient}"));
            assert_eq!(raw["key_fingerprint"], to, "{file} {dir}: encrypted to the recipient");
        }
    }
}

/// `captures/make-captures.sh`, run as a copy in a scratch folder with stand-ins for tcpdump
/// and cargo first in PATH.
#[cfg(unix)]
mod make_captures {
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    use tempfile::TempDir;

    use super::*;
    use common::{have_tool, output_within, scratch};

    /// Every file under `dir`, by path relative to it, with its sha256.
    fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
        common::files_under(dir)
            .into_iter()
            .map(|path| {
                let hash = common::capture::sha256(&fs::read(&path).unwrap());
                (path.strip_prefix(dir).unwrap().to_path_buf(), hash)
            })
            .collect()
    }

    /// A scratch folder for running a copy of `captures/make-captures.sh`:
    /// `tree/captures/make-captures.sh` (the script finds the project root as its folder's
    /// parent, so it works in `tree/`, never in the real `captures/`), `bin/` for stand-ins put
    /// first in PATH, and `tmp/` for its temporary files.
    struct ScriptCopy {
        dir: TempDir,
    }

    impl ScriptCopy {
        fn new(tag: &str) -> ScriptCopy {
            let dir = scratch(tag);
            for sub in ["tree/captures", "bin", "tmp"] {
                fs::create_dir_all(dir.path().join(sub)).unwrap();
            }
            let script = dir.path().join("tree/captures/make-captures.sh");
            fs::copy(captures_dir().join("make-captures.sh"), script).unwrap();
            ScriptCopy { dir }
        }

        /// A copy whose tcpdump is a stand-in running `tcpdump`, whose cargo notes where it
        /// ran and fails, and whose python3 and ss are stand-ins for those of the original
        /// program's captures; `None` (the test is skipped) if the script's other tools are
        /// missing.
        fn with_tcpdump(tag: &str, tcpdump: &[&str]) -> Option<ScriptCopy> {
            if !script_tools_present() {
                return None;
            }
            let copy = ScriptCopy::new(tag);
            copy.stand_in("tcpdump", tcpdump);
            copy.stand_in("cargo", CARGO_TRIPWIRE);
            copy.stand_in("python3", PYTHON_STAND_IN);
            copy.stand_in("ss", &["exit 0"]);
            Some(copy)
        }

        fn path(&self, rel: &str) -> PathBuf {
            self.dir.path().join(rel)
        }

        /// Put an executable sh script named `name`, made of `lines`, in `bin/`.
        fn stand_in(&self, name: &str, lines: &[&str]) {
            use std::os::unix::fs::PermissionsExt;
            let path = self.path("bin").join(name);
            fs::write(&path, format!("#!/bin/sh\n{}\n", lines.join("\n"))).unwrap();
            fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        }

        /// Run the copy with `args`, `bin/` first in PATH (the real tools after it), from the
        /// scratch folder; returns its output and how long it took.
        fn run(&self, args: &[&str]) -> (std::process::Output, Duration) {
            let mut path = vec![self.path("bin")];
            path.extend(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()));
            let mut cmd = Command::new("sh");
            cmd.arg(self.path("tree/captures/make-captures.sh"))
                .args(args)
                .current_dir(self.dir.path())
                .env("PATH", std::env::join_paths(path).unwrap())
                .env("TMPDIR", self.path("tmp"))
                .env_remove("CARGO_TARGET_DIR");
            let start = Instant::now();
            let out = output_within(cmd, 60);
            (out, start.elapsed())
        }

        /// The files in the copy's tree, by path relative to it.
        fn tree(&self) -> Vec<PathBuf> {
            let root = self.path("tree");
            let files = common::files_under(&root);
            files.iter().map(|p| p.strip_prefix(&root).unwrap().to_path_buf()).collect()
        }
    }

    /// The tools the script checks for before anything else, besides tcpdump, cargo, python3
    /// and ss (which these tests replace).
    fn script_tools_present() -> bool {
        ["editcap", "nc", "timeout", "sha256sum"].into_iter().all(have_tool)
    }

    /// A stand-in for cargo that notes where it ran and fails, so the script stops there.
    const CARGO_TRIPWIRE: &[&str] = &[r#"pwd >"$(dirname "$0")/cargo-ran-in""#, "exit 1"];

    /// A stand-in for python3 that has every package (`python3 -c ...` succeeds) and fails to
    /// run any program, saying which.
    const PYTHON_STAND_IN: &[&str] =
        &[r#"[ "$1" = -c ] && exit 0"#, r#"echo "python3 stand-in cannot run $1" >&2"#, "exit 1"];

    /// Without capture rights, tcpdump fails at once with a permission error (a stand-in prints
    /// what the real one prints, so this holds even as root): the script exits 1 with one line
    /// saying what to do, within seconds, before building anything (cargo never runs) or writing
    /// anything (its copy's tree and the real captures/ are as they were).
    #[test]
    fn without_capture_rights_it_stops_before_building() {
        let Some(copy) = ScriptCopy::with_tcpdump(
            "make-captures-denied",
            &[
                r#"echo "$@" >>"$(dirname "$0")/tcpdump-args""#,
                concat!(
                    r#"echo "tcpdump: lo: You don't have permission to perform this capture "#,
                    r#"on that device" >&2"#
                ),
                r#"echo "(socket: Operation not permitted)" >&2"#,
                "exit 1",
            ],
        ) else {
            return;
        };
        let before = snapshot(&captures_dir());

        let (out, took) = copy.run(&[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
        assert_eq!(
            stderr,
            "make-captures: tcpdump cannot capture on loopback here; \
             run as root or give tcpdump CAP_NET_RAW\n"
        );
        assert!(out.stdout.is_empty(), "stdout: {}", String::from_utf8_lossy(&out.stdout));
        assert!(took < Duration::from_secs(10), "the script took {took:?}");
        let probed = fs::read_to_string(copy.path("bin/tcpdump-args")).expect("tcpdump was probed");
        assert!(probed.contains("-i lo"), "probed with {probed:?}");
        assert!(!copy.path("bin/cargo-ran-in").exists(), "cargo ran");
        assert!(!copy.path("tree/target").exists(), "something was built");
        assert_eq!(copy.tree(), [PathBuf::from("captures/make-captures.sh")], "files were written");
        let left: Vec<_> = fs::read_dir(copy.path("tmp")).unwrap().collect();
        assert!(left.is_empty(), "temporary files left behind: {left:?}");
        assert_eq!(snapshot(&captures_dir()), before, "captures/ changed");
    }

    /// What the test above relies on: a copy of the script works in its own tree. With a
    /// tcpdump that can capture, the script goes on to build rchat in the copy's root (where
    /// the stand-in cargo notes it ran, and fails) and leaves the real captures/ alone.
    #[test]
    fn a_copy_works_in_its_own_tree() {
        let Some(copy) = ScriptCopy::with_tcpdump(
            "make-captures-copy",
            &[r#"echo "listening on lo, link-type EN10MB (Ethernet), snapshot length 262144" >&2"#],
        ) else {
            return;
        };
        let before = snapshot(&captures_dir());

        let (out, _) = copy.run(&[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "the failing cargo stops the script: {stderr}");
        let ran_in = fs::read_to_string(copy.path("bin/cargo-ran-in")).expect("cargo ran");
        let ran_in = fs::canonicalize(ran_in.trim()).unwrap();
        assert_eq!(ran_in, fs::canonicalize(copy.path("tree")).unwrap(), "cargo ran elsewhere");
        assert_eq!(copy.tree(), [PathBuf::from("captures/make-captures.sh")]);
        assert_eq!(snapshot(&captures_dir()), before, "captures/ changed");
    }

    /// A capture the script does not make is refused before anything runs: status 2, one line
    /// naming those it makes, tcpdump and cargo never started, nothing written.
    #[test]
    fn an_unknown_capture_is_refused() {
        let copy = ScriptCopy::new("make-captures-unknown");
        copy.stand_in("tcpdump", &[r#"echo "$@" >>"$(dirname "$0")/tcpdump-args""#, "exit 1"]);
        copy.stand_in("cargo", CARGO_TRIPWIRE);

        let (out, _) = copy.run(&["original-plaintext.pcap", "chat.pcap"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
        assert!(
            stderr.starts_with(
                "make-captures: unknown capture chat.pcap (one of: chat-plaintext.pcap "
            ) && stderr.contains(" original-encrypted.pcap)")
                && stderr.lines().count() == 1,
            "stderr: {stderr}"
        );
        assert!(!copy.path("bin/tcpdump-args").exists(), "tcpdump ran");
        assert!(!copy.path("bin/cargo-ran-in").exists(), "cargo ran");
        assert_eq!(copy.tree(), [PathBuf::from("captures/make-captures.sh")], "files were written");
    }

    /// Asked only for the original program's captures, the script builds nothing: it goes
    /// past the capture check without cargo and stops when the program fails (the stand-in
    /// python3 runs none), with the program's error and without waiting for it to listen.
    #[test]
    fn the_original_captures_need_no_build() {
        let Some(copy) = ScriptCopy::with_tcpdump(
            "make-captures-original",
            &[r#"echo "listening on lo, link-type EN10MB (Ethernet), snapshot length 262144" >&2"#],
        ) else {
            return;
        };
        let before = snapshot(&captures_dir());

        let (out, took) = copy.run(&["original-plaintext.pcap"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
        assert!(stderr.contains("make-captures: the original program (host) failed:"), "{stderr}");
        assert!(stderr.contains("original_chat.py"), "the program's error is shown: {stderr}");
        assert!(took < Duration::from_secs(15), "the script took {took:?}");
        assert!(!copy.path("bin/cargo-ran-in").exists(), "cargo ran");
        let left: Vec<_> = fs::read_dir(copy.path("tmp")).unwrap().collect();
        assert!(left.is_empty(), "temporary files left behind: {left:?}");
        assert_eq!(snapshot(&captures_dir()), before, "captures/ changed");
    }
}
