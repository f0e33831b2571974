"""Shared parts of the test peers: command line, connection, timing, saved keys and the log.

Every peer is one side of a two-person chat on the loopback interface: the host listens, the
joiner connects. Messages come from the command line (or a file), are sent with short pauses,
and the peer stops by itself. Each peer writes a JSON log of exactly what it put on the wire,
which facts.py turns into expected.json.
"""
import argparse
import base64
import hashlib
import json
import socket
import threading
import time

from cryptography.hazmat.primitives import serialization


def parse_args(description, add_options=None):
    """The options every peer shares; add_options(parser) may add its own."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("role", choices=["host", "join"])
    p.add_argument("messages", nargs="*", help="messages to send, in order")
    p.add_argument("--messages-file", help="one message per line (added after the others)")
    p.add_argument("--addr", default="127.0.0.1", help="127.0.0.1 or ::1")
    p.add_argument("--port", type=int, default=9999)
    p.add_argument("--bits", type=int, default=2048, help="RSA key size")
    p.add_argument("--first-delay", type=float, default=0.05,
                   help="seconds between the key exchange and the first message")
    p.add_argument("--pause", type=float, default=0.3, help="seconds between messages")
    p.add_argument("--linger", type=float, default=0.6,
                   help="seconds to wait after the last message before hanging up")
    p.add_argument("--key-out", help="save our public key as KEY_OUT.pem and KEY_OUT.der")
    p.add_argument("--log", help="write what we sent and received to this JSON file")
    p.add_argument("--name", help="our name in the chat (default: the role)")
    if add_options:
        add_options(p)
    args = p.parse_intermixed_args()
    if args.messages_file:
        with open(args.messages_file, encoding="utf-8") as f:
            args.messages += [line.rstrip("\n") for line in f if line.strip()]
    args.name = args.name or args.role
    return args


def connect(args, timeout=10.0):
    """The host waits for one joiner; the joiner retries until the host listens."""
    family = socket.AF_INET6 if ":" in args.addr else socket.AF_INET
    deadline = time.monotonic() + timeout
    if args.role == "host":
        server = socket.socket(family, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((args.addr, args.port))
        server.listen(1)
        server.settimeout(timeout)
        conn, _ = server.accept()
        server.close()
    else:
        while True:
            try:
                conn = socket.create_connection((args.addr, args.port), timeout=1.0)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    conn.settimeout(timeout)
    return conn


def fingerprint(spki_der):
    """SHA256: and the unpadded standard base64 of SHA-256 over the SubjectPublicKeyInfo."""
    digest = hashlib.sha256(spki_der).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def save_key(public_key, prefix, pem=None):
    """Save a `cryptography` public key as PREFIX.pem (the given PEM, the bytes that went on
    the wire, or else SPKI PEM) and PREFIX.der (SPKI DER). Returns the key's facts."""
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    if pem is None:
        pem = public_key.public_bytes(serialization.Encoding.PEM,
                                      serialization.PublicFormat.SubjectPublicKeyInfo)
    facts = {"bits": public_key.key_size, "fingerprint": fingerprint(der)}
    if prefix:
        with open(prefix + ".pem", "wb") as f:
            f.write(pem)
        with open(prefix + ".der", "wb") as f:
            f.write(der)
        # Only the file names: the log must not hold this machine's folders.
        facts["pem_file"] = prefix.rsplit("/", 1)[-1] + ".pem"
        facts["der_file"] = prefix.rsplit("/", 1)[-1] + ".der"
    return facts


class Log:
    """What one peer did, written as JSON at the end: every sendall and every message read."""

    def __init__(self, args, program, **settings):
        self.path = args.log
        self.data = {"program": program, "role": args.role, "name": args.name,
                     "addr": args.addr, "port": args.port, "settings": settings,
                     "key": None, "sent": [], "received": []}
        self.lock = threading.Lock()

    def sent(self, kind, wire, **facts):
        """Record one sendall of `wire` bytes (kind: key or message)."""
        with self.lock:
            self.data["sent"].append(dict(kind=kind, bytes=len(wire), **facts))

    def received(self, **facts):
        with self.lock:
            self.data["received"].append(facts)

    def write(self):
        if self.path:
            with open(self.path, "w", encoding="utf-8") as f:
                json.dump(self.data, f, indent=1, ensure_ascii=False)
                f.write("\n")


def run_chat(args, conn, send_one, receive_loop):
    """Read in a thread while sending our messages with pauses, then hang up cleanly:
    shut down our sending side and wait (bounded) for the peer's end of file."""
    reader = threading.Thread(target=receive_loop, daemon=True)
    reader.start()
    time.sleep(args.first_delay)
    for i, text in enumerate(args.messages):
        if i:
            time.sleep(args.pause)
        send_one(text)
    time.sleep(args.linger)
    conn.shutdown(socket.SHUT_WR)
    reader.join(timeout=5.0)
    conn.close()
