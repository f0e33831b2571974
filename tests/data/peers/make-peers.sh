#!/usr/bin/env bash
# Re-create the captures of third-party peers in this folder: real programs (the Python chats
# beside this script, openssl, ssh and sshd, Python's http.server and urllib) talking on the
# loopback interface, saved by tcpdump. Needs root (to capture and to run sshd), python3 with
# the rsa and cryptography packages, tcpdump, ss, openssl, ssh and sshd. Only loopback
# addresses and port 9999 (5000 for other-port.pcap) are used, and every process stops by
# itself. Each peer logs what it sent; facts.py writes those facts to expected.json. The
# captures, keys and facts differ on every run (keys, ports, times, random bytes).
set -euo pipefail
cd "$(dirname "$0")"
export PYTHONDONTWRITEBYTECODE=1
PORT=9999
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -f expected.json

# The conversation of every chat: three messages from the host, two from the joiner.
HOST_MSGS=("hi, are you there?" "the exam moved to room 204" "Привет! 你好! à bientôt")
JOIN_MSGS=("yes, here" "thanks, see you at 10")

# start_capture FILE [TCPDUMP OPTION...]: tcpdump on lo for the current $PORT, until
# stop_capture; the traffic starts about a second later.
start_capture() {
  local out=$1; shift
  tcpdump -i lo -U "$@" -w "$out" "tcp port $PORT" >/dev/null 2>&1 &
  cap_pid=$!
  sleep 1
}
stop_capture() {
  sleep 1
  kill -INT "$cap_pid"
  wait "$cap_pid" || true
}

# wait_listening: until something listens on 127.0.0.1:$PORT (asked of the kernel with ss, so
# no packet is sent).
wait_listening() {
  for _ in $(seq 200); do
    [ -n "$(ss -Hltn "sport = :$PORT")" ] && return 0
    sleep 0.05
  done
  echo "nothing listens on port $PORT" >&2
  return 1
}

# chat STEM PROGRAM [OPTION...]: the host and the joiner of one Python chat have the
# conversation above. Each saves its public key as STEM-host.* / STEM-join.* here and its log
# as $work/STEM-host.json / STEM-join.json.
chat() {
  local stem=$1 program=$2; shift 2
  timeout 90 python3 "$program" host "$@" --port "$PORT" --key-out "$stem-host" \
    --log "$work/$stem-host.json" --first-delay 0.05 --pause 0.5 "${HOST_MSGS[@]}" \
    > "$work/$stem-host.out" &
  local host=$!
  wait_listening
  timeout 90 python3 "$program" join "$@" --port "$PORT" --key-out "$stem-join" \
    --log "$work/$stem-join.json" --first-delay 0.3 --pause 0.5 "${JOIN_MSGS[@]}" \
    > "$work/$stem-join.out"
  wait "$host"
}

# facts STEM OPTION...: add the capture's facts from both chat logs to expected.json.
facts() {
  local stem=$1; shift
  python3 facts.py expected.json "$stem.pcap" --port "$PORT" \
    --server "$work/$stem-host.json" --client "$work/$stem-join.json" "$@"
}

# 1-3. The original chat: plaintext, then RSA PKCS#1 v1.5 with 1024- and 2048-bit keys.
start_capture original-plain-1024.pcap
chat original-plain-1024 original_chat.py --bits 1024 --plain
stop_capture
facts original-plain-1024 --verdict plaintext \
  --program "original_chat.py --plain --bits 1024: PKCS#1 PEM keys, then raw UTF-8 messages"

for bits in 1024 2048; do
  start_capture "original-rsa-$bits.pcap"
  chat "original-rsa-$bits" original_chat.py --bits "$bits"
  stop_capture
  facts "original-rsa-$bits" --verdict ciphertext \
    --program "original_chat.py --bits $bits: PKCS#1 PEM keys, then one RSA PKCS#1 v1.5 block per message" \
    --note "each side's key and its first ciphertext are separate sends about 50 ms apart or more"
done

# 4-6. cryptography-based chats: length-prefixed DER and OAEP, JSON envelopes, hex lines.
start_capture oaep-prefix.pcap
chat oaep-prefix modern_chat.py --mode prefix --bits 2048
stop_capture
facts oaep-prefix --verdict ciphertext \
  --program "modern_chat.py --mode prefix: 4-byte length + SPKI DER keys, 4-byte length + RSA-OAEP (SHA-256) messages"

start_capture json-envelopes.pcap
chat json-envelopes modern_chat.py --mode json --bits 2048
stop_capture
facts json-envelopes --verdict encoded --encoding base64 \
  --program "modern_chat.py --mode json: JSON lines, key as decimal n and e, messages as base64 RSA-OAEP (SHA-256) in \"ct\"" \
  --note "the key line carries the modulus as a decimal integer; the message lines carry base64"

start_capture hex-lines.pcap
chat hex-lines modern_chat.py --mode hex --bits 1024
stop_capture
facts hex-lines --verdict encoded --encoding hex \
  --program "modern_chat.py --mode hex: SPKI PEM keys, then one hex line of RSA-OAEP (SHA-256) per message"

# 7. Fernet tokens with a pre-shared key: nothing but tokens on the wire.
python3 -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())' \
  > fernet.key
start_capture fernet.pcap
chat fernet modern_chat.py --mode fernet --psk fernet.key
stop_capture
facts fernet --verdict encoded --encoding base64 --psk-file fernet.key \
  --program "modern_chat.py --mode fernet: one Fernet token (url-safe base64) per line, pre-shared key" \
  --note "Fernet tokens use the url-safe base64 alphabet (- and _), padded with ="

