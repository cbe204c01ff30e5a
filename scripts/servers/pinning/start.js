#!/usr/bin/env node
// The IPFS Pinning Service API server for Cairn's tests, bound to 127.0.0.1
// only (the package's own CLI listens on every interface).
//
//   node start.js PORT TOKEN
//
// Requests must carry `Authorization: Bearer TOKEN`; each is validated
// against the spec's OpenAPI document (oas-tools). Prints one line once it
// listens: {"ready":true,"host":"127.0.0.1","port":PORT,"pid":PID}
'use strict';
const http = require('http');
const { setup } = require('mock-ipfs-pinning-service');

const [portArg, token] = process.argv.slice(2);
if (!/^\d+$/.test(portArg || '') || !token) {
  console.error('usage: start.js PORT TOKEN');
  process.exit(2);
}
const HOST = '127.0.0.1';
// Keep stdout for the ready line.
console.log = console.error;
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));

(async () => {
  const app = await setup({ token, loglevel: 'error' });
  const server = http.createServer(app);
  server.on('error', (err) => {
    console.error(`pinning service: cannot listen on ${HOST}:${portArg}: ${err.message}`);
    process.exit(1);
  });
  server.listen(Number(portArg), HOST, () => {
    const port = server.address().port;
    process.stdout.write(JSON.stringify({ ready: true, host: HOST, port, pid: process.pid }) + '\n');
  });
})().catch((err) => {
  console.error(`pinning service: failed to start: ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
