#!/usr/bin/env node
// Arweave format-2 transaction test vectors and protocol checks, made with the
// reference JS client (arweave 1.15.7) so that Cairn's Rust adapter can be
// tested without JS. See docs/servers/arweave.md.
//
//   node vectors.js generate        write vectors.json (new random signatures)
//   node vectors.js check           recompute every deterministic field of
//                                   vectors.json and verify its signatures
//   node vectors.js probe URL       run the protocol checks against a running
//                                   arlocal (e.g. http://127.0.0.1:1984) and
//                                   print a transcript; exits 1 if any
//                                   expectation fails
//
// NODE_PATH must reach arweave (start.sh/install.sh put it in
// $HOME/.cache/cairn-servers/arweave/node_modules).
'use strict';
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const Arweave = require('arweave');
const deepHash = require('arweave/node/lib/deepHash').default;
const merkle = require('arweave/node/lib/merkle');

const here = __dirname;
const jwk = JSON.parse(fs.readFileSync(path.join(here, 'test-wallet.json'), 'utf8'));
const ar = Arweave.init({});

const b64u = (buf) => Buffer.from(buf).toString('base64url');
const unb64u = (s) => Buffer.from(s, 'base64url');
const sha256 = (b) => crypto.createHash('sha256').update(b).digest();
const sha384 = (b) => crypto.createHash('sha384').update(b).digest();

// Deterministic payload: SHA-256(seed || u32be(i)) for i = 0, 1, ... concatenated,
// truncated to n bytes. No two 256 KiB chunks are equal (see arlocal's
// chunk de-duplication gotcha in the docs).
const SEED = 'cairn-arweave-test-vector';
function payload(n) {
  const out = Buffer.alloc(n);
  for (let i = 0, off = 0; off < n; i++, off += 32) {
    const ctr = Buffer.alloc(4);
    ctr.writeUInt32BE(i);
    sha256(Buffer.concat([Buffer.from(SEED), ctr])).copy(out, off, 0, Math.min(32, n - off));
  }
  return out;
}

const FIXED_ANCHOR = b64u(sha384(Buffer.from('cairn-arweave-test-anchor'))); // 48 bytes, like a block hash
const REWARD = '1000000';
const CASES = [
  { name: 'inline-1000', size: 1000 },
  { name: 'chunked-600KiB', size: 600 * 1024 },
  { name: 'rebalanced-263144', size: 256 * 1024 + 1000 },
  { name: 'exact-256KiB', size: 256 * 1024 },
  { name: 'exact-512KiB', size: 512 * 1024 },
  { name: 'empty', size: 0 },
];
function tagsFor(c) {
  const digest = sha256(payload(c.size)).toString('hex');
  return [
    ['Content-Type', 'application/octet-stream'],
    ['App-Name', 'Cairn'],
    ['Cairn-Path', `chunks/${digest.slice(0, 2)}/${digest}`],
  ];
}

async function buildTx(data, { lastTx, reward, tags }) {
  const tx = await ar.createTransaction({ data, last_tx: lastTx, reward }, jwk);
  for (const [n, v] of tags) tx.addTag(n, v);
  await tx.prepareChunks(data);
  return tx;
}
async function signTx(tx) {
  // Salt length 32 (= SHA-256 length), as the Arweave node itself signs. The
  // JS client's default in Node is the maximum salt length (478 bytes for a
  // 4096-bit key); nodes and arlocal verify with any salt length.
  await ar.transactions.sign(tx, jwk, { saltLength: 32 });
  return tx;
}
function verifyPss(ownerB64, message, sig, saltLength) {
  const key = crypto.createPublicKey({ key: { kty: 'RSA', n: ownerB64, e: 'AQAB' }, format: 'jwk' });
  return crypto.verify('sha256', message, { key, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength }, sig);
}

