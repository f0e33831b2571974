#!/usr/bin/env python3
"""The two-person "Encrypted TCP Chat Room" that rchat grew out of, made scriptable.

Each side makes an RSA key pair with the `rsa` package at startup. The host listens, the joiner
connects, and the two public keys cross as PKCS#1 PEM ("-----BEGIN RSA PUBLIC KEY-----") with
a plain sendall: the host sends first, the joiner answers. Then every message goes out as one
sendall of rsa.encrypt(text, peer_key) (PKCS#1 v1.5: one block, 128 bytes at 1024 bits, 256
at 2048), and the reader does recv(1024) and rsa.decrypt. With --plain the keys are still
exchanged, but the messages go out as raw UTF-8 text.

  original_chat.py host --bits 1024 --key-out host-key "hi" "bye"
  original_chat.py join --bits 1024 --key-out join-key "hello"
"""
import rsa
from cryptography.hazmat.primitives import serialization

import peerlib


def main():
    args = peerlib.parse_args(
        __doc__.splitlines()[0],
        lambda p: p.add_argument("--plain", action="store_true",
                                 help="send the messages as text, not encrypted"))
    log = peerlib.Log(args, "original_chat.py", bits=args.bits,
                      encryption="none" if args.plain else "rsa-pkcs1v15")

    # Keys first, as the original did, then the connection.
    public, private = rsa.newkeys(args.bits)
    our_pem = public.save_pkcs1("PEM")
    log.data["key"] = dict(format="pem-pkcs1", wire_bytes=len(our_pem),
                           **peerlib.save_key(serialization.load_pem_public_key(our_pem),
                                              args.key_out, pem=our_pem))
    conn = peerlib.connect(args, timeout=60.0)

    # Key exchange: one sendall of our PEM, one recv(1024) of theirs.
    if args.role == "host":
        conn.sendall(our_pem)
        log.sent("key", our_pem)
        peer = rsa.PublicKey.load_pkcs1(conn.recv(1024))
    else:
        peer = rsa.PublicKey.load_pkcs1(conn.recv(1024))
        conn.sendall(our_pem)
        log.sent("key", our_pem)

    def send_one(text):
        plain = text.encode("utf-8")
        wire = plain if args.plain else rsa.encrypt(plain, peer)
        conn.sendall(wire)
        log.sent("message", wire, text=text, plain_bytes=len(plain))

    def receive_loop():
        while True:
            data = conn.recv(1024)
            if not data:
                return
            try:
                text = (data if args.plain else rsa.decrypt(data, private)).decode("utf-8")
            except (rsa.DecryptionError, UnicodeDecodeError) as e:
                text = "<unreadable: %s>" % e
            print("%s got: %s" % (args.name, text), flush=True)
            log.received(bytes=len(data), text=text)

    try:
        peerlib.run_chat(args, conn, send_one, receive_loop)
    finally:
        log.write()


if __name__ == "__main__":
    main()
