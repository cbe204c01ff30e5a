#!/usr/bin/env python3
"""cid.py FILE — the CID that `add?cid-version=1&raw-leaves=true&chunker=size-1048576`
gives FILE (UnixFS, balanced layout, at most 174 links per node, sha2-256),
computed locally. Reference for the Rust adapter's read check; checked against
js-ipfs 0.66.1 for 11 B, 900 KiB (one raw block), 3.1 MiB (one level) and
175 MiB (two levels). See docs/servers/ipfs.md."""
import base64, hashlib, sys

CHUNK = 1048576
MAX_LINKS = 174
RAW, DAG_PB, SHA2_256 = 0x55, 0x70, 0x12


def varint(n):
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def field(num, wire, value):  # protobuf: wire 0 = varint, 2 = bytes
    key = varint((num << 3) | wire)
    return key + (varint(value) if wire == 0 else varint(len(value)) + value)


def cid(codec, block):
    return bytes([1, codec, SHA2_256, 32]) + hashlib.sha256(block).digest()


def base32(c):
    return "b" + base64.b32encode(c).decode().lower().rstrip("=")


def node(children):
    """children: (cid, file bytes, cumulative block bytes). dag-pb: links first, then Data."""
    links = b"".join(field(2, 2, field(1, 2, c) + field(2, 2, b"") + field(3, 0, t))
                     for c, _, t in children)
    filesize = sum(f for _, f, _ in children)
    data = field(1, 0, 2) + field(3, 0, filesize) + b"".join(field(4, 0, f) for _, f, _ in children)
    block = links + field(1, 2, data)
    return cid(DAG_PB, block), filesize, len(block) + sum(t for _, _, t in children)


def file_cid(data):
    if len(data) <= CHUNK:  # one raw block: the CID is the sha256 of the bytes
        return base32(cid(RAW, data))
    level = [(cid(RAW, data[i:i + CHUNK]), len(data[i:i + CHUNK]), len(data[i:i + CHUNK]))
             for i in range(0, len(data), CHUNK)]
    while len(level) > 1:
        level = [node(level[i:i + MAX_LINKS]) for i in range(0, len(level), MAX_LINKS)]
    return base32(level[0][0])


if __name__ == "__main__":
    with open(sys.argv[1], "rb") as f:
        print(file_cid(f.read()))
