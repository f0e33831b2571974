//! The lab worksheets cannot rot: every `rchat` command shown in `labs/**/*.md` is run here.
//!
//! Commands are taken from ```sh blocks (every pipeline segment that starts with `rchat `,
//! after removing a trailing `# comment` and joining `\` continuations) and from ```text
//! blocks whose first line is `$ rchat ...` (the lines shown under it must appear in the real
//! output). Each worksheet runs in its own temporary directory, its commands in the order
//! they are written, so a key made by `keygen` or a file written by `--record` is there for
//! the commands after it; paths under `captures/` and `wireshark/` point at the shipped files.
//!
//! - `analyze`, `fingerprint`, `keygen`: run as written; exit 0, or non-zero when the line's
//!   comment says `fails on purpose`. An `analyze` of a file the lab made itself gets
//!   `--all-ports` (the test's sessions use ephemeral ports) and must find a stream.
//! - `host` and the `join` that follows it: a real chat on 127.0.0.1 with an ephemeral port,
//!   one line each way; a `host` or `join` shown alone gets a partner in the same mode.
//! - `host --room` and every `join` right after it: a real room on 127.0.0.1 with an
//!   ephemeral port, topped up with stand-in members to two. Everyone says one line to the
//!   room, the host sends the first member a `/msg` and the first member the second one:
//!   each member must get every public line, only its recipient a private one, and the host
//!   must say it relayed what it could not read (or, in plaintext, what went in the clear);
//!   the host's `--record` file must hold a stream per member. A `join` marked `fails on
//!   purpose` must be refused (a full room, say) while the others are in.
//! - `demo`: run with `--fast --port 0`.
//!
//! - `tshark` lines in ```sh blocks: run on the shipped files when tshark is installed.
//!
//! Anything else fails the test, so a new kind of command in a worksheet gets a test too.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{BIN, Proc, scratch};

/// One `rchat` command found in a worksheet.
#[derive(Debug, Clone)]
struct Shown {
    /// `labs/...md:LINE`, for messages.
    origin: String,
    /// The arguments after `rchat`.
    args: Vec<String>,
    /// The line's comment says `fails on purpose`.
    fails: bool,
    /// Output lines the worksheet quotes (```text blocks only).
    expect: Vec<String>,
    /// A `tshark` command (args are tshark's), not an `rchat` one.
    tshark: bool,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn worksheets() -> Vec<PathBuf> {
    let mut out = common::files_under(&root().join("labs"));
    out.retain(|p| p.extension().is_some_and(|x| x == "md"));
    out
}

/// Split a shell line into words, honouring single and double quotes.
fn words(s: &str) -> Vec<String> {
    let mut out = vec![];
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut has = false;
    for c in s.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                has = true;
            }
            None if c.is_whitespace() => {
                if has {
                    out.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            None => {
                cur.push(c);
                has = true;
            }
        }
    }
    if has {
        out.push(cur);
    }
    out
}

/// The comment of a shell line: from the first `#` at the start or after a space.
fn split_comment(line: &str) -> (&str, &str) {
    let b = line.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c == b'#' && (i == 0 || b[i - 1] == b' ' || b[i - 1] == b'\t') {
            return (&line[..i], &line[i..]);
        }
    }
    (line, "")
}

/// The `rchat` commands of one shell line (each segment of a pipeline or list).
fn commands_in(code: &str) -> Vec<Vec<String>> {
    program_in(code, "rchat ")
}

/// The commands of one shell line that start with `program` (a name and a space).
fn program_in(code: &str, program: &str) -> Vec<Vec<String>> {
    let mut out = vec![];
    for seg in code.split(['|', ';', '&']) {
        let seg = seg.trim();
        let Some(rest) = seg.strip_prefix(program) else { continue };
        // Drop redirections: the test feeds its own input and keeps the output.
        let mut args = vec![];
        let mut skip = false;
        for w in words(rest) {
            if skip {
                skip = false;
                continue;
            }
            if matches!(w.as_str(), "<" | ">" | ">>" | "2>" | "2>&1") {
                skip = w != "2>&1";
                continue;
            }
            if w.starts_with('<') || w.starts_with('>') || w.starts_with("2>") {
                continue;
            }
            args.push(w);
        }
        out.push(args);
    }
    out
}

