#!/usr/bin/env python3
"""An auditor's own check of a Cairn compliance document, with Python's
standard library alone: no Cairn code, no database, no broker.

    python3 check-compliance.py DOCUMENT.json LOG.pub

It checks what `cairn audit check-proof` checks, from the published formats:
  1. the checkpoint is a C2SP signed note, signed by the log's Ed25519 key
     (RFC 8032) and naming that log as its origin;
  2. every entry's RFC 6962 inclusion proof leads to the checkpoint's root;
  3. every entry decodes (MessagePack) to an event of the kind it claims;
  4. every finding cites, for each ledger entry it rests on, an entry in the
     document of that kind and of its backup (or a repository-wide one); a
     cited entry newer than the checkpoint, with no proof, fails the check;
  5. the tally adds up.
Exit 0 when everything holds, 1 with the reason otherwise.
"""

import base64
import hashlib
import json
import struct
import sys

# --- Ed25519 verification (RFC 8032, section 5.1.7) -----------------------

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def recover_x(y, sign):
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P:
        return None
    if (x & 1) != sign:
        x = P - x
    return x


def point_add(a, b):
    # Extended coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, xy = T/Z.
    pa = (a[1] - a[0]) * (b[1] - b[0]) % P
    pb = (a[1] + a[0]) * (b[1] + b[0]) % P
    pc = 2 * a[3] * b[3] * D % P
    pd = 2 * a[2] * b[2] % P
    e, f, g, h = pb - pa, pd - pc, pd + pc, pb + pa
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def point_mul(s, pt):
    q = (0, 1, 1, 0)
    while s:
        if s & 1:
            q = point_add(q, pt)
        pt = point_add(pt, pt)
        s >>= 1
    return q


def point_eq(a, b):
    return (a[0] * b[2] - b[0] * a[2]) % P == 0 and (a[1] * b[2] - b[1] * a[2]) % P == 0


def decompress(s):
    if len(s) != 32:
        return None
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % P)


GY = 4 * pow(5, P - 2, P) % P
GX = recover_x(GY, 0)
BASE = (GX, GY, 1, GX * GY % P)


def ed25519_verify(public, message, signature):
    a = decompress(public)
    if a is None or len(signature) != 64:
        return False
    r = decompress(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if r is None or s >= L:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(), "little") % L
    return point_eq(point_mul(s, BASE), point_add(r, point_mul(h, a)))


# --- C2SP signed notes and checkpoints -------------------------------------


def verify_note(note, vkey):
    """The checkpoint (origin, size, root) of a note signed by `vkey`
    (`name+hash+base64(0x01 || key)`), or an exception saying why not."""
    # The key (base64) may itself hold "+": split on the first two only.
    name, key_hash, key_b64 = vkey.strip().split("+", 2)
    key = base64.b64decode(key_b64)
    if key[0] != 1 or len(key) != 33:
        raise ValueError("the log key is not an Ed25519 verifier key")
    expected_hash = hashlib.sha256(name.encode() + b"\n" + key).digest()[:4]
    if expected_hash.hex() != key_hash:
        raise ValueError("the log key's hash does not match its name and key")
    text, sep, sigs = note.partition("\n\n")
    if not sep:
        raise ValueError("the checkpoint is not a signed note")
    text += "\n"
    signed = False
    for line in sigs.splitlines():
        if not line.startswith("\u2014 "):
            continue
        who, sig_b64 = line[2:].rsplit(" ", 1)
        sig = base64.b64decode(sig_b64)
        if who == name and sig[:4] == expected_hash:
            if not ed25519_verify(key[1:], text.encode(), sig[4:]):
                raise ValueError("the checkpoint's signature by %s is not valid" % name)
            signed = True
    if not signed:
        raise ValueError("the checkpoint carries no signature by %s" % name)
    lines = text.split("\n")
    origin, size, root = lines[0], int(lines[1]), base64.b64decode(lines[2])
    if origin != name:
        raise ValueError("the checkpoint is of log %r, not %r" % (origin, name))
    return origin, size, root


# --- RFC 6962 / RFC 9162 inclusion proofs -----------------------------------