# 8-9. TLS 1.2 and 1.3 between openssl s_server and s_client, SNI localhost, two lines each way.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
  -keyout "$work/tls-key.pem" -out tls-cert.pem 2>/dev/null
for v in 12 13; do
  in_clear=$([ "$v" = 12 ] && echo yes || echo no)
  start_capture "tls$v-openssl.pcap"
  python3 lines.py --role host --program "openssl s_server -tls1_${v#1}" --log "$work/tls$v-host.json" \
      --first-delay 0.6 --pause 0.4 --linger 1.5 "server line one" "server line two" |
    timeout 20 openssl s_server -quiet -naccept 1 -accept "127.0.0.1:$PORT" \
      -cert tls-cert.pem -key "$work/tls-key.pem" "-tls1_${v#1}" > "$work/tls$v-host.out" 2>&1 &
  srv=$!
  wait_listening
  python3 lines.py --role join --program "openssl s_client -tls1_${v#1}" --log "$work/tls$v-join.json" \
      --first-delay 0.4 --pause 0.4 --linger 1 "client line one" "client line two" |
    timeout 20 openssl s_client -quiet -no_ign_eof -connect "127.0.0.1:$PORT" \
      -servername localhost "-tls1_${v#1}" > "$work/tls$v-join.out" 2>&1
  wait "$srv"
  stop_capture
  python3 facts.py expected.json "tls$v-openssl.pcap" --port "$PORT" --verdict ciphertext \
    --server "$work/tls$v-host.json" --client "$work/tls$v-join.json" \
    --cert tls-cert.pem --cert-in-clear "$in_clear" \
    --program "openssl s_server and s_client, TLS 1.${v#1}, SNI localhost, self-signed RSA 2048 certificate" \
    --note "the TLS handshake is readable (SNI localhost); the application lines travel encrypted"
done

# 10. SSH: a real ssh client against a throwaway sshd (debug mode: one connection, then it
#     exits). Banners and KEXINITs in the clear, then encrypted packets; the client offers no
#     key and no password (BatchMode), so it is refused and hangs up.
ssh-keygen -q -t ed25519 -N '' -C throwaway -f "$work/ssh_host_ed25519_key"
mkdir -p /run/sshd  # sshd's privilege-separation folder
start_capture ssh-banner.pcap
timeout 20 "$(command -v sshd)" -d -e -f /dev/null -p "$PORT" -o ListenAddress=127.0.0.1 \
  -h "$work/ssh_host_ed25519_key" -o UsePAM=no -o PidFile=none > "$work/sshd.log" 2>&1 &
srv=$!
wait_listening
timeout 20 ssh -v -F /dev/null -p "$PORT" -o BatchMode=yes -o StrictHostKeyChecking=no \
  -o UserKnownHostsFile=/dev/null -o GlobalKnownHostsFile=/dev/null \
  -o PubkeyAuthentication=no -o GSSAPIAuthentication=no nobody@127.0.0.1 true \
  > /dev/null 2> "$work/ssh.log" || true
wait "$srv" || true
stop_capture
python3 facts.py expected.json ssh-banner.pcap --port "$PORT" --verdict ciphertext \
  --ssh-debug "$work/ssh.log" \
  --program "OpenSSH ssh (BatchMode, no key offered) against a throwaway sshd -d" \
  --note "banners and KEXINIT name lists are readable, the key exchange values random-looking, then encrypted packets until the refusal"

# 11. Plain HTTP: urllib's GET against python3 -m http.server.
mkdir "$work/www"
printf 'hello from the test web server\nПривет\n' > "$work/www/hello.txt"
start_capture http-get.pcap
timeout 20 python3 -m http.server "$PORT" --bind 127.0.0.1 --directory "$work/www" \
  > "$work/http-server.out" 2>&1 &
srv=$!
wait_listening
python3 http_get.py "http://127.0.0.1:$PORT/hello.txt" --log "$work/http-join.json" \
  > "$work/http-join.out"
sleep 0.3
kill "$srv"
wait "$srv" || true
stop_capture
python3 facts.py expected.json http-get.pcap --port "$PORT" --verdict plaintext \
  --client "$work/http-join.json" \
  --program "Python urllib GET /hello.txt (HTTP/1.1) against python3 -m http.server (answers HTTP/1.0)"

# 12. The plaintext original chat captured with a 60-byte snaplen.
start_capture snaplen60.pcap -s 60
chat snaplen60 original_chat.py --bits 1024 --plain
stop_capture
facts snaplen60 --verdict inconclusive \
  --program "original_chat.py --plain --bits 1024, captured with tcpdump -s 60" \
  --note "60 bytes end inside the TCP header (14 Ethernet + 20 IPv4 + 32 TCP with options = 66): the options are cut and no payload byte is in the file" \
  --note "the directions' sizes below are what was sent; all of it is cut by the snaplen"

# 13. The plaintext original chat on port 5000.
PORT=5000
start_capture other-port.pcap
chat other-port original_chat.py --bits 1024 --plain
stop_capture
facts other-port --verdict plaintext \
  --program "original_chat.py --plain --bits 1024 on port 5000"
PORT=9999

chmod 644 ./*.pcap ./*.pem ./*.der fernet.key expected.json
ls -l ./*.pcap