fn parse(path: &Path) -> Vec<Shown> {
    let text = fs::read_to_string(path).expect("read worksheet");
    let name = path.strip_prefix(root()).unwrap_or(path).display().to_string();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = vec![];
    let mut i = 0;
    while i < lines.len() {
        let fence = lines[i].trim();
        if fence == "```sh" {
            i += 1;
            while i < lines.len() && lines[i].trim() != "```" {
                let start = i;
                let mut code = String::new();
                let mut comment = String::new();
                loop {
                    let (c, com) = split_comment(lines[i]);
                    comment.push_str(com);
                    let c = c.trim_end();
                    if let Some(cont) = c.strip_suffix('\\') {
                        code.push_str(cont);
                        code.push(' ');
                        if i + 1 < lines.len() && lines[i + 1].trim() != "```" {
                            i += 1;
                            continue;
                        }
                    } else {
                        code.push_str(c);
                    }
                    break;
                }
                for args in commands_in(code.trim()) {
                    out.push(Shown {
                        origin: format!("{name}:{}", start + 1),
                        args,
                        fails: comment.contains("fails on purpose"),
                        expect: vec![],
                        tshark: false,
                    });
                }
                for args in program_in(code.trim(), "tshark ") {
                    out.push(Shown {
                        origin: format!("{name}:{}", start + 1),
                        args,
                        fails: false,
                        expect: vec![],
                        tshark: true,
                    });
                }
                i += 1;
            }
        } else if fence == "```text" && i + 1 < lines.len() {
            let start = i + 1;
            if let Some(cmd) = lines[start].trim().strip_prefix("$ rchat ") {
                let (code, comment) = split_comment(cmd);
                let mut expect = vec![];
                i = start + 1;
                while i < lines.len() && lines[i].trim() != "```" {
                    let l = lines[i].trim();
                    if !l.is_empty() && l != "..." {
                        expect.push(l.to_string());
                    }
                    i += 1;
                }
                for args in commands_in(&format!("rchat {code}")) {
                    out.push(Shown {
                        origin: format!("{name}:{}", start + 1),
                        args,
                        fails: comment.contains("fails on purpose"),
                        expect: expect.clone(),
                        tshark: false,
                    });
                }
            } else {
                i += 1;
                while i < lines.len() && lines[i].trim() != "```" {
                    i += 1;
                }
            }
        }
        i += 1;
    }
    out
}

/// Paths of the shipped files become absolute; files the lab makes go to its directory.
fn resolve(args: &[String], dir: &Path) -> Vec<String> {
    let mut out = vec![];
    let mut path_next = false;
    for a in args {
        let shipped = ["captures/", "wireshark/", "docs/"].iter().any(|p| a.starts_with(p));
        if shipped {
            out.push(root().join(a).display().to_string());
        } else if path_next && !Path::new(a).is_absolute() {
            out.push(dir.join(a).display().to_string());
        } else {
            out.push(a.clone());
        }
        path_next = matches!(a.as_str(), "--record" | "--key" | "--out" | "--extract");
    }
    out
}

/// Remove `flag VALUE` pairs.
fn without(args: &[String], flags: &[&str]) -> Vec<String> {
    let mut out = vec![];
    let mut skip = false;
    for a in args {
        if skip {
            skip = false;
        } else if flags.contains(&a.as_str()) {
            skip = true;
        } else {
            out.push(a.clone());
        }
    }
    out
}

/// Run a file command with a time limit; returns status and stdout+stderr.
fn run_bounded(args: &[String], dir: &Path, secs: u64) -> (i32, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rchat");
    let (mut so, mut se) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let t1 = thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut so, &mut s);
        s
    });
    let t2 = thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut se, &mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(secs);
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("rchat {args:?} did not finish within {secs} s");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let text = t1.join().unwrap() + &t2.join().unwrap();
    (code, text)
}