// The exact elements of the format-2 signature list, for debugging.
function signatureElements(tx) {
  return [
    { field: 'format', encoding: 'utf8', value: '2' },
    { field: 'owner', encoding: 'b64url-decoded', value: tx.owner },
    { field: 'target', encoding: 'b64url-decoded', value: tx.target },
    { field: 'quantity', encoding: 'utf8', value: tx.quantity },
    { field: 'reward', encoding: 'utf8', value: tx.reward },
    { field: 'last_tx', encoding: 'b64url-decoded', value: tx.last_tx },
    { field: 'tags', encoding: 'list of [name, value] lists, each b64url-decoded', value: tx.tags.map((t) => [t.name, t.value]) },
    { field: 'data_size', encoding: 'utf8 decimal', value: tx.data_size },
    { field: 'data_root', encoding: 'b64url-decoded', value: tx.data_root },
  ];
}

async function deepHashExamples() {
  const ex = async (desc, v) => ({ input: desc, sha384_deep_hash_b64url: b64u(await deepHash(v)) });
  const b = (s) => Buffer.from(s);
  return [
    await ex('blob ""', b('')),
    await ex('blob "abc"', b('abc')),
    await ex('list []', []),
    await ex('list [blob "a", list [blob "b", blob "c"]]', [b('a'), [b('b'), b('c')]]),
  ];
}

async function vectorFor(c) {
  const data = payload(c.size);
  const tags = tagsFor(c);
  const tx = await signTx(await buildTx(data, { lastTx: FIXED_ANCHOR, reward: REWARD, tags }));
  const sigData = await tx.getSignatureData();
  const chunks = c.size ? await merkle.chunkData(data) : [];
  const leaves = c.size ? await merkle.generateLeaves(chunks) : [];
  const json = tx.toJSON();
  const inline = tx.chunks.chunks.length <= 1;
  if (!inline || c.size > 1000) json.data = ''; // chunk upload, or omitted to keep the file small
  return {
    name: c.name,
    data_size: c.size,
    data_sha256_hex: sha256(data).toString('hex'),
    upload: c.size === 0 ? 'inline (no data)' : inline ? 'inline: POST /tx with data' : 'chunks: POST /tx with data "", then POST /chunk per chunk',
    tags_utf8: tags.map(([name, value]) => ({ name, value })),
    merkle_chunks: chunks.map((ch, i) => ({
      min_byte_range: ch.minByteRange,
      max_byte_range: ch.maxByteRange,
      data_hash_b64url: b64u(ch.dataHash),
      leaf_id_b64url: b64u(leaves[i].id),
    })),
    data_root: tx.data_root,
    chunk_uploads: tx.chunks.chunks.map((_, i) => {
      const ch = tx.getChunk(i, data);
      return { offset: ch.offset, data_path: ch.data_path, chunk_bytes: `payload[${tx.chunks.chunks[i].minByteRange}..${tx.chunks.chunks[i].maxByteRange}]` };
    }),
    signature_elements: signatureElements(tx),
    signature_data_deep_hash_b64url: b64u(sigData),
    tx: json,
    tx_data_omitted: json.data === '' && c.size > 0,
    ...(c.name === 'inline-1000'
      ? {
          other_signatures: [{
            salt_length: 478,
            signature: b64u(await ar.crypto.sign(jwk, sigData)),
            note: 'signature over the same deep hash made by arweave-js in Node without {saltLength}: maximum salt length ' +
              '(512 - 32 - 2 = 478 bytes). Valid on the network, whose nodes recover any salt length; a verifier fixed to salt 32 rejects it.',
          }],
        }
      : {}),
  };
}

