#!/usr/bin/env python3
"""Check vectors.json with an independent implementation written from
docs/servers/arweave.md (no JS, standard library only): address, deep hash,
chunking and data_root, data_path tails, chunk offsets, id = SHA-256(signature).
and RSA-PSS verification (EMSA-PSS-VERIFY, RFC 8017 9.1.2, with Python's
big integers), which also reports the salt length a signature used.

    python3 scripts/servers/arweave/check_vectors.py
"""
import base64
import hashlib
import json
import os

def b64u(b): return base64.urlsafe_b64encode(b).rstrip(b'=').decode()
def unb64u(s): return base64.urlsafe_b64decode(s + '=' * (-len(s) % 4))
sha256 = lambda b: hashlib.sha256(b).digest()
sha384 = lambda b: hashlib.sha384(b).digest()
def deep_hash(x):
    if isinstance(x, list):
        acc = sha384(b'list' + str(len(x)).encode())
        for item in x:
            acc = sha384(acc + deep_hash(item))
        return acc
    return sha384(sha384(b'blob' + str(len(x)).encode()) + sha384(x))
def mgf1(seed, length):
    out, c = b'', 0
    while len(out) < length:
        out += sha256(seed + c.to_bytes(4, 'big')); c += 1
    return out[:length]
def pss_salt_len(n_b64, message, sig):
    """Verify RSASSA-PSS (SHA-256, MGF1-SHA-256, e = 65537); return the salt length, or None."""
    n = int.from_bytes(unb64u(n_b64), 'big')
    em_bits = n.bit_length() - 1
    em_len = (em_bits + 7) // 8
    em = pow(int.from_bytes(sig, 'big'), 65537, n).to_bytes(em_len, 'big')
    if em[-1] != 0xbc: return None
    masked_db, h = em[:em_len - 33], em[em_len - 33:-1]
    db = bytearray(a ^ b for a, b in zip(masked_db, mgf1(h, em_len - 33)))
    db[0] &= 0xff >> (8 * em_len - em_bits)
    i = 0
    while i < len(db) and db[i] == 0: i += 1
    if i == len(db) or db[i] != 1: return None
    salt = bytes(db[i + 1:])
    return len(salt) if sha256(b'\0' * 8 + sha256(message) + salt) == h else None
MAX, MIN = 256*1024, 32*1024
def note(n): return n.to_bytes(32, 'big')
def chunk_ranges(n):
    out, cur, rest = [], 0, n
    while rest >= MAX:
        size = MAX
        nxt = rest - MAX
        if 0 < nxt < MIN: size = (rest + 1) // 2
        out.append((cur, cur + size)); cur += size; rest -= size
    out.append((cur, cur + rest))
    return out
def data_root(data):
    if len(data) == 0: return b''
    nodes = []
    for lo, hi in chunk_ranges(len(data)):
        nodes.append({'id': sha256(sha256(sha256(data[lo:hi])) + sha256(note(hi))), 'max': hi})
    while len(nodes) > 1:
        nxt = []
        for i in range(0, len(nodes), 2):
            if i + 1 == len(nodes): nxt.append(nodes[i]); continue
            l, r = nodes[i], nodes[i+1]
            nxt.append({'id': sha256(sha256(l['id']) + sha256(r['id']) + sha256(note(l['max']))), 'max': r['max']})
        nodes = nxt
    return nodes[0]['id']
def payload(n, seed=b'cairn-arweave-test-vector'):
    out = b''; i = 0
    while len(out) < n:
        out += sha256(seed + i.to_bytes(4, 'big')); i += 1
    return out[:n]
v = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'vectors.json')))
assert v['address'] == b64u(sha256(unb64u(v['owner'])))
assert v['fixed_last_tx'] == b64u(sha384(b'cairn-arweave-test-anchor'))
ex = {'blob ""': b'', 'blob "abc"': b'abc', 'list []': [], 'list [blob "a", list [blob "b", blob "c"]]': [b'a', [b'b', b'c']]}
for e in v['deep_hash_examples']:
    assert b64u(deep_hash(ex[e['input']])) == e['sha384_deep_hash_b64url'], e
for t in v['transactions']:
    data = payload(t['data_size'])
    assert hashlib.sha256(data).hexdigest() == t['data_sha256_hex']
    assert b64u(data_root(data)) == t['data_root'], t['name']
    tx = t['tx']
    lst = [b'2', unb64u(tx['owner']), unb64u(tx['target']), tx['quantity'].encode(), tx['reward'].encode(), unb64u(tx['last_tx']),
           [[unb64u(g['name']), unb64u(g['value'])] for g in tx['tags']], tx['data_size'].encode(), unb64u(tx['data_root'])]
    assert b64u(deep_hash(lst)) == t['signature_data_deep_hash_b64url'], t['name']
    assert tx['id'] == b64u(sha256(unb64u(tx['signature'])))
    salt = pss_salt_len(tx['owner'], deep_hash(lst), unb64u(tx['signature']))
    assert salt == 32, (t['name'], salt)
    bad = bytearray(unb64u(tx['signature'])); bad[100] ^= 1
    assert pss_salt_len(tx['owner'], deep_hash(lst), bytes(bad)) is None
    for o in t.get('other_signatures', []):
        assert pss_salt_len(tx['owner'], deep_hash(lst), unb64u(o['signature'])) == o['salt_length'], t['name']
    # proofs: leaf proof = data_hash || note(max); branch = left_id || right_id || note(left max)
    for up, (lo, hi) in zip(t['chunk_uploads'], [r for r in chunk_ranges(len(data)) if r[1] > r[0]]):
        assert int(up['offset']) == hi - 1
        p = unb64u(up['data_path'])
        assert p[-64:] == sha256(data[lo:hi]) + note(hi), t['name']
    print('ok', t['name'], 'data_root', t['data_root'] or '""', 'signature salt', salt)
print('vectors.json: all transactions check out')