fn check_status(cmd: &Shown, code: i32, output: &str) {
    if cmd.fails {
        assert_ne!(
            code, 0,
            "{}: rchat {:?} should fail on purpose:\n{output}",
            cmd.origin, cmd.args
        );
    } else {
        assert_eq!(code, 0, "{}: rchat {:?} failed:\n{output}", cmd.origin, cmd.args);
    }
}

fn run_file_command(cmd: &Shown, dir: &Path) {
    let mut args = resolve(&cmd.args, dir);
    let own_file = cmd.args[0] == "analyze"
        && !cmd.args.iter().any(|a| a.starts_with("captures/"))
        && !cmd.args.iter().any(|a| a == "--port" || a == "-p" || a == "--all-ports");
    if own_file {
        args.push("--all-ports".into());
    }
    let (code, output) = run_bounded(&args, dir, 60);
    check_status(cmd, code, &output);
    if own_file && !cmd.fails {
        assert!(
            !output.contains("No TCP traffic"),
            "{}: the lab's own capture holds no stream:\n{output}",
            cmd.origin
        );
    }
    let out_lines: Vec<&str> = output.lines().map(str::trim).collect();
    for want in &cmd.expect {
        assert!(
            out_lines.iter().any(|l| l.contains(want.as_str())),
            "{}: the worksheet shows `{want}`, which `rchat {}` no longer prints:\n{output}",
            cmd.origin,
            cmd.args.join(" ")
        );
    }
}

/// The flags a stand-in partner needs to talk to `args`.
fn partner_flags(args: &[String]) -> Vec<String> {
    let mut out = vec![];
    if args.iter().any(|a| a == "--plaintext") {
        out.push("--plaintext".to_string());
    }
    if args.iter().any(|a| a == "--allow-weak-keys") {
        out.push("--allow-weak-keys".to_string());
    }
    out
}

/// Every `--record FILE` in `args` must have written a capture that analyze opens, with at
/// least `streams` TCP streams in it.
fn check_recordings(args: &[String], origin: &str, dir: &Path, streams: usize) {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--record" {
            let file = it.next().expect("--record FILE");
            assert!(Path::new(file).exists(), "{origin}: --record wrote no {file}");
            let (code, out) =
                run_bounded(&["analyze".into(), "--all-ports".into(), file.clone()], dir, 60);
            assert_eq!(code, 0, "{origin}: analyze of the recording failed:\n{out}");
            assert!(!out.contains("No TCP traffic"), "{origin}: empty recording:\n{out}");
            let found = out.lines().filter(|l| l.starts_with("stream ")).count();
            assert!(
                found >= streams,
                "{origin}: {file} holds {found} streams, not the {streams} of everyone who \
                 joined:\n{out}"
            );
        }
    }
}

