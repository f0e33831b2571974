#!/bin/sh
# Regenerate the lab captures in captures/ from real sessions on loopback: rchat's, and those
# of the original Python program rchat grew out of (tests/data/peers/original_chat.py).
#
# Usage: captures/make-captures.sh [FILE...]   (from anywhere; needs tcpdump capture rights)
#
# With no FILE it makes all six captures; otherwise only those named (for example
# `original-plaintext.pcap original-encrypted.pcap`), so the others keep their sums.
# For rchat's captures it builds rchat with cargo and makes the two keys in captures/keys/ if
# they are missing (existing keys are kept so the fingerprints in the labs stay valid); the
# original program makes fresh keys on every run, as it always did, and the script saves
# their public halves in captures/keys/. Every process is started with a time limit, so the
# script always ends by itself. Only loopback traffic on ports 9999, 5000 and 7777 is captured.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cd "$root"

all="chat-plaintext.pcap chat-encrypted.pcapng two-sessions-and-noise.pcapng chat-any-interface.pcap original-plaintext.pcap original-encrypted.pcap"
for name in "$@"; do
    case " $all " in
    *" $name "*) ;;
    *) echo "make-captures: unknown capture $name (one of: $all)" >&2; exit 2 ;;
    esac
done
wanted=${*:-$all}
# wants FILE...: whether any of these captures is to be made.
wants() {
    for name in "$@"; do
        case " $wanted " in *" $name "*) return 0 ;; esac
    done
    return 1
}
rchat_captures="chat-plaintext.pcap chat-encrypted.pcapng two-sessions-and-noise.pcapng chat-any-interface.pcap"
original_captures="original-plaintext.pcap original-encrypted.pcap"

tools="tcpdump timeout sha256sum"
# shellcheck disable=SC2086
wants $rchat_captures && tools="$tools cargo editcap nc"
# shellcheck disable=SC2086
wants $original_captures && tools="$tools python3 ss"
for tool in $tools; do
    command -v "$tool" >/dev/null 2>&1 || { echo "make-captures: $tool is required but not installed" >&2; exit 1; }
done
# shellcheck disable=SC2086
if wants $original_captures && ! python3 -c 'import rsa, cryptography' 2>/dev/null; then
    echo "make-captures: the original program needs the Python packages rsa and cryptography" >&2
    exit 1
fi

# A capture that cannot start fails at once; one that runs is still alive after a second.
probe=$(mktemp)
if timeout 1 tcpdump -i lo -n -c 1 -w /dev/null 'tcp port 1' >"$probe" 2>&1; then :; fi
if ! grep -q 'listening on' "$probe"; then
    rm -f "$probe"
    echo "make-captures: tcpdump cannot capture on loopback here; run as root or give tcpdump CAP_NET_RAW" >&2
    exit 1
fi
rm -f "$probe"

# shellcheck disable=SC2086
if wants $rchat_captures; then
    cargo build --quiet --bin rchat
    target=${CARGO_TARGET_DIR:-$root/target}
    rchat="$target/debug/rchat"
fi
keys="$here/keys"
mkdir -p "$keys"
# shellcheck disable=SC2086
if wants $rchat_captures; then
    for who in alice bob; do
        [ -f "$keys/$who.pem" ] || "$rchat" keygen --out "$keys/$who.pem"
    done
fi

work=$(mktemp -d)
capture_pid=
# On every exit, a failure included: no tcpdump left running, no temporary files.
trap '[ -z "$capture_pid" ] || kill -INT "$capture_pid" 2>/dev/null || true; rm -rf "$work"' EXIT

# The scripted conversation: the host (Alice) says lines 1, 3, 5, the joiner (Bob) 2 and 4.
line1="Hi Bob! Did you finish the chemistry homework?"
line2="Almost. Can you tell me the secret word for the lab door?"
line3="Sure. The secret word for the lab door is: marmalade"
line4="Thanks, I will not tell anyone."
# Longer than one RSA-2048 block holds (190 bytes): in rchat this MESSAGE carries two blocks.
line5="Bye, see you tomorrow! Remember to bring your goggles, your lab coat, the signed permission slip and last week's worksheet: Mrs Patel said nobody can stay for the experiment without all four."
# The original program cannot send line 5: one RSA-1024 block with PKCS#1 v1.5 padding holds
# at most 117 bytes, and the rsa package refuses more. Its Alice says this instead.
line5_short="Bye, see you tomorrow! Remember your goggles, your lab coat and the signed permission slip."
alice_says() {
    sleep 2; echo "$line1"
    sleep 2; echo "$line3"
    sleep 2; echo "$line5"
    sleep 1
}
bob_says() {
    sleep 2; echo "$line2"
    sleep 2; echo "$line4"
    sleep 2
}

# start_capture FILE IFACE FILTER: record in the background; stop_capture ends it.
# On "any", ask for the newer LINUX_SLL2 link type (it records the interface index).
start_capture() {
    link=
    [ "$2" = any ] && link="-y LINUX_SLL2"
    # As root, tcpdump would otherwise write the file as its own unprivileged user.
    [ "$(id -u)" = 0 ] && link="$link -Z root"
    # shellcheck disable=SC2086
    tcpdump -i "$2" $link -n -U -w "$1" "$3" 2>"$work/tcpdump.log" &
    capture_pid=$!
    sleep 1
}
stop_capture() {
    sleep 1
    kill -INT "$capture_pid"
    wait "$capture_pid" || true
    capture_pid=
}