async function generate() {
  const out = {
    comment: 'Arweave format-2 test vectors made with arweave-js 1.15.7 by scripts/servers/arweave/vectors.js. ' +
      'The wallet (test-wallet.json) is a THROWAWAY TEST KEY, never funded on any real network. ' +
      'RSA-PSS signatures are randomized: check signatures by verifying them (SHA-256, MGF1-SHA-256, salt length 32), never by equality; ' +
      'everything else is deterministic. See docs/servers/arweave.md.',
    wallet_file: 'test-wallet.json',
    owner: jwk.n,
    address: b64u(sha256(unb64u(jwk.n))),
    address_rule: 'base64url(SHA-256(base64url_decode(jwk.n)))',
    rsa_pss: { hash: 'SHA-256', mgf: 'MGF1-SHA-256', salt_length: 32, modulus_bits: 4096, public_exponent: 'AQAB' },
    payload_rule: `payload(n) = first n bytes of SHA-256(seed || u32_be(0)) || SHA-256(seed || u32_be(1)) || ..., seed = utf8 "${SEED}"`,
    fixed_last_tx: FIXED_ANCHOR,
    fixed_last_tx_rule: 'base64url(SHA-384(utf8 "cairn-arweave-test-anchor")) (48 bytes, the size of a block hash)',
    reward: REWARD,
    note_encoding_examples: [0, 1000, 262144, 614400].map((n) => ({ value: n, note_32_bytes_hex: Buffer.from(merkle.intToBuffer(n)).toString('hex') })),
    deep_hash_examples: await deepHashExamples(),
    transactions: [],
  };
  for (const c of CASES) out.transactions.push(await vectorFor(c));
  fs.writeFileSync(path.join(here, 'vectors.json'), JSON.stringify(out, null, 2) + '\n');
  console.error(`wrote vectors.json (${out.transactions.length} transactions)`);
}

async function check() {
  const v = JSON.parse(fs.readFileSync(path.join(here, 'vectors.json'), 'utf8'));
  let bad = 0;
  const expect = (ok, what) => { if (!ok) { bad++; console.error(`MISMATCH: ${what}`); } };
  expect(v.owner === jwk.n, 'owner');
  expect(v.address === b64u(sha256(unb64u(jwk.n))), 'address');
  expect(v.address === (await ar.wallets.jwkToAddress(jwk)), 'address vs arweave-js');
  expect(JSON.stringify(v.deep_hash_examples) === JSON.stringify(await deepHashExamples()), 'deep hash examples');
  for (const t of v.transactions) {
    const c = CASES.find((x) => x.name === t.name);
    const fresh = await vectorFor(c);
    for (const k of ['data_sha256_hex', 'data_root', 'merkle_chunks', 'chunk_uploads', 'signature_data_deep_hash_b64url']) {
      expect(JSON.stringify(fresh[k]) === JSON.stringify(t[k]), `${t.name}.${k}`);
    }
    const sig = unb64u(t.tx.signature);
    expect(t.tx.id === b64u(sha256(sig)), `${t.name}: id = base64url(SHA-256(signature))`);
    expect(verifyPss(t.tx.owner, unb64u(t.signature_data_deep_hash_b64url), sig, 32), `${t.name}: RSA-PSS salt 32 verifies`);
    const tx = ar.transactions.fromRaw({ ...t.tx, data: t.tx_data_omitted ? b64u(payload(t.data_size)) : t.tx.data });
    expect(b64u(await tx.getSignatureData()) === t.signature_data_deep_hash_b64url, `${t.name}: arweave-js signature data`);
    expect(await ar.transactions.verify(tx), `${t.name}: arweave-js verify`);
    for (const o of t.other_signatures || []) {
      expect(verifyPss(t.tx.owner, unb64u(t.signature_data_deep_hash_b64url), unb64u(o.signature), o.salt_length), `${t.name}: other signature, salt ${o.salt_length}`);
      expect(!verifyPss(t.tx.owner, unb64u(t.signature_data_deep_hash_b64url), unb64u(o.signature), 32), `${t.name}: other signature fails with salt 32`);
    }
  }
  console.log(bad ? `${bad} mismatches` : `vectors.json: all ${v.transactions.length} transactions check out`);
  process.exit(bad ? 1 : 0);
}