/// A real chat on loopback: `host` (shown or stand-in) and `join` (shown or stand-in).
fn run_chat(host: Option<&Shown>, join: Option<&Shown>, dir: &Path) {
    let origin = host.or(join).map(|c| c.origin.clone()).unwrap();
    let host_args = match host {
        Some(h) => resolve(&h.args[1..], dir),
        None => partner_flags(&join.unwrap().args),
    };
    let host_args = without(&host_args, &["--bind", "--port", "-p"]);
    let host_refs: Vec<&str> = host_args.iter().map(String::as_str).collect();
    let (mut h, port) = Proc::host(&host_refs);

    let mut join_args = vec!["join".to_string(), format!("127.0.0.1:{port}")];
    match join {
        // Skip the shown HOST[:PORT]: the host runs on an ephemeral loopback port here.
        Some(j) => join_args.extend(resolve(&j.args[2..], dir)),
        None => join_args.extend(partner_flags(&host.unwrap().args)),
    }
    let join_refs: Vec<&str> = join_args.iter().map(String::as_str).collect();
    let mut j = Proc::spawn(&join_refs);

    h.send(&["hello from the host"]);
    h.close_stdin();
    j.send(&["hello from the joiner"]);
    j.close_stdin();

    let join_fails = join.is_some_and(|c| c.fails);
    let host_fails = host.is_some_and(|c| c.fails);
    let jcode = j.finish(60);
    if join_fails || host_fails {
        // A refused peer: the shown failing side must stop with an error; a host that
        // refused a candidate keeps waiting for another, so it is stopped here.
        if join_fails {
            assert_ne!(jcode, 0, "{origin}: the join should fail on purpose: {:#?}", j.err);
        }
        if host_fails {
            assert!(
                host_rejected(&mut h),
                "{origin}: the host should refuse the peer: {:#?}",
                h.err
            );
        }
        return;
    }
    assert_eq!(jcode, 0, "{origin}: join failed: {:#?}", j.err);
    let hcode = h.finish(60);
    assert_eq!(hcode, 0, "{origin}: host failed: {:#?}", h.err);
    assert!(j.out.iter().any(|l| l.contains("hello from the host")), "{origin}: {:#?}", j.out);
    assert!(h.out.iter().any(|l| l.contains("hello from the joiner")), "{origin}: {:#?}", h.out);
    for (p, args) in [(&mut h, &host_args), (&mut j, &join_args)] {
        if args.iter().any(|a| a == "--explain") {
            assert!(p.err_has("wire: sent MESSAGE"), "{origin}: --explain said nothing");
        }
        check_recordings(args, &origin, dir, 1);
    }
}

/// The value shown after `flag`.
fn value_of<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).map(String::as_str)
}

/// A member's name for the test's room: the one shown, when the room keeps it as it is and
/// nobody has it yet; else `member{n}`.
fn member_name(args: &[String], n: usize, taken: &[String]) -> String {
    match value_of(args, "--name") {
        Some(w)
            if !w.is_empty()
                && w.len() <= 32
                && w.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                && !taken.iter().any(|t| t == w) =>
        {
            w.to_string()
        }
        _ => format!("member{n}"),
    }
}

/// Whether a member's line says it knows `other` is in the room: the list it got on
/// entering, or a notice that `other` came.
fn knows(line: &str, other: &str) -> bool {
    line.contains(&format!("{other} joined"))
        || line
            .strip_prefix("in the room: ")
            .is_some_and(|names| names.split(", ").any(|n| n == other))
}

