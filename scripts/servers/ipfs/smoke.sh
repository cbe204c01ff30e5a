#!/usr/bin/env bash
# smoke.sh — install js-ipfs if needed, start a throwaway node on a free
# loopback port, round-trip an object the way docs/servers/ipfs.md recommends
# (add raw block + files/cp into MFS + pin/rm; files/stat + cat + CID check;
# files/rm), stop the node by its PID and remove its directory.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
"$HERE/install.sh"

DIR=$(mktemp -d /tmp/cairn-ipfs-smoke.XXXXXX)
PORT=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
PID=
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID"; for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$PID" 2>/dev/null || true
  fi
  rm -rf "$DIR"
}
trap cleanup EXIT

"$HERE/start.sh" "$DIR/repo" "$PORT" >"$DIR/log" 2>&1 &
PID=$!
"$HERE/wait.sh" "$PORT" 60 "$DIR/repo" || { cat "$DIR/log" >&2; exit 1; }
A=http://127.0.0.1:$PORT/api/v0
fail() { echo "smoke: $*" >&2; exit 1; }

head -c 921600 /dev/urandom >"$DIR/obj"
want="b$(node -e "
const h=require('crypto').createHash('sha256').update(require('fs').readFileSync(process.argv[1])).digest()
const b=Buffer.concat([Buffer.from([1,0x55,0x12,0x20]),h]); const al='abcdefghijklmnopqrstuvwxyz234567'
let bits=0,v=0,o=''; for (const x of b){v=(v<<8)|x;bits+=8;while(bits>=5){o+=al[(v>>>(bits-5))&31];bits-=5}} if(bits>0)o+=al[(v<<(5-bits))&31]
console.log(o)" "$DIR/obj")"

cid=$(curl -fsS -X POST -F "file=@$DIR/obj;type=application/octet-stream" \
  "$A/add?cid-version=1&raw-leaves=true&chunker=size-1048576&pin=true&cid-base=base32&timeout=30s" \
  | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).Hash))')
[ "$cid" = "$want" ] || fail "add returned $cid, expected $want"
curl -fsS -X POST "$A/files/cp?arg=/ipfs/$cid&arg=/cairn/chunks/ab/abcd&parents=true&timeout=30s" >/dev/null
curl -fsS -X POST "$A/pin/rm?arg=$cid&timeout=30s" >/dev/null
stat=$(curl -fsS -X POST "$A/files/stat?arg=/cairn/chunks/ab/abcd&timeout=10s")
case $stat in *'"Size":921600'*) ;; *) fail "files/stat: $stat";; esac
curl -fsS -X POST "$A/cat?arg=$cid&timeout=30s" | cmp -s - "$DIR/obj" || fail "cat differs"
curl -fsS -X POST "$A/files/read?arg=/cairn/chunks/ab/abcd&timeout=30s" | cmp -s - "$DIR/obj" || fail "files/read differs"
curl -fsS -X POST "$A/files/rm?arg=/cairn/chunks/ab/abcd&timeout=10s" >/dev/null
code=$(curl -sS -o /dev/null -w '%{http_code}' -X POST "$A/files/stat?arg=/cairn/chunks/ab/abcd&timeout=10s")
[ "$code" = 500 ] || fail "files/stat after rm answered $code"
echo "smoke: js-ipfs on 127.0.0.1:$PORT OK ($cid)"