// ---------------------------------------------------------------------------
// probe: protocol checks against a running arlocal
async function probe(base) {
  let failures = 0;
  const show = (s) => console.log(s);
  const short = (s, n = 300) => (s.length > n ? `${s.slice(0, n)}… (${s.length} chars)` : s);
  async function req(method, p, body, { raw = false } = {}) {
    const init = { method, headers: {} };
    if (body !== undefined) {
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
      init.headers['content-type'] = 'application/json';
    }
    const res = await fetch(base + p, init);
    const buf = Buffer.from(await res.arrayBuffer());
    return { status: res.status, type: res.headers.get('content-type'), buf, text: raw ? '' : buf.toString('utf8') };
  }
  async function step(title, method, p, body, expectStatus, { showBody = true, bodyLabel } = {}) {
    const r = await req(method, p, body);
    const ok = expectStatus === undefined || r.status === expectStatus;
    if (!ok) failures++;
    show(`\n### ${title}\n${method} ${p}${body !== undefined ? `  body: ${bodyLabel || short(typeof body === 'string' ? body : JSON.stringify(body), 200)}` : ''}\n-> ${r.status} ${r.type || ''} ${showBody ? short(r.text.replace(/\s+/g, ' ')) : `(${r.buf.length} bytes)`}${ok ? '' : `   <-- EXPECTED ${expectStatus}`}`);
    return r;
  }
  const expect = (ok, what) => { if (!ok) failures++; show(`   ${ok ? 'ok' : 'FAILED'}: ${what}`); };
  const addr = await ar.wallets.jwkToAddress(jwk);
  const txBody = (tx) => JSON.stringify(tx.toJSON());
  const txLabel = (tx) => `{format:2, id:${tx.id}, data_size:"${tx.data_size}", data:${tx.data && tx.data.length ? `<${tx.data.length} bytes>` : '""'}, reward:"${tx.reward}", last_tx:"${tx.last_tx}", ...}`;

  await step('info', 'GET', '/info', undefined, 200);
  await step('balance of a new address', 'GET', `/wallet/${addr}/balance`, undefined, 200);
  await step('price of 1000 bytes (winston)', 'GET', '/price/1000', undefined, 200);
  await step('price of 614400 bytes', 'GET', '/price/614400', undefined, 200);
  let anchor = (await step('anchor', 'GET', '/tx_anchor', undefined, 200)).text;

  const small = payload(1000);
  const smallTags = [['Content-Type', 'application/octet-stream'], ['App-Name', 'Cairn'], ['Cairn-Path', 'chunks/ab/abcd0123']];
  let tx = await signTx(await buildTx(small, { lastTx: anchor, reward: '0', tags: smallTags }));
  await step('post before the wallet exists (no /mint yet)', 'POST', '/tx', txBody(tx), 410, { bodyLabel: txLabel(tx) });

  await step('mint 1 AR (10^12 winston)', 'GET', `/mint/${addr}/1000000000000`, undefined, 200);
  await step('balance', 'GET', `/wallet/${addr}/balance`, undefined, 200);

  // Tampered signature, id recomputed so that only the signature check can fail.
  const sig = unb64u(tx.signature);
  sig[100] ^= 1;
  const forged = { ...tx.toJSON(), signature: b64u(sig), id: b64u(sha256(sig)) };
  await step('tampered signature (id = SHA-256(new signature))', 'POST', '/tx', forged, 400, { bodyLabel: 'tx with one signature bit flipped' });
  await step('id that is not SHA-256(signature)', 'POST', '/tx', { ...tx.toJSON(), id: b64u(sha256(Buffer.from('x'))) }, 400, { bodyLabel: 'tx with a wrong id' });
  const otherData = Buffer.from(small); otherData[0] ^= 1;
  await step('inline data that does not match data_root', 'POST', '/tx', { ...tx.toJSON(), data: b64u(otherData) }, 400, { bodyLabel: 'tx with one data bit flipped' });
  const fixed = await signTx(await buildTx(small, { lastTx: FIXED_ANCHOR, reward: '0', tags: smallTags }));
  await step('last_tx that is neither "" nor a recent block nor the wallet\'s last tx', 'POST', '/tx', txBody(fixed), 400, { bodyLabel: txLabel(fixed) });
  const lying = await buildTx(small, { lastTx: anchor, reward: '0', tags: smallTags });
  lying.data_root = b64u(sha256(Buffer.from('not the data root'))); // signed over a wrong data_root
  await signTx(lying);
  await step('signed over a wrong data_root, data inline', 'POST', '/tx', txBody(lying), 400, { bodyLabel: txLabel(lying) });

  const before = Number((await req('GET', `/wallet/${addr}/balance`)).text);
  const r1 = await step('good inline tx, reward "0"', 'POST', '/tx', txBody(tx), 200, { bodyLabel: txLabel(tx) });
  const after = Number((await req('GET', `/wallet/${addr}/balance`)).text);
  show(`   balance ${before} -> ${after} (charged ${before - after}; /price/1000 = ${(await req('GET', '/price/1000')).text})`);
  expect(r1.text.includes(tx.id), 'the 200 body echoes the posted transaction JSON');
  await step('same tx posted again', 'POST', '/tx', txBody(tx), undefined, { bodyLabel: 'identical body' });
  await step('status while pending', 'GET', `/tx/${tx.id}/status`, undefined, 200);
  await step('pending tx header', 'GET', `/tx/${tx.id}`, undefined, 200);
  let d = await step('data while pending', 'GET', `/${tx.id}`, undefined, 200, { showBody: false });
  expect(d.buf.equals(small), 'GET /{id} returns the 1000 bytes while pending');
  await step('field while pending', 'GET', `/tx/${tx.id}/data_root`, undefined, 200);
  const pend = await step('pending list', 'GET', '/tx/pending', undefined, 200);
  await step('wallet last tx', 'GET', `/wallet/${addr}/last_tx`, undefined, 200);
  await step('mine one block', 'GET', '/mine', undefined, 200);
  await step('status after /mine', 'GET', `/tx/${tx.id}/status`, undefined, 200);
  await step('mine two more', 'GET', '/mine/2', undefined, 200);
  await step('status after /mine/2', 'GET', `/tx/${tx.id}/status`, undefined, 200);
  await step('tx header', 'GET', `/tx/${tx.id}`, undefined, 200);
  await step('a header field', 'GET', `/tx/${tx.id}/data_size`, undefined, 200);
  const rd = await step('inline data via /tx/{id}/data (base64url text)', 'GET', `/tx/${tx.id}/data`, undefined, 200);
  expect(rd.text === b64u(small), '/tx/{id}/data is base64url of the data');
  d = await step('data', 'GET', `/${tx.id}`, undefined, 200, { showBody: false });
  expect(d.buf.equals(small), 'GET /{id} returns the raw 1000 bytes');
  await step('HEAD data', 'HEAD', `/${tx.id}`, undefined, 200, { showBody: false });

  // Reward 0 and last_tx "" (accepted by arlocal).
  const emptyAnchor = await signTx(await buildTx(payload(10), { lastTx: '', reward: '0', tags: [['App-Name', 'Cairn']] }));
  await step('last_tx "" accepted', 'POST', '/tx', txBody(emptyAnchor), 200, { bodyLabel: txLabel(emptyAnchor) });
  // Anchor = the wallet's last tx id.
  const byLastTx = await signTx(await buildTx(payload(11), { lastTx: emptyAnchor.id, reward: '0', tags: [['App-Name', 'Cairn']] }));
  await step("last_tx = the wallet's last tx id accepted", 'POST', '/tx', txBody(byLastTx), 200, { bodyLabel: txLabel(byLastTx) });

  // Chunked upload of 600 KiB.
  anchor = (await req('GET', '/tx_anchor')).text;
  const big = payload(600 * 1024);
  const bigTx = await signTx(await buildTx(big, { lastTx: anchor, reward: '0', tags: [['Content-Type', 'application/octet-stream'], ['Cairn-Path', 'chunks/cd/cdef4567']] }));
  const bigJson = { ...bigTx.toJSON(), data: '' };
  await step('600 KiB: POST /tx without data', 'POST', '/tx', bigJson, 200, { bodyLabel: `{..., data:"", data_size:"${bigTx.data_size}", data_root:"${bigTx.data_root}"}` });
  await step('600 KiB: status right after the header, before any chunk', 'GET', `/tx/${bigTx.id}/status`, undefined, 200);
  for (let i = 0; i < bigTx.chunks.chunks.length; i++) {
    const ch = bigTx.getChunk(i, big);
    await step(`600 KiB: chunk ${i}`, 'POST', '/chunk', ch, 200, { bodyLabel: `{data_root, data_size:"${ch.data_size}", data_path:<${unb64u(ch.data_path).length} bytes>, offset:"${ch.offset}", chunk:<${unb64u(ch.chunk).length} bytes>}` });
  }
  await step('mine', 'GET', '/mine', undefined, 200);
  await step('600 KiB: status', 'GET', `/tx/${bigTx.id}/status`, undefined, 200);
  d = await step('600 KiB: data', 'GET', `/${bigTx.id}`, undefined, 200, { showBody: false });
  expect(d.buf.equals(big), 'GET /{id} returns the 614400 bytes');
  const emptyData = await step('600 KiB: /tx/{id}/data', 'GET', `/tx/${bigTx.id}/data`, undefined, 200, { showBody: false });
  expect(emptyData.buf.length === 0, '/tx/{id}/data is 200 with 0 bytes for a chunk-uploaded tx');
  await step('offset', 'GET', `/tx/${bigTx.id}/offset`, undefined, 200);

  // Chunk with a garbage proof: accepted?
  const junkTx = await signTx(await buildTx(payload(300 * 1024), { lastTx: anchor, reward: '0', tags: [['App-Name', 'Cairn']] }));
  await step('300 KiB: POST /tx without data', 'POST', '/tx', { ...junkTx.toJSON(), data: '' }, 200, { bodyLabel: '{..., data:""}' });
  const junk = junkTx.getChunk(0, payload(300 * 1024));
  await step('chunk with a garbage data_path and wrong bytes', 'POST', '/chunk', { ...junk, data_path: b64u(Buffer.alloc(64)), chunk: b64u(Buffer.alloc(1000, 7)) }, undefined, { bodyLabel: '{data_path: 64 zero bytes, chunk: 1000 bytes of 7}' });
  d = await step('data of that tx now', 'GET', `/${junkTx.id}`, undefined, 200, { showBody: false });
  show(`   GET /{id} returned ${d.buf.length} bytes (the tx says ${junkTx.data_size})`);

  // Repeated chunks: arlocal de-duplicates chunks by content.
  const zeros = Buffer.alloc(600 * 1024);
  const zTx = await signTx(await buildTx(zeros, { lastTx: anchor, reward: '0', tags: [['App-Name', 'Cairn']] }));
  await step('600 KiB of zeros: POST /tx without data', 'POST', '/tx', { ...zTx.toJSON(), data: '' }, 200, { bodyLabel: '{..., data:""}' });
  for (let i = 0; i < zTx.chunks.chunks.length; i++) await req('POST', '/chunk', zTx.getChunk(i, zeros));
  d = await step('600 KiB of zeros: data', 'GET', `/${zTx.id}`, undefined, 200, { showBody: false });
  show(`   GET /{id} returned ${d.buf.length} bytes of ${zeros.length} (two equal 256 KiB chunks were merged)`);

  // GraphQL lookup by tag.
  const q = (value) => ({
    query: `query($v: [String!]!) { transactions(tags: [{name: "Cairn-Path", values: $v}], first: 10) { pageInfo { hasNextPage } edges { cursor node { id owner { address } tags { name value } data { size } block { height id } } } } }`,
    variables: { v: [value] },
  });
  const g1 = await step('GraphQL: by tag Cairn-Path', 'POST', '/graphql', q('chunks/ab/abcd0123'), 200);
  expect(g1.text.includes(tx.id), 'finds the tx by its Cairn-Path tag');
  const g2 = await step('GraphQL: by a path that does not exist', 'POST', '/graphql', q('chunks/zz/none'), 200);
  expect(g2.text.includes('"edges":[]'), 'no match: empty edges');
  const pendTx = await signTx(await buildTx(payload(12), { lastTx: '', reward: '0', tags: [['Cairn-Path', 'chunks/ef/pending']] }));
  await req('POST', '/tx', txBody(pendTx));
  const g3 = await step('GraphQL: a pending (not yet mined) tx', 'POST', '/graphql', q('chunks/ef/pending'), 200);
  expect(g3.text.includes(pendTx.id), 'pending txs are found too (block: null)');
  await step('GraphQL: by id', 'POST', '/graphql', { query: `{ transaction(id: "${tx.id}") { id tags { name value } block { height } } }` }, 200);
  await step('GraphQL: two tag filters (AND), newest first', 'POST', '/graphql', { query: `{ transactions(tags: [{name: "App-Name", values: ["Cairn"]}, {name: "Content-Type", values: ["application/octet-stream"]}], owners: ["${addr}"], sort: HEIGHT_DESC) { edges { node { id block { height } } } } }` }, 200);

  const or = await step('GraphQL: one filter, two values (OR)', 'POST', '/graphql', { query: `{ transactions(tags: [{name: "Cairn-Path", values: ["chunks/ab/abcd0123", "chunks/cd/cdef4567"]}], owners: ["${addr}"]) { edges { node { id } } } }` }, 200);
  expect(or.text.includes(tx.id) && or.text.includes(bigTx.id), 'both paths found');
  const p1 = await step('GraphQL: paging, first: 1', 'POST', '/graphql', { query: `{ transactions(tags: [{name: "App-Name", values: ["Cairn"]}], first: 1, sort: HEIGHT_ASC) { pageInfo { hasNextPage } edges { cursor node { id } } } }` }, 200);
  const cursor = JSON.parse(p1.text).data.transactions.edges[0].cursor;
  const p2 = await step('GraphQL: next page (after: cursor)', 'POST', '/graphql', { query: `{ transactions(tags: [{name: "App-Name", values: ["Cairn"]}], first: 1, after: "${cursor}", sort: HEIGHT_ASC) { pageInfo { hasNextPage } edges { cursor node { id } } } }` }, 200);
  expect(JSON.parse(p2.text).data.transactions.edges[0].node.id !== JSON.parse(p1.text).data.transactions.edges[0].node.id, 'the second page holds another transaction');

  await step('unknown tx: status', 'GET', `/tx/${'A'.repeat(43)}/status`, undefined, 404);
  await step('unknown tx: data', 'GET', `/${'A'.repeat(43)}`, undefined, 404);
  await step('unknown tx: header', 'GET', `/tx/${'A'.repeat(43)}`, undefined, 404);
  await step('post with a missing field (no signature)', 'POST', '/tx', { ...tx.toJSON(), signature: undefined }, 400, { bodyLabel: 'tx without "signature"' });

  show(`\n${failures ? `${failures} expectation(s) FAILED` : 'all expectations met'}`);
  process.exit(failures ? 1 : 0);
}

const [cmd, arg] = process.argv.slice(2);
const run = { generate, check, probe: () => probe((arg || '').replace(/\/$/, '')) }[cmd];
if (!run || (cmd === 'probe' && !arg)) {
  console.error('usage: vectors.js generate | check | probe URL');
  process.exit(2);
}
run().catch((e) => { console.error(e); process.exit(1); });
