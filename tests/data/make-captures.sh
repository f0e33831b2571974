#!/usr/bin/env bash
# Re-create the real captures in this folder: real traffic on the loopback interface, saved by
# tcpdump or dumpcap. Needs root (to capture), tcpdump, dumpcap, nc (OpenBSD netcat) and
# openssl. Only loopback addresses and port 9999 (plus ephemeral client ports) are used, and
# every process stops by itself. The captures differ on every run (ports, times, random bytes).
set -euo pipefail
cd "$(dirname "$0")"
PORT=9999
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# start_capture FILE COMMAND...: run the capture command (with its filter) in the background,
# writing FILE, until stop_capture.
start_capture() {
  local out=$1; shift
  "$@" -w "$out" >/dev/null 2>&1 &
  cap_pid=$!
  sleep 1.5
}
stop_capture() {
  sleep 1
  kill -INT "$cap_pid"
  wait "$cap_pid" || true
}

# 1. A plaintext chat typed into netcat: three lines each way, IPv4, Ethernet link type.
start_capture chat-plaintext.pcap tcpdump -i lo -U "tcp port $PORT"
( sleep 0.3; printf 'hi bob, are you there?\n'; sleep 0.4; printf 'the exam is at 10\n'
  sleep 0.4; printf 'Привет! 你好! bye\n'; sleep 0.5 ) |
  nc -q 1 -l 127.0.0.1 "$PORT" > "$work/host-got" &
host=$!
sleep 0.3
( sleep 0.5; printf 'yes, here\n'; sleep 0.4; printf 'thanks, see you there\n'; sleep 0.8 ) |
  nc -q 1 127.0.0.1 "$PORT" > "$work/guest-got"
wait "$host" || true
stop_capture

# 2. TLS 1.3 between openssl s_server and s_client (pcapng written by dumpcap).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj /CN=localhost -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
start_capture tls-openssl.pcapng dumpcap -q -i lo -f "tcp port $PORT"
# The server's standard input stays open (sleep) so it does not hang up at once.
sleep 3 | openssl s_server -quiet -naccept 1 -accept "127.0.0.1:$PORT" \
  -cert "$work/cert.pem" -key "$work/key.pem" > "$work/tls-got" 2>/dev/null &
srv=$!
sleep 0.5
( printf 'this line travels inside TLS\n'; sleep 0.5; printf 'and so does this one\n'; sleep 0.5 ) |
  timeout 10 openssl s_client -quiet -connect "127.0.0.1:$PORT" >/dev/null 2>&1 || true
wait "$srv" || true
stop_capture

# 3. 4 KB of random bytes over IPv6 (::1), captured on "any" (LINUX_SLL2), nanosecond stamps.
head -c 4096 /dev/urandom > "$work/random.bin"
start_capture random-ipv6.pcap tcpdump -i any -U --time-stamp-precision=nano "tcp port $PORT"
nc -q 1 -l ::1 "$PORT" > "$work/random-got" < /dev/null &
host=$!
sleep 0.3
nc -q 1 ::1 "$PORT" < "$work/random.bin" > /dev/null
wait "$host" || true
stop_capture

# 4. Base64 text of 3 KB of random bytes, as a line-based program might print ciphertext.
head -c 3072 /dev/urandom | base64 -w 76 > "$work/b64.txt"
start_capture base64-text.pcap tcpdump -i lo -U "tcp port $PORT"
nc -q 1 -l 127.0.0.1 "$PORT" > /dev/null < /dev/null &
host=$!
sleep 0.3
nc -q 1 127.0.0.1 "$PORT" < "$work/b64.txt" > /dev/null
wait "$host" || true
stop_capture

# 5. The plaintext chat again with a 96-byte snaplen: every record is cut short.
start_capture chat-snaplen96.pcap tcpdump -i lo -U -s 96 "tcp port $PORT"
( sleep 0.3; printf 'a long line that the short snaplen will cut off in the middle of it\n'
  sleep 0.5 ) | nc -q 1 -l 127.0.0.1 "$PORT" > /dev/null &
host=$!
sleep 0.3
( sleep 0.5; printf 'short\n'; sleep 0.5 ) | nc -q 1 127.0.0.1 "$PORT" > /dev/null
wait "$host" || true
stop_capture

# 5b. The same with a 60-byte snaplen, as `tcpdump -s 60` makes: on loopback's Ethernet
#     framing that keeps 26 bytes of each 32-byte TCP header, so the options and the whole
#     payload are cut, though every packet is TCP on the port.
start_capture chat-snaplen60.pcap tcpdump -i lo -U -s 60 "tcp port $PORT"
( sleep 0.3; printf 'a line of which the capture keeps nothing\n'; sleep 0.5 ) |
  nc -q 1 -l 127.0.0.1 "$PORT" > /dev/null &
host=$!
sleep 0.3
( sleep 0.5; printf 'nor of this one\n'; sleep 0.5 ) | nc -q 1 127.0.0.1 "$PORT" > /dev/null
wait "$host" || true
stop_capture

# 6. A short netcat exchange captured by dumpcap on two interfaces at once (lo: Ethernet, and
#    any: LINUX_SLL), so the pcapng file has two interfaces and every packet twice.
start_capture two-interfaces.pcapng dumpcap -q -i lo -i any -f "tcp port $PORT"
( sleep 0.3; printf 'line from host\n'; sleep 0.5 ) | nc -q 1 -l 127.0.0.1 "$PORT" > /dev/null &
host=$!
sleep 0.3
( sleep 0.5; printf 'line from guest\n'; sleep 0.5 ) | nc -q 1 127.0.0.1 "$PORT" > /dev/null
wait "$host" || true
stop_capture

# 7. rchat's own encrypted mode: handshake (HELLO, AUTH), one message each way, BYE.
#    RCHAT names the binary (default: rchat on the PATH, e.g. after `cargo install --path .`).
RCHAT=${RCHAT:-rchat}
if command -v "$RCHAT" >/dev/null 2>&1; then
  start_capture rchat-encrypted.pcap tcpdump -i lo -U "tcp port $PORT"
  ( sleep 1; printf 'hello from the host\n'; sleep 1.5 ) |
    timeout 30 "$RCHAT" host --bind 127.0.0.1 --port "$PORT" > /dev/null 2>&1 &
  host=$!
  sleep 0.5
  ( sleep 1; printf 'hi host, guest here\n'; sleep 1.5 ) |
    timeout 30 "$RCHAT" join "127.0.0.1:$PORT" > /dev/null 2>&1
  wait "$host" || true
  stop_capture
else
  echo "skipping rchat-encrypted.pcap: set RCHAT to the rchat binary" >&2
fi

chmod 644 ./*.pcap ./*.pcapng
ls -l ./*.pcap ./*.pcapng
