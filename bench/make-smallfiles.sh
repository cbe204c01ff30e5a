#!/usr/bin/env bash
# Build the small-files data set in two versions:
#
#   DIR/v1/dNN/sNN/fNNNNN.{txt,bin}   FILES files (default 30000) in 300
#                                     directories, sizes from 2 KiB to
#                                     256 KiB, most of them small (median
#                                     ~7 KiB, mean ~31 KiB; u uniform in
#                                     [0,1), size = 2 KiB * 128^(u^2));
#                                     60% text-like (compresses ~3x), 40%
#                                     random bytes (incompressible)
#   DIR/v2/...                        the same tree (hard links to v1),
#                                     except that 1% of the files have a
#                                     region rewritten in place, same size
#   DIR/changed.txt                   the changed files, relative to v1/
#   DIR/.bench-small                  the parameters, to reuse the set
#
# Usage: bench/make-smallfiles.sh DIR [FILES]
# Deterministic for a given FILES (seeded), so every run backs up the same
# bytes. Needs python3.
set -euo pipefail

DIR=${1:?usage: make-smallfiles.sh DIR [FILES]}
FILES=${2:-30000}
case $FILES in '' | *[!0-9]* | 0) echo "make-smallfiles: FILES must be a positive integer, got '$FILES'" >&2; exit 2 ;; esac

rm -rf "$DIR/v1" "$DIR/v2" "$DIR/changed.txt" "$DIR/.bench-small"
mkdir -p "$DIR/v1"
echo "make-smallfiles: $FILES files into $DIR/v1" >&2
python3 - "$DIR" "$FILES" <<'EOF'
import os, random, sys

root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(20261204)
# A vocabulary with a skewed (Zipf-like) use, so text compresses about as
# source code and logs do, and a corpus to cut text files from.
vocab = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz_") for _ in range(rng.randint(2, 12))) for _ in range(5000)]
weights = [1.0 / (i + 1) for i in range(len(vocab))]
words = rng.choices(vocab, weights, k=1_200_000)
lines, line = [], []
for w in words:
    line.append(w)
    if len(line) >= rng.randint(4, 14):
        lines.append("    " * rng.randint(0, 3) + " ".join(line) + ";\n")
        line = []
corpus = "".join(lines).encode()
dirs = 300
for i in range(n):
    d = os.path.join(root, "v1", "d%02d" % (i % 50), "s%02d" % (i // 50 % 6))
    if i < dirs:
        os.makedirs(d, exist_ok=True)
    size = int(2048 * 128 ** (rng.random() ** 2))
    if rng.random() < 0.6:
        off = rng.randrange(0, len(corpus) - size)
        data, ext = corpus[off:off + size], "txt"
    else:
        data, ext = rng.randbytes(size), "bin"
    with open(os.path.join(d, "f%05d.%s" % (i, ext)), "wb") as f:
        f.write(data)
EOF

echo "make-smallfiles: v2 (1% of the files rewritten in part, in place)" >&2
cp -al "$DIR/v1" "$DIR/v2"
python3 - "$DIR" <<'EOF'
import os, random, sys

root = sys.argv[1]
rng = random.Random(4)
files = sorted(
    os.path.relpath(os.path.join(dp, f), os.path.join(root, "v1"))
    for dp, _, fs in os.walk(os.path.join(root, "v1")) for f in fs
)
changed = sorted(rng.sample(files, max(1, len(files) // 100)))
for rel in changed:
    src, dst = os.path.join(root, "v1", rel), os.path.join(root, "v2", rel)
    data = bytearray(open(src, "rb").read())
    n = max(256, len(data) // 8)
    off = rng.randrange(0, max(1, len(data) - n))
    data[off:off + n] = rng.randbytes(min(n, len(data) - off))
    os.unlink(dst)  # a hard link to v1's file: v1 keeps its bytes
    with open(dst, "wb") as f:
        f.write(data)
with open(os.path.join(root, "changed.txt"), "w") as f:
    f.write("".join(c + "\n" for c in changed))
EOF
echo "files=$FILES" >"$DIR/.bench-small"
du -sb "$DIR/v1" >&2
echo "make-smallfiles: $(wc -l <"$DIR/changed.txt") files differ in v2" >&2