def leaf_hash(entry):
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(index, size, leaf, proof, root):
    """RFC 9162, section 2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


# --- MessagePack, just enough for an entry ---------------------------------


def unpack(b, i=0):
    """One MessagePack value at b[i:]; returns (value, next index)."""
    t = b[i]
    if t <= 0x7F:
        return t, i + 1
    if t >= 0xE0:
        return t - 0x100, i + 1
    if 0x80 <= t <= 0x8F:
        return unpack_map(b, i + 1, t & 0x0F)
    if 0x90 <= t <= 0x9F:
        return unpack_array(b, i + 1, t & 0x0F)
    if 0xA0 <= t <= 0xBF:
        n = t & 0x1F
        return b[i + 1 : i + 1 + n].decode(), i + 1 + n
    fixed = {0xC0: None, 0xC2: False, 0xC3: True}
    if t in fixed:
        return fixed[t], i + 1
    sizes = {0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q", 0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q", 0xCA: ">f", 0xCB: ">d"}
    if t in sizes:
        n = struct.calcsize(sizes[t])
        return struct.unpack(sizes[t], b[i + 1 : i + 1 + n])[0], i + 1 + n
    lengths = {0xD9: (1, "s"), 0xDA: (2, "s"), 0xDB: (4, "s"), 0xC4: (1, "b"), 0xC5: (2, "b"), 0xC6: (4, "b"),
               0xDC: (2, "a"), 0xDD: (4, "a"), 0xDE: (2, "m"), 0xDF: (4, "m")}
    if t in lengths:
        w, what = lengths[t]
        n = int.from_bytes(b[i + 1 : i + 1 + w], "big")
        j = i + 1 + w
        if what == "s":
            return b[j : j + n].decode(), j + n
        if what == "b":
            return bytes(b[j : j + n]), j + n
        if what == "a":
            return unpack_array(b, j, n)
        return unpack_map(b, j, n)
    raise ValueError("MessagePack type 0x%02x is not expected in an entry" % t)


def unpack_array(b, i, n):
    out = []
    for _ in range(n):
        v, i = unpack(b, i)
        out.append(v)
    return out, i


def unpack_map(b, i, n):
    out = {}
    for _ in range(n):
        k, i = unpack(b, i)
        v, i = unpack(b, i)
        out[k] = v
    return out, i


# --- the document ------------------------------------------------------------


def check(doc, vkey):
    if doc.get("format") != "cairn-compliance@v1":
        raise ValueError("not a cairn-compliance@v1 document")
    kinds = {}
    size = 0
    if doc.get("checkpoint"):
        origin, size, root = verify_note(doc["checkpoint"], vkey)
        for e in doc["entries"]:
            if not isinstance(e["seq"], int) or not 1 <= e["seq"] <= size:
                raise ValueError("entry %r is outside the checkpoint of size %d" % (e["seq"], size))
            entry = base64.b64decode(e["entry"])
            proof = [base64.b64decode(h) for h in e["proof"]]
            if not verify_inclusion(e["seq"] - 1, size, leaf_hash(entry), proof, root):
                raise ValueError("entry %d is not in the log at this place" % e["seq"])
            envelope, _ = unpack(entry)
            kind = envelope["event"]["kind"]
            if kind != e["kind"]:
                raise ValueError("entry %d is %s, not %s" % (e["seq"], kind, e["kind"]))
            kinds[e["seq"]] = (kind, envelope["backup_id"])
    elif doc["entries"]:
        raise ValueError("proven entries without a checkpoint")
    unproven = set()
    tally = {"backups": len(doc["backups"]), "passed": 0, "failed": 0, "not_applicable": 0}
    names = {"pass": "passed", "fail": "failed", "not_applicable": "not_applicable"}
    for b in doc["backups"]:
        for f in b["findings"]:
            tally[names[f["verdict"]]] += 1
            for c in f["evidence"]:
                if c["type"] != "entry":
                    continue
                seq, kind = c["seq"], c["kind"]
                if seq in kinds:
                    if kinds[seq][0] != kind:
                        raise ValueError("%s rule %s cites entry %d as %s; it is %s" % (b["backup_id"], f["rule"], seq, kind, kinds[seq][0]))
                    if kinds[seq][1] not in (b["backup_id"], "repo"):
                        raise ValueError("%s rule %s cites entry %d, an entry of backup %s" % (b["backup_id"], f["rule"], seq, kinds[seq][1]))
                elif seq in doc["unproven"] and seq > size:
                    unproven.add(seq)
                else:
                    raise ValueError("%s rule %s cites entry %d, which the document does not prove" % (b["backup_id"], f["rule"], seq))
    if tally != doc["tally"]:
        raise ValueError("the tally %r is not what the findings add up to (%r)" % (doc["tally"], tally))
    if unproven:
        raise ValueError("%d cited entries are newer than the checkpoint and carry no proof: %s"
                         % (len(unproven), sorted(unproven)))
    return size, len(kinds), tally


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[3].strip(), file=sys.stderr)
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        doc = json.load(f)
    try:
        vkey = open(sys.argv[2], encoding="utf-8").read()
    except OSError:
        vkey = sys.argv[2]
    try:
        size, proven, tally = check(doc, vkey)
    except (ValueError, KeyError, IndexError) as e:
        print("NOT VALID: %s" % e, file=sys.stderr)
        return 1
    print("valid: %d backups, %d passed, %d failed, %d not applicable; %d cited entries proven against the checkpoint of size %d"
          % (tally["backups"], tally["passed"], tally["failed"], tally["not_applicable"], proven, size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