# chat PORT MODE-OPTIONS...: one scripted conversation, host on 127.0.0.1:PORT.
chat() {
    port=$1
    shift
    alice_says | timeout 30 "$rchat" host --bind 127.0.0.1 --port "$port" "$@" \
        --name alice --key "$keys/alice.pem" >"$work/alice.out" 2>"$work/alice.err" &
    host_pid=$!
    sleep 1
    bob_says | timeout 30 "$rchat" join "127.0.0.1:$port" "$@" \
        --name bob --key "$keys/bob.pem" >"$work/bob.out" 2>"$work/bob.err"
    wait "$host_pid"
}

# Plaintext mode takes no keys or names: only the lines cross the wire.
chat_plaintext() {
    alice_says | timeout 30 "$rchat" host --bind 127.0.0.1 --port 9999 --plaintext \
        >"$work/alice.out" 2>"$work/alice.err" &
    host_pid=$!
    sleep 1
    bob_says | timeout 30 "$rchat" join 127.0.0.1:9999 --plaintext \
        >"$work/bob.out" 2>"$work/bob.err"
    wait "$host_pid"
}

# original ROLE WHO PLAIN-OR-ENCRYPTED OPTIONS... LINE...: one side of the original program,
# whose public key is saved as keys/original-PLAIN-OR-ENCRYPTED-WHO.pem (the PEM it sent).
# The host says its first line a second after the keys have crossed, the joiner two seconds
# after; each then waits two seconds between lines, so the lines alternate a second apart.
original() {
    role=$1 who=$2 mode=$3
    shift 3
    if ! timeout 30 python3 "$root/tests/data/peers/original_chat.py" "$role" --name "$who" \
        --bits 1024 --key-out "$work/$who" --pause 2 --linger 2 "$@" \
        >"$work/$who.out" 2>"$work/$who.err"; then
        echo "make-captures: the original program ($role) failed:" >&2
        cat "$work/$who.err" >&2
        exit 1
    fi
    cp "$work/$who.pem" "$keys/original-$mode-$who.pem"
}

# chat_original plaintext|encrypted: the conversation between two copies of the original
# program, 1024-bit keys as it had; with "plaintext" its encryption is switched off (--plain):
# the keys still cross, the lines go out as they are.
chat_original() {
    plain=
    [ "$1" = plaintext ] && plain=--plain
    # shellcheck disable=SC2086
    original host alice "$1" $plain --first-delay 1 "$line1" "$line3" "$line5_short" &
    host_pid=$!
    # Wait until the host listens (the kernel is asked, no packet is sent): a joiner that
    # came too early would leave refused connections in the capture.
    tries=0
    until [ -n "$(ss -Hltn 'sport = :9999')" ]; do
        tries=$((tries + 1))
        if [ "$tries" -gt 200 ] || ! kill -0 "$host_pid" 2>/dev/null; then
            echo "make-captures: the original program does not listen on port 9999" >&2
            exit 1
        fi
        sleep 0.1
    done
    # shellcheck disable=SC2086
    original join bob "$1" $plain --first-delay 2 "$line2" "$line4"
    wait "$host_pid"
}

made=
if wants chat-plaintext.pcap; then
    echo "chat-plaintext.pcap"
    start_capture "$here/chat-plaintext.pcap" lo 'tcp port 9999'
    chat_plaintext
    stop_capture
    made="$made chat-plaintext.pcap"
fi

if wants chat-encrypted.pcapng; then
    echo "chat-encrypted.pcapng"
    start_capture "$work/enc.pcap" lo 'tcp port 9999'
    chat 9999
    stop_capture
    editcap -F pcapng "$work/enc.pcap" "$here/chat-encrypted.pcapng"
    made="$made chat-encrypted.pcapng"
fi

if wants two-sessions-and-noise.pcapng; then
    echo "two-sessions-and-noise.pcapng"
    start_capture "$work/mixed.pcap" lo 'tcp port 9999 or tcp port 5000 or tcp port 7777'
    # Unrelated plaintext traffic on port 7777: a question and an answer through nc.
    { sleep 1; echo "HTTP/1.0 200 OK: sunny, 21 degrees"; sleep 1; } |
        timeout 10 nc -N -l 127.0.0.1 7777 >/dev/null &
    nc_pid=$!
    sleep 0.5
    { echo "GET /weather?city=Lyon HTTP/1.0"; sleep 2; } | timeout 10 nc -N 127.0.0.1 7777 >/dev/null || true
    wait "$nc_pid" || true
    # Session 1 on the default port; while it runs, a third person tries to join and is
    # answered with BUSY.
    chat 9999 &
    chat1_pid=$!
    sleep 3
    timeout 10 "$rchat" join 127.0.0.1:9999 --name carol >/dev/null 2>"$work/carol.err" </dev/null || true
    wait "$chat1_pid"
    # Session 2 on another port: only the heuristic dissector recognises it.
    chat 5000
    stop_capture
    editcap -F pcapng "$work/mixed.pcap" "$here/two-sessions-and-noise.pcapng"
    made="$made two-sessions-and-noise.pcapng"
fi

if wants chat-any-interface.pcap; then
    echo "chat-any-interface.pcap"
    start_capture "$here/chat-any-interface.pcap" any 'tcp port 9999'
    chat 9999
    stop_capture
    made="$made chat-any-interface.pcap"
fi

for mode in plaintext encrypted; do
    wants "original-$mode.pcap" || continue
    echo "original-$mode.pcap"
    start_capture "$here/original-$mode.pcap" lo 'tcp port 9999'
    chat_original "$mode"
    stop_capture
    made="$made original-$mode.pcap"
done

echo
echo "sha256 (copy into captures/README.md):"
cd "$here"
# shellcheck disable=SC2086
sha256sum $made
