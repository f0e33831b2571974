#!/bin/sh
# Regenerate the lab captures in captures/ from real rchat sessions on loopback.
#
# Usage: captures/make-captures.sh        (from anywhere; needs tcpdump capture rights)
#
# It builds rchat with cargo, makes the two keys in captures/keys/ if they are missing
# (existing keys are kept so the fingerprints in the labs stay valid), then records four
# captures with tcpdump. Every process is started with a time limit, so the script always
# ends by itself. Only loopback traffic on ports 9999, 5000 and 7777 is captured.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cd "$root"

for tool in cargo tcpdump editcap nc timeout sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || { echo "make-captures: $tool is required but not installed" >&2; exit 1; }
done

# A capture that cannot start fails at once; one that runs is still alive after a second.
probe=$(mktemp)
if timeout 1 tcpdump -i lo -n -c 1 -w /dev/null 'tcp port 1' >"$probe" 2>&1; then :; fi
if ! grep -q 'listening on' "$probe"; then
    rm -f "$probe"
    echo "make-captures: tcpdump cannot capture on loopback here; run as root or give tcpdump CAP_NET_RAW" >&2
    exit 1
fi
rm -f "$probe"

cargo build --quiet --bin rchat
target=${CARGO_TARGET_DIR:-$root/target}
rchat="$target/debug/rchat"

keys="$here/keys"
mkdir -p "$keys"
for who in alice bob; do
    [ -f "$keys/$who.pem" ] || "$rchat" keygen --out "$keys/$who.pem"
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The scripted conversation: the host (Alice) says lines 1, 3, 5, the joiner (Bob) 2 and 4.
alice_says() {
    sleep 2; echo "Hi Bob! Did you finish the chemistry homework?"
    sleep 2; echo "Sure. The secret word for the lab door is: marmalade"
    # Longer than one RSA-2048 block holds (190 bytes): this MESSAGE carries two blocks.
    sleep 2; echo "Bye, see you tomorrow! Remember to bring your goggles, your lab coat, the signed permission slip and last week's worksheet: Mrs Patel said nobody can stay for the experiment without all four."
    sleep 1
}
bob_says() {
    sleep 2; echo "Almost. Can you tell me the secret word for the lab door?"
    sleep 2; echo "Thanks, I will not tell anyone."
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

echo "chat-plaintext.pcap"
start_capture "$here/chat-plaintext.pcap" lo 'tcp port 9999'
chat_plaintext
stop_capture

echo "chat-encrypted.pcapng"
start_capture "$work/enc.pcap" lo 'tcp port 9999'
chat 9999
stop_capture
editcap -F pcapng "$work/enc.pcap" "$here/chat-encrypted.pcapng"

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

echo "chat-any-interface.pcap"
start_capture "$here/chat-any-interface.pcap" any 'tcp port 9999'
chat 9999
stop_capture

echo
echo "sha256 (copy into captures/README.md):"
cd "$here"
sha256sum chat-plaintext.pcap chat-encrypted.pcapng two-sessions-and-noise.pcapng chat-any-interface.pcap
