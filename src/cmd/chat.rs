//! `rchat host`, `rchat join` and `rchat demo`: the one place where chat flags become
//! [`crate::chat::Settings`] (each combination checked, each bad value named), the `--record` file
//! opened before any key is made, and the chat run.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::chat::demo::{self, DemoSettings};
use crate::chat::record::Recording;
use crate::chat::{ChatError, KeySource, Settings, net, room, session};
use crate::cli::{ChatArgs, DemoArgs, HostArgs, JoinArgs};
use crate::crypto::{self, Fingerprint};
use crate::protocol::room_wire::MAX_ROOM_PEOPLE;
use crate::protocol::wire::MAX_NAME_LEN;
use crate::{Error, Result};

fn usage(msg: impl Into<String>) -> Error {
    Error::Usage(msg.into())
}

/// Check the flags `host` and `join` share and turn them into settings.
pub fn settings(args: ChatArgs, default_name: &str) -> Result<Settings> {
    if args.plaintext {
        for (set, flag) in [
            (args.key.is_some(), "--key"),
            (args.bits.is_some(), "--bits"),
            (args.peer_fingerprint.is_some(), "--peer-fingerprint"),
            (args.allow_weak_keys, "--allow-weak-keys"),
        ] {
            if set {
                return Err(usage(format!(
                    "{flag} has no effect with --plaintext, which uses no keys: drop one of them"
                )));
            }
        }
    }
    let key = match (args.key, args.bits) {
        (Some(path), _) => KeySource::File(path),
        (None, bits) => {
            let bits = bits.unwrap_or(2048);
            crypto::check_bits(bits, args.allow_weak_keys)?;
            KeySource::Fresh(bits)
        }
    };
    let pin = args
        .peer_fingerprint
        .map(|s| s.parse::<Fingerprint>())
        .transpose()
        .map_err(|e| usage(format!("--peer-fingerprint: {e}")))?;
    let name = args.name.unwrap_or_else(|| default_name.to_owned());
    if name.trim().is_empty() || name.len() > MAX_NAME_LEN || name.chars().any(|c| c.is_control()) {
        return Err(usage(format!(
            "--name must be 1 to {MAX_NAME_LEN} bytes of text without control characters"
        )));
    }
    let secs = |v: f64, flag: &str| {
        if v.is_finite() && v > 0.0 && v <= 3600.0 {
            Ok(Duration::from_secs_f64(v))
        } else {
            Err(usage(format!("{flag} must be a number of seconds between 0 and 3600")))
        }
    };
    Ok(Settings {
        plaintext: args.plaintext,
        key,
        pin,
        name,
        explain: args.explain,
        allow_weak: args.allow_weak_keys,
        handshake_timeout: secs(args.handshake_timeout, "--handshake-timeout")?,
        frame_timeout: secs(args.frame_timeout, "--frame-timeout")?,
    })
}

/// Create the `--record` file, if one was asked for: after the flags are checked, before
/// any key is made or connection opened.
fn open_recording(path: Option<&Path>) -> Result<Option<Recording>> {
    Ok(path.map(Recording::create).transpose().map_err(ChatError::from)?)
}

/// Run `rchat host`.
pub fn host(mut args: HostArgs) -> Result<ExitCode> {
    let record = args.chat.record.take();
    let settings = settings(args.chat, "host")?;
    let max = args.max.unwrap_or(room::DEFAULT_MAX);
    if !(1..MAX_ROOM_PEOPLE).contains(&max) {
        return Err(usage(format!(
            "--max must be 1 to {}: a room holds at most {MAX_ROOM_PEOPLE} people, the host included",
            MAX_ROOM_PEOPLE - 1
        )));
    }
    let recording = open_recording(record.as_deref())?;
    if args.room {
        room::relay::run(args.bind, args.port, settings, max, recording)?;
    } else {
        session::run_host(args.bind, args.port, settings, recording)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Run `rchat join`.
pub fn join(mut args: JoinArgs) -> Result<ExitCode> {
    let record = args.chat.record.take();
    let settings = settings(args.chat, "guest")?;
    let (host, port) = net::parse_target(&args.target).map_err(Error::Usage)?;
    let recording = open_recording(record.as_deref())?;
    session::run_join(&host, port, settings, recording)?;
    Ok(ExitCode::SUCCESS)
}

/// Run `rchat demo`.
pub fn demo(args: &DemoArgs) -> Result<ExitCode> {
    let recording = open_recording(args.record.as_deref())?;
    let play = DemoSettings { plaintext: args.plaintext, port: args.port, fast: args.fast };
    demo::run(play, recording)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> ChatArgs {
        ChatArgs {
            plaintext: false,
            key: None,
            bits: None,
            peer_fingerprint: None,
            name: None,
            explain: false,
            allow_weak_keys: false,
            record: None,
            handshake_timeout: 15.0,
            frame_timeout: 10.0,
        }
    }

    #[test]
    fn defaults_become_settings() {
        let s = settings(args(), "host").unwrap();
        assert!(matches!(s.key, KeySource::Fresh(2048)));
        assert_eq!(s.name, "host");
        assert_eq!(s.handshake_timeout, Duration::from_secs(15));
    }

    #[test]
    fn bad_combinations_are_usage_errors() {
        let plain_with_key = ChatArgs { plaintext: true, bits: Some(2048), ..args() };
        let e = settings(plain_with_key, "host").unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
        assert!(e.to_string().starts_with("--bits has no effect with --plaintext"), "{e}");
        let bad_name = ChatArgs { name: Some("a\u{7}b".into()), ..args() };
        assert_eq!(settings(bad_name, "host").unwrap_err().exit_code(), 2);
        let bad_time = ChatArgs { frame_timeout: f64::NAN, ..args() };
        assert!(settings(bad_time, "host").unwrap_err().to_string().contains("--frame-timeout"));
        let weak = ChatArgs { bits: Some(1024), ..args() };
        assert_eq!(settings(weak, "host").unwrap_err().exit_code(), 2);
    }
}