/// A real room on loopback: `host --room` as shown and the `join`s shown after it (with
/// stand-ins to make two members), one public line from everyone and two `/msg`s.
fn run_room(host: &Shown, joins: &[&Shown], dir: &Path) {
    let origin = host.origin.as_str();
    let host_args = without(&resolve(&host.args[1..], dir), &["--bind", "--port", "-p"]);
    if host.fails {
        // A room that must not open: it stops with an error before anyone can join.
        let mut args: Vec<String> =
            ["host", "--bind", "127.0.0.1", "--port", "0"].map(String::from).to_vec();
        args.extend(host_args);
        let (code, output) = run_bounded(&args, dir, 60);
        check_status(host, code, &output);
        return;
    }
    let plaintext = host_args.iter().any(|a| a == "--plaintext");
    let host_name = value_of(&host_args, "--name").unwrap_or("host").to_string();
    let max: usize = value_of(&host_args, "--max").and_then(|m| m.parse().ok()).unwrap_or(40);
    for j in joins {
        assert!(j.args.len() >= 2, "{}: join without a host address", j.origin);
    }
    let shown: Vec<Vec<String>> =
        joins.iter().filter(|j| !j.fails).map(|j| resolve(&j.args[2..], dir)).collect();
    assert!(shown.len() <= max, "{origin}: more members join than --max {max} lets in");
    let wanted = shown.len().max(2.min(max));
    let mut names = vec![host_name.clone()];
    let mut members: Vec<(String, Vec<String>)> = vec![];
    let stand_ins = std::iter::repeat_with(|| partner_flags(&host.args));
    for (n, args) in shown.into_iter().chain(stand_ins).take(wanted).enumerate() {
        let name = member_name(&args, n + 1, &names);
        let mut args = without(&args, &["--name"]);
        args.extend(["--name".to_string(), name.clone()]);
        names.push(name.clone());
        members.push((name, args));
    }

    let host_refs: Vec<&str> = host_args.iter().map(String::as_str).collect();
    let (mut h, port) = Proc::host(&host_refs);
    let target = format!("127.0.0.1:{port}");
    let join = |args: &[String]| {
        let mut all = vec!["join", target.as_str()];
        all.extend(args.iter().map(String::as_str));
        Proc::spawn(&all)
    };
    let mut procs: Vec<Proc> = members.iter().map(|(_, args)| join(args)).collect();
    // Everyone in, and every member aware of every other, before anyone speaks: a message
    // goes only to the members its sender knows of.
    for (name, _) in &members {
        h.wait_err(|l| l.starts_with(&format!("{name} joined from")), 60);
    }
    for (p, (name, _)) in procs.iter_mut().zip(&members) {
        for (other, _) in members.iter().filter(|(o, _)| o != name) {
            p.wait_err(|l| knows(l, other), 60);
        }
    }
    for j in joins.iter().filter(|j| j.fails) {
        let mut p = join(&resolve(&j.args[2..], dir));
        p.close_stdin();
        let code = p.finish(60);
        assert_ne!(code, 0, "{}: this join should be refused: {:#?}", j.origin, p.err);
    }

    let public = |who: &str| format!("public line from {who}");
    let private = |from: &str, to: &str| format!("private line from {from} to {to}");
    let first = members[0].0.clone();
    let second = members.get(1).map(|(n, _)| n.clone());
    h.send(&[&public(&host_name), &format!("/msg {first} {}", private(&host_name, &first))]);
    for (i, (p, (name, _))) in procs.iter_mut().zip(&members).enumerate() {
        p.send(&[&public(name)]);
        if let (0, Some(second)) = (i, &second) {
            p.send(&[&format!("/msg {second} {}", private(name, second))]);
        }
    }
    for (name, _) in &members {
        let want = format!("{name}: {}", public(name));
        h.wait_out(|l| l.contains(&want), 60);
    }
    for (i, (p, (name, _))) in procs.iter_mut().zip(&members).enumerate() {
        for other in names.iter().filter(|o| *o != name) {
            let want = format!("{other}: {}", public(other));
            p.wait_out(|l| l.contains(&want), 60);
        }
        if i == 0 {
            let want = format!("{host_name} (private): {}", private(&host_name, name));
            p.wait_out(|l| l.contains(&want), 60);
        }
        if i == 1 {
            let want = format!("{first} (private): {}", private(&first, name));
            p.wait_out(|l| l.contains(&want), 60);
        }
    }
    if let Some(second) = &second {
        let relayed = format!("relayed a private message from {first} to {second}");
        let how = if plaintext { "in the clear" } else { "this host cannot read" };
        h.wait_err(|l| l.contains(&relayed) && l.contains(how), 60);
    }

    for p in &mut procs {
        p.close_stdin();
    }
    for (p, (name, _)) in procs.iter_mut().zip(&members) {
        let code = p.finish(60);
        assert_eq!(code, 0, "{origin}: member {name} failed: {:#?}", p.err);
    }
    h.close_stdin();
    let code = h.finish(60);
    assert_eq!(code, 0, "{origin}: the room's host failed: {:#?}", h.err);

    // A private line reaches its recipient alone: not the relay, not the others.
    let heard = |p: &Proc, text: &str| p.out.iter().any(|l| l.contains(text));
    let to_first = private(&host_name, &first);
    assert!(!heard(&h, &to_first), "{origin}: the host shows its own private line");
    for (i, (p, (name, _))) in procs.iter().zip(&members).enumerate() {
        assert!(i == 0 || !heard(p, &to_first), "{origin}: {name} got {first}'s private line");
    }
    if let Some(second) = &second {
        let to_second = private(&first, second);
        assert!(!heard(&h, &to_second), "{origin}: the relay read a private line: {:#?}", h.out);
        for (i, (p, (name, _))) in procs.iter().zip(&members).enumerate() {
            assert!(i == 1 || !heard(p, &to_second), "{origin}: {name} got {second}'s line");
        }
    }
    for (p, (name, args)) in procs.iter_mut().zip(&members) {
        if !plaintext && args.iter().any(|a| a == "--explain") {
            assert!(p.err_has("wire: sent ROOM MESSAGE"), "{origin}: {name}'s --explain is mute");
        }
        check_recordings(args, origin, dir, 1);
    }
    check_recordings(&host_args, origin, dir, members.len());
}

