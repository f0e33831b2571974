#!/usr/bin/env python3
"""Chats built on the `cryptography` package, each with its own way of putting things on the wire.

  --mode prefix  keys as SubjectPublicKeyInfo DER, messages as RSA-OAEP (SHA-256) ciphertext,
                 each behind a 4-byte big-endian length
  --mode json    one JSON object per line: the key as {"n": ..., "e": ...} (decimal integers),
                 then {"from": NAME, "ct": BASE64 of the RSA-OAEP ciphertext} per message
  --mode hex     the key as a PEM "PUBLIC KEY" (SPKI) block, then one hex line of RSA-OAEP
                 ciphertext per message
  --mode fernet  no key exchange: both sides read a pre-shared Fernet key (--psk FILE) and send
                 one Fernet token per line

As in the original chat, the host sends its key first and the joiner answers.

  modern_chat.py host --mode hex --bits 1024 --key-out host-key "hi" "bye"
"""
import base64
import json

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

import peerlib

OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def recv_exact(reader, n):
    """n bytes from the buffered reader, or None at end of file."""
    data = reader.read(n)
    return data if len(data) == n else None


# Each mode: how our key goes out, how the peer's key is read, how a message is framed and how
# one is read back (None at end of file). `reader` is the socket's buffered reader.

def prefix_key(public):
    der = public.public_bytes(serialization.Encoding.DER,
                              serialization.PublicFormat.SubjectPublicKeyInfo)
    return len(der).to_bytes(4, "big") + der


def prefix_read_key(reader):
    size = int.from_bytes(recv_exact(reader, 4), "big")
    return serialization.load_der_public_key(recv_exact(reader, size))


def prefix_message(name, ct):
    return len(ct).to_bytes(4, "big") + ct


def prefix_read_message(reader):
    head = recv_exact(reader, 4)
    return head and recv_exact(reader, int.from_bytes(head, "big"))


def json_key(public):
    numbers = public.public_numbers()
    return (json.dumps({"n": numbers.n, "e": numbers.e}) + "\n").encode()


def json_read_key(reader):
    obj = json.loads(reader.readline())
    return rsa.RSAPublicNumbers(obj["e"], obj["n"]).public_key()


def json_message(name, ct):
    return (json.dumps({"from": name, "ct": base64.b64encode(ct).decode()}) + "\n").encode()


def json_read_message(reader):
    line = reader.readline()
    return line and base64.b64decode(json.loads(line)["ct"])


def hex_key(public):
    return public.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo)


def hex_read_key(reader):
    pem = b""
    while not pem.endswith(b"-----END PUBLIC KEY-----\n"):
        line = reader.readline()
        if not line:
            raise EOFError("the key ended early")
        pem += line
    return serialization.load_pem_public_key(pem)


def hex_message(name, ct):
    return ct.hex().encode() + b"\n"


def hex_read_message(reader):
    line = reader.readline()
    return line and bytes.fromhex(line.decode().strip())


MODES = {
    "prefix": (prefix_key, prefix_read_key, prefix_message, prefix_read_message, "der-spki"),
    "json": (json_key, json_read_key, json_message, json_read_message, "json-n-e"),
    "hex": (hex_key, hex_read_key, hex_message, hex_read_message, "pem-spki"),
}


def main():
    def options(p):
        p.add_argument("--mode", required=True, choices=sorted(MODES) + ["fernet"])
        p.add_argument("--psk", help="file holding the pre-shared Fernet key (--mode fernet)")
    args = peerlib.parse_args(__doc__.splitlines()[0], options)
    fernet = args.mode == "fernet"
    log = peerlib.Log(args, "modern_chat.py", mode=args.mode,
                      bits=None if fernet else args.bits,
                      encryption="fernet" if fernet else "rsa-oaep-sha256")

    if fernet:
        with open(args.psk, "rb") as f:
            box = Fernet(f.read().strip())
    else:
        private = rsa.generate_private_key(public_exponent=65537, key_size=args.bits)
        send_key, read_key, frame, read_message, key_format = MODES[args.mode]
        our_key = send_key(private.public_key())
        wire_pem = our_key if args.mode == "hex" else None
        log.data["key"] = dict(format=key_format, wire_bytes=len(our_key),
                               **peerlib.save_key(private.public_key(), args.key_out, wire_pem))
    conn = peerlib.connect(args, timeout=30.0)
    reader = conn.makefile("rb")

    # Key exchange (none for Fernet): the host first, then the joiner.
    peer = None
    if not fernet:
        if args.role == "host":
            conn.sendall(our_key)
            log.sent("key", our_key)
            peer = read_key(reader)
        else:
            peer = read_key(reader)
            conn.sendall(our_key)
            log.sent("key", our_key)

    def send_one(text):
        plain = text.encode("utf-8")
        if fernet:
            ct = box.encrypt(plain)
            wire = ct + b"\n"
        else:
            ct = peer.encrypt(plain, OAEP)
            wire = frame(args.name, ct)
        conn.sendall(wire)
        log.sent("message", wire, text=text, plain_bytes=len(plain), ct_bytes=len(ct))

    def receive_loop():
        while True:
            if fernet:
                line = reader.readline()
                ct = line and line.strip()
            else:
                ct = read_message(reader)
            if not ct:
                return
            try:
                text = (box.decrypt(ct) if fernet else private.decrypt(ct, OAEP)).decode()
            except (InvalidToken, ValueError) as e:
                text = "<unreadable: %r>" % e
            print("%s got: %s" % (args.name, text), flush=True)
            log.received(ct_bytes=len(ct), text=text)

    try:
        peerlib.run_chat(args, conn, send_one, receive_loop)
    finally:
        log.write()


if __name__ == "__main__":
    main()
