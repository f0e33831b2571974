#!/usr/bin/env bash
# Make docs/screenshots/ anew: for every capture listed in the table of captures/README.md, the
# top of its `rchat analyze --html` page as headless Chromium shows it (NAME.png for
# captures/NAME.pcap or .pcapng), and the page of the plaintext and the encrypted conversation
# together (plaintext-and-encrypted.png, the picture README shows). Run it again after a
# capture is added to that table, or after the page changes; tests/html.rs checks that every
# listed capture has its screenshot. Needs chromium (Debian's package) and cargo, or RCHAT set
# to an rchat binary.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
command -v chromium >/dev/null 2>&1 || { echo "make-screenshots: chromium is not installed" >&2; exit 1; }
if [ -z "${RCHAT:-}" ]; then
  cargo build --release --quiet
  RCHAT="${CARGO_TARGET_DIR:-$root/target}/release/rchat"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=docs/screenshots
mkdir -p "$out"

# shot NAME HEIGHT ANALYZE-ARGS...: the page of `rchat analyze ARGS`, WIDTHxHEIGHT pixels.
shot() {
  local name=$1 height=$2; shift 2
  "$RCHAT" analyze --html "$work/$name.html" "$@" >/dev/null
  chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --user-data-dir="$work/profile" --window-size="1280,$height" \
    --screenshot="$work/$name.png" "file://$work/$name.html" >/dev/null 2>&1
  mv "$work/$name.png" "$out/$name.png"
  echo "$out/$name.png"
}

# The table's rows: a file name in backquotes first, a 64-digit sha256 in backquotes last.
listed=$(awk -F'|' '/^\| `/ {
  first = $2; last = $(NF - 1); gsub(/[ `]/, "", first); gsub(/[ `]/, "", last)
  if (length(last) == 64 && last ~ /^[0-9a-fA-F]+$/) print first }' captures/README.md)
for file in $listed; do
  shot "${file%.*}" 1600 "captures/$file"
done
shot plaintext-and-encrypted 1000 captures/chat-plaintext.pcap captures/chat-encrypted.pcapng
