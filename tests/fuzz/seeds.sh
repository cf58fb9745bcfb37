#!/usr/bin/env bash
# seeds.sh OUT: the seed corpus of every target of targets.txt, as OUT/<target>/ (rebuilt from scratch).
# Made at test time from the captured SDK payloads (tests/fixtures/sdk and, when present, the shared
# fixtures beside the checkout: GW_SHARED_FIXTURES), the configs of tests/config and deploy/, and the
# small hand-made seeds of tests/fuzz/seeds/<kind>/. Files are named by their SHA-1, so copies collapse.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:?usage: seeds.sh OUT}
shared=${GW_SHARED_FIXTURES:-$root/../shared/fixtures}

fixtures() { # fixtures GLOB...: the SDK payloads matching any glob, from both places
  local d g
  for d in "$root/tests/fixtures/sdk" "$shared"; do
    [ -d "$d" ] || continue
    for g in "$@"; do
      compgen -G "$d/$g" || true
    done
  done
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# kind_files KIND: one file per seed of that kind, made in $tmp/KIND/ (once).
kind_files() {
  local kind=$1 dir=$tmp/$1 f t l n=0
  if [ ! -d "$dir" ]; then
    mkdir -p "$dir"
    case $kind in
    traces-pb) for f in $(fixtures '*-1.pb' | grep -v -- -logs-); do cp "$f" "$dir/$((n++))"; done ;;
    traces-json) for f in $(fixtures '*-1.json' | grep -v -- -logs-); do cp "$f" "$dir/$((n++))"; done ;;
    logs-pb) for f in $(fixtures '*-logs-1.pb'); do cp "$f" "$dir/$((n++))"; done ;;
    logs-json) for f in $(fixtures '*-logs-1.json'); do cp "$f" "$dir/$((n++))"; done ;;
    gzip) # every payload gzipped, and two members back to back (RFC 1952 §2.2)
      for f in $(fixtures '*-1.pb' '*-1.json'); do
        gzip -9nc "$f" >"$dir/$n"
        n=$((n + 1))
      done
      [ "$n" -lt 2 ] || cat "$dir/0" "$dir/1" >"$dir/$n"
      ;;
    zstd) # every payload as zstd: its size stated (from a file), streamed with a checksum (from stdin: no size
      # stated), and two frames with a skippable one between
      for f in $(fixtures '*-1.pb' '*-1.json'); do
        zstd -q -19 -c "$f" >"$dir/$n"
        zstd -q -3 -C -c <"$f" >"$dir/$((n + 1))"
        n=$((n + 2))
      done
      [ "$n" -lt 2 ] || { cat "$dir/0"; printf '\x50\x2a\x4d\x18\x02\x00\x00\x00ab'; cat "$dir/1"; } >"$dir/$n"
      ;;
    lz4) # every payload as an LZ4 frame: as streamed (no size, independent blocks) and from a file (its size
      # stated, 64 KiB linked blocks with their checksums)
      for f in $(fixtures '*-1.pb' '*-1.json'); do
        lz4 -q -c <"$f" >"$dir/$n"
        lz4 -q -c -B4 -BD -BX --content-size "$f" >"$dir/$((n + 1))"
        n=$((n + 2))
      done
      ;;
    snappy) # every payload as a snappy block and framed (tests/lib/snappy.mjs)
      fixtures '*-1.pb' '*-1.json' | GW_OUT=$dir GW_SNAPPY=$root/tests/lib/snappy.mjs node --input-type=module -e '
        import fs from "node:fs";
        const { snappyBlock, snappyFramed } = await import(process.env.GW_SNAPPY);
        let n = 0;
        for (const f of fs.readFileSync(0, "utf8").split("\n").filter(Boolean)) {
          const b = fs.readFileSync(f);
          fs.writeFileSync(`${process.env.GW_OUT}/b${n}`, snappyBlock(b));
          fs.writeFileSync(`${process.env.GW_OUT}/f${n++}`, snappyFramed(b, { chunkSize: 4096 }));
        }'
      ;;
    content) # JSON text the pipeline redacts: message arrays and request/response bodies in string attributes
      # of the JSON payloads, and the manifests (objects full of the PII the clients sent)
      fixtures '*-1.json' | GW_OUT=$dir node -e '
        const fs = require("fs"); let n = 0; const seen = new Set();
        const walk = (v) => {
          if (Array.isArray(v)) return v.forEach(walk);
          if (v && typeof v === "object") return Object.values(v).forEach(walk);
          if (typeof v === "string" && /^\s*[\[{]/.test(v) && !seen.has(v) && v.length < 60000) {
            seen.add(v); fs.writeFileSync(process.env.GW_OUT + "/j" + n++, v);
          }
        };
        for (const f of fs.readFileSync(0, "utf8").split("\n").filter(Boolean)) walk(JSON.parse(fs.readFileSync(f)));'
      for f in $(fixtures '*.manifest.json'); do cp "$f" "$dir/m$((n++))"; done
      ;;
    yaml) for f in "$root"/tests/config/*.yaml "$root"/deploy/*.yaml; do cp "$f" "$dir/$((n++))"; done ;;
    pair-pb) # fuzz_langfuse: 2-byte length, a traces body, a logs body (the same SDK and protocol when it sent one)
      for t in $(fixtures '*-1.pb' | grep -v -- -logs-); do
        l=${t%-1.pb}-logs-1.pb
        { printf "\\x$(printf %02x $(($(wc -c <"$t") >> 8)))\\x$(printf %02x $(($(wc -c <"$t") & 255)))"
          cat "$t"; [ ! -f "$l" ] || cat "$l"; } >"$dir/$((n++))"
      done
      ;;
    spool-seg) # disk spool segment bodies (spool/spool_disk.h: records after the 32-byte header, which the
      # target adds on its own): the SDK bodies as records, all intact, one torn, one with a flipped byte
      fixtures '*-1.pb' | GW_OUT=$dir node -e '
        const zlib = require("zlib"), fs = require("fs");
        let seq = 0;
        const rec = (otlp, records, signal) => {
          const payload = Buffer.concat([otlp, Buffer.from(records)]), h = Buffer.alloc(48);
          h.writeUInt32LE(0x31525747, 0);
          h.writeBigUInt64LE(BigInt(++seq), 8);
          h.writeBigUInt64LE(1700000000000000000n, 16);
          h.writeUInt32LE(otlp.length, 24);
          h.writeUInt32LE(payload.length - otlp.length, 28);
          h[32] = signal;
          h[33] = 1;
          h.writeUInt32LE(1, 40);
          h.writeUInt32LE(crc(payload, crc(h.subarray(8, 48), 0)), 4);
          return Buffer.concat([h, payload, Buffer.alloc((8 - (payload.length % 8)) % 8)]);
        };
        const crc = (b, c) => zlib.crc32(b, c) >>> 0;
        const recs = fs.readFileSync(0, "utf8").split("\n").filter(Boolean).slice(0, 3)
          .map((f) => rec(fs.readFileSync(f).subarray(0, 2000), "GWR1", f.includes("-logs-") ? 2 : 1));
        const all = Buffer.concat(recs), out = process.env.GW_OUT;
        fs.writeFileSync(out + "/intact", all);
        fs.writeFileSync(out + "/torn", all.subarray(0, all.length - 100));
        all[recs[0].length + 60] ^= 1;
        fs.writeFileSync(out + "/damaged", all);'
      ;;
    *) ;;
    esac
    if [ -d "$here/seeds/$kind" ]; then cp "$here/seeds/$kind"/* "$dir/" 2>/dev/null || true; fi
  fi
  find "$dir" -type f
}

rm -rf "$out"
mkdir -p "$out"
while read -r name _libs _maxlen seeds; do
  case $name in fuzz_*) ;; *) continue ;; esac
  mkdir -p "$out/$name"
  for s in $seeds; do
    case $s in *.dict) continue ;; esac
    kind=${s%%:*} sel=
    [ "$kind" = "$s" ] || sel=${s#*:}
    for f in $(kind_files "$kind"); do
      { [ -z "$sel" ] || printf "\\x$sel"; cat "$f"; } >"$tmp/seed"
      mv "$tmp/seed" "$out/$name/$(sha1sum "$tmp/seed" | cut -c1-40)"
    done
  done
done <"$here/targets.txt"