/// Whether the host logs a refused candidate within a few seconds.
fn host_rejected(host: &mut Proc) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if host.err_has("rejected") {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    false
}

fn run_demo(cmd: &Shown, dir: &Path) {
    let mut args = without(&resolve(&cmd.args, dir), &["--port", "-p"]);
    args.retain(|a| a != "--fast");
    args.extend(["--fast".into(), "--port".into(), "0".into()]);
    let (code, output) = run_bounded(&args, dir, 60);
    check_status(cmd, code, &output);
    check_recordings(&args, &cmd.origin, dir, 1);
}

/// A tshark command the worksheet shows, on the shipped files (from the crate root, where
/// its relative paths point): it must succeed, print something, and load the dissector
/// without a Lua error. Skipped without tshark unless `RCHAT_REQUIRE_TOOLS=1`.
fn run_tshark(cmd: &Shown) {
    if !common::have_tool("tshark") {
        return;
    }
    let out = Command::new("tshark")
        .args(&cmd.args)
        .current_dir(root())
        .stdin(Stdio::null())
        .output()
        .expect("run tshark");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}: tshark {:?} failed:\n{stderr}", cmd.origin, cmd.args);
    assert!(!stdout.trim().is_empty(), "{}: tshark printed nothing", cmd.origin);
    assert!(
        !stderr.contains("Lua") && !stderr.to_lowercase().contains("error"),
        "{}: tshark complained:\n{stderr}",
        cmd.origin
    );
}

/// Run one worksheet's commands in order in its own directory.
fn run_worksheet(cmds: &[Shown], dir: &Path) {
    let mut i = 0;
    while i < cmds.len() {
        let c = &cmds[i];
        if c.tshark {
            run_tshark(c);
            i += 1;
            continue;
        }
        match c.args.first().map(String::as_str) {
            Some("analyze" | "fingerprint" | "keygen") => run_file_command(c, dir),
            Some("demo") => run_demo(c, dir),
            Some("host") if c.args.iter().any(|a| a == "--room") => {
                let joins: Vec<&Shown> = cmds[i + 1..]
                    .iter()
                    .take_while(|n| !n.tshark && n.args.first().is_some_and(|a| a == "join"))
                    .collect();
                run_room(c, &joins, dir);
                i += joins.len();
            }
            Some("host") => {
                let next = cmds.get(i + 1).filter(|n| n.args.first().is_some_and(|a| a == "join"));
                run_chat(Some(c), next, dir);
                if next.is_some() {
                    i += 1;
                }
            }
            Some("join") => {
                assert!(c.args.len() >= 2, "{}: join without a host address", c.origin);
                run_chat(None, Some(c), dir);
            }
            _ => panic!(
                "{}: the test does not know how to run `rchat {}`: teach tests/labs.rs",
                c.origin,
                c.args.join(" ")
            ),
        }
        i += 1;
    }
}

