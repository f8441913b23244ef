#!/usr/bin/env python3
"""Captures raw CopyData payloads of START_REPLICATION (PostgreSQL docs 55.4).

Called by capture.sh as `capture_copydata.py SOCKET_DIR SLOT OUT_DIR`: speaks
the frontend/backend protocol by hand over the Unix socket (trust auth,
replication=database), starts logical replication from SLOT with pgoutput
protocol version 1 and saves, as sent by the server:

  pg15_copydata_xlogdata.bin          the first XLogData ('w'): a Begin
  pg15_copydata_keepalive.bin         the first keepalive ('k') not asking
                                      for a reply
  pg15_copydata_keepalive_reply.bin   the first keepalive asking for a reply
                                      (wal_sender_timeout / 2 without one)

Standard library only.
"""

import os
import socket
import struct
import sys


def message(sock):
    """One backend message: (type byte, body)."""
    head = recv_exact(sock, 5)
    kind, length = head[:1], struct.unpack("!i", head[1:])[0]
    return kind, recv_exact(sock, length - 4)


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            sys.exit("server closed the connection")
        data += chunk
    return data


def main():
    socket_dir, slot, out = sys.argv[1:4]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(os.path.join(socket_dir, ".s.PGSQL.5432"))
    params = b"".join(
        k + b"\0" + v + b"\0"
        for k, v in [
            (b"user", b"postgres"),
            (b"database", b"postgres"),
            (b"replication", b"database"),
        ]
    ) + b"\0"
    sock.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
    while True:
        kind, body = message(sock)
        if kind == b"E":
            sys.exit(f"startup failed: {body!r}")
        if kind == b"R" and struct.unpack("!i", body[:4])[0] != 0:
            sys.exit("expected trust authentication")
        if kind == b"Z":
            break
    query = (
        f"START_REPLICATION SLOT {slot} LOGICAL 0/0 "
        "(proto_version '1', publication_names 'pub')"
    ).encode() + b"\0"
    sock.sendall(b"Q" + struct.pack("!i", 4 + len(query)) + query)
    kind, body = message(sock)
    if kind != b"W":
        sys.exit(f"expected CopyBothResponse, got {kind!r}: {body!r}")
    wanted = {
        "xlogdata": lambda p: p[:1] == b"w" and p[25:26] == b"B",
        "keepalive": lambda p: p[:1] == b"k" and p[17] == 0,
        "keepalive_reply": lambda p: p[:1] == b"k" and p[17] == 1,
    }
    while wanted:
        kind, payload = message(sock)
        if kind != b"d":
            sys.exit(f"expected CopyData, got {kind!r}: {payload!r}")
        for name, matches in list(wanted.items()):
            if matches(payload):
                with open(os.path.join(out, f"pg15_copydata_{name}.bin"), "wb") as f:
                    f.write(payload)
                del wanted[name]
                break
    sock.close()


if __name__ == "__main__":
    main()
