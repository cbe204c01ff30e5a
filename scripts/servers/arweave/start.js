#!/usr/bin/env node
// Start arlocal (a local Arweave gateway) bound to 127.0.0.1 only, for Cairn's
// tests. Runs in the foreground; stop it by killing its PID (SIGTERM/SIGKILL).
//
//   node start.js DIR PORT [--persist]
//
// DIR   data directory (created if missing). The SQLite database and the
//       transaction data files go to DIR/db; arlocal's request log goes to
//       DIR/logs (arlocal appends to "./logs" in its working directory, so
//       this script changes into DIR first).
// PORT  TCP port on 127.0.0.1; 0 picks a free one.
// --persist  keep DIR/db from an earlier run (default: start empty).
//
// Needs NODE_PATH (or a node_modules above this file) that holds arlocal;
// start.sh sets it to the cache filled by install.sh.
//
// Prints one line to stdout once GET /info answers:
//   {"ready":true,"host":"127.0.0.1","port":PORT,"pid":PID,"db":"DIR/db"}
'use strict';
const fs = require('fs');
const http = require('http');
const path = require('path');

const args = process.argv.slice(2);
const persist = args.includes('--persist');
const pos = args.filter((a) => !a.startsWith('--'));
if (pos.length !== 2 || !/^\d+$/.test(pos[1])) {
  console.error('usage: start.js DIR PORT [--persist]');
  process.exit(2);
}
const dir = path.resolve(pos[0]);
const port = Number(pos[1]);
const HOST = '127.0.0.1';

fs.mkdirSync(dir, { recursive: true });
process.chdir(dir);
const dbPath = path.join(dir, 'db');

// arlocal prints to stdout with console.log; keep stdout for the ready line.
console.log = console.error;
const ArLocal = require('arlocal').default;
// ArLocal(port, showLogs, dbPath, persist)
const arlocal = new ArLocal(port, false, dbPath, persist);

// arlocal calls koa's app.listen(port, cb), which binds every interface.
// Bind to loopback instead.
let server;
arlocal.app.listen = function (_port, cb) {
  server = http.createServer(this.callback());
  server.on('error', (err) => {
    console.error(`arlocal: cannot listen on ${HOST}:${port}: ${err.message}`);
    process.exit(1);
  });
  return server.listen(port, HOST, cb);
};

function getInfo(p) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: HOST, port: p, path: '/info', timeout: 2000 }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`status ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
  });
}

// Exit at once on SIGTERM/SIGINT. (Registered before arlocal.start(): Apollo
// Server inside arlocal adds its own handlers that stop gracefully, ~1 s.)
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));

(async () => {
  await arlocal.start();
  if (!server.listening) await new Promise((r) => server.once('listening', r));
  const actual = server.address().port;
  for (let i = 0; ; i++) {
    try {
      await getInfo(actual);
      break;
    } catch (e) {
      if (i >= 100) throw new Error(`GET /info did not answer: ${e.message}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  process.stdout.write(JSON.stringify({ ready: true, host: HOST, port: actual, pid: process.pid, db: dbPath }) + '\n');
})().catch((err) => {
  console.error(`arlocal: failed to start: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