#[test]
fn every_worksheet_has_commands_and_every_command_runs() {
    let files = worksheets();
    assert!(files.len() >= 8, "expected the index and at least seven worksheets: {files:?}");
    let base = scratch("labs");
    // An answer file runs after its worksheet, in the same directory: it may analyse the
    // files the worksheet's commands made.
    let mut jobs: Vec<(PathBuf, Vec<Shown>, PathBuf)> = vec![];
    let mut kinds = std::collections::BTreeSet::new();
    for (n, f) in files.iter().enumerate() {
        let cmds = parse(f);
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let is_sheet = name.as_bytes().first().is_some_and(u8::is_ascii_digit);
        if is_sheet && f.parent().is_some_and(|p| p.ends_with("labs")) {
            assert!(!cmds.is_empty(), "{name} shows no rchat command");
        }
        for c in cmds.iter().filter(|c| !c.tshark) {
            kinds.insert(c.args.first().cloned().unwrap_or_default());
        }
        let sheet = root().join("labs").join(&name);
        let is_answer = f.parent().is_some_and(|p| p.ends_with("instructor"));
        if let Some(job) = jobs.iter_mut().find(|j| is_answer && j.0 == sheet) {
            job.1.extend(cmds);
            continue;
        }
        let dir = base.path().join(format!("{n}-{name}"));
        fs::create_dir_all(&dir).unwrap();
        jobs.push((f.clone(), cmds, dir));
    }
    for k in ["analyze", "fingerprint", "keygen", "host", "join", "demo"] {
        assert!(kinds.contains(k), "no worksheet shows `rchat {k}`");
    }
    for (f, cmds, _) in &jobs {
        let chats = cmds
            .iter()
            .filter(|c| !c.tshark && (c.args[0] == "host" || c.args[0] == "join"))
            .count();
        eprintln!(
            "{}: {} commands ({chats} host or join)",
            f.strip_prefix(root()).unwrap_or(f).display(),
            cmds.len()
        );
    }
    // Two worksheets at a time: the machines that run CI may have two cores.
    let mut failures = vec![];
    for pair in jobs.chunks(2) {
        let results: Vec<_> = thread::scope(|s| {
            let handles: Vec<_> = pair
                .iter()
                .map(|(f, cmds, dir)| (f, s.spawn(move || run_worksheet(cmds, dir))))
                .collect();
            handles.into_iter().map(|(f, h)| (f.clone(), h.join())).collect()
        });
        for (f, r) in results {
            if let Err(e) = r {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{}: {msg}", f.display()));
            }
        }
    }
    assert!(failures.is_empty(), "worksheet commands failed:\n{}", failures.join("\n\n"));
}

#[test]
fn the_parser_reads_pipelines_comments_and_continuations() {
    assert_eq!(
        commands_in("head -c 600 /dev/urandom | base64 | rchat join 127.0.0.1 --plaintext"),
        vec![vec!["join", "127.0.0.1", "--plaintext"]]
    );
    assert_eq!(
        commands_in("rchat join 127.0.0.1 --plaintext < notes.b64 2> err.txt"),
        vec![vec!["join", "127.0.0.1", "--plaintext"]]
    );
    assert_eq!(
        program_in("tshark -r captures/a.pcap -q -z follow,tcp,ascii,0", "tshark "),
        vec![vec!["-r", "captures/a.pcap", "-q", "-z", "follow,tcp,ascii,0"]]
    );
    assert_eq!(split_comment("rchat demo   # one terminal").0.trim(), "rchat demo");
    assert_eq!(words("rchat host --name 'Ms Smith'"), vec!["rchat", "host", "--name", "Ms Smith"]);
}

#[test]
fn room_members_get_names_and_know_each_other() {
    let args = |s: &str| words(s);
    let taken = vec!["teacher".to_string()];
    assert_eq!(member_name(&args("--name alice --key a.pem"), 1, &taken), "alice");
    assert_eq!(member_name(&args("--name teacher"), 2, &taken), "member2");
    assert_eq!(member_name(&args("--name 'Ms Smith'"), 3, &taken), "member3");
    assert_eq!(member_name(&args("--plaintext"), 4, &taken), "member4");
    assert!(knows("in the room: teacher, bob", "bob"));
    assert!(!knows("in the room: teacher, bob-2", "bob"));
    assert!(knows("carol joined (SHA256:abc)", "carol"));
    assert!(!knows("in the room (3):", "carol"));
}
