#!/usr/bin/env bash
# Loom's main job on its embedded defaults: installs what is needed, builds, and starts a local
# cluster on loopback — one loom-mds metadata server (NFSv4.1/4.2) and three loom-ds data
# servers, with everything under $LOOM_DATA (default ./loom-data) — then shows it working:
# a file goes in through the metadata server, its bytes land on a data server, and it comes
# back identical. Runs until Ctrl-C.
#   scripts/loom-up.sh            start, demo, keep serving
#   scripts/loom-up.sh --demo     start, demo, stop (exit status = demo result)
#   LOOM_PORT=20490               the metadata server's port
# Access (docs/security.md): loom-cluster.sh starts the data servers with --mds 127.0.0.1 and
# the metadata server with $LOOM_DATA/mds.exports = 127.0.0.0/8(rw,no_root_squash), so local
# clients keep root; edit that file (and restart) to try other export rules.
set -euo pipefail
cd "$(dirname "$0")/.."
demo_only=0
[ "${1:-}" = "--demo" ] && demo_only=1

bash scripts/setup.sh >/dev/null
bash scripts/build.sh loom-ds loom-mds loom >/dev/null
DATA=${LOOM_DATA:-$PWD/loom-data}
PORT=${LOOM_PORT:-20490}
LOOM=$PWD/build/apps/loom/loom
export LOOM_MDS=127.0.0.1:$PORT
mkdir -p "$DATA"

bash scripts/loom-cluster.sh --dir "$DATA" --port "$PORT" --ds 3 >"$DATA/cluster.log" 2>&1 &
cluster=$!
trap 'kill $cluster 2>/dev/null; wait $cluster 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 100); do grep -q "loom-mds ready" "$DATA/cluster.log" && break; sleep 0.1; done
if ! grep -q "loom-mds ready" "$DATA/cluster.log"; then
  echo "the cluster did not start:"; cat "$DATA/cluster.log" "$DATA"/ds*.log 2>/dev/null; exit 1
fi
for f in "$DATA"/ds*.log; do head -1 "$f"; done
grep "loom-mds ready" "$DATA/cluster.log"

echo
echo "== demo: 32 MiB in and out with the loom CLI (libloom: NFSv4.2 to the metadata server,"
echo "   the bytes straight to and from the data servers, as the pNFS layout says)"
tmp=$(mktemp -d)
head -c $((32 << 20)) /dev/urandom >"$tmp/sample.bin"
want=$(sha256sum <"$tmp/sample.bin" | cut -d' ' -f1)
"$LOOM" mkdir -p /demo
"$LOOM" put -f "$tmp/sample.bin" /demo/sample.bin
"$LOOM" get -f /demo/sample.bin "$tmp/back.bin"
got=$(sha256sum <"$tmp/back.bin" | cut -d' ' -f1)
"$LOOM" ls -l /demo
"$LOOM" layout /demo/sample.bin | sed 's/^/  /'
where=$(find "$DATA"/ds*/loom -type f -size 32M -newer "$tmp/sample.bin" 2>/dev/null | head -1)
rm -rf "$tmp"
echo "  the bytes live on a data server: ${where:-?}"
if [ "$got" != "$want" ]; then echo "demo: CHECKSUM MISMATCH"; exit 1; fi
echo "  sha256 $want: identical"
sleep 1.2  # counters are written every second
python3 - "$DATA/mds.stats.json" <<'PY' || true
import json, sys
d = json.load(open(sys.argv[1]))
n = lambda k: d.get(k, {}).get("calls", 0)
print("  loom-mds served READ %d and WRITE %d calls: the data path bypassed it (LAYOUTGET %d)"
      % (n("nfs4.op.READ"), n("nfs4.op.WRITE"), n("nfs4.op.LAYOUTGET")))
PY
echo "  per-operation counters: $DATA/mds.stats.json, $DATA/ds*.stats.json"
echo "demo: OK"
[ $demo_only -eq 1 ] && exit 0

hint=""
[ "$PORT" != 20490 ] && hint=", after: export LOOM_MDS=$LOOM_MDS"
cat <<EOT

Loom is running (Ctrl-C stops it). In another shell${hint}:
  $LOOM ls -l /
  $LOOM put FILE /demo/ ; $LOOM get /demo/FILE copy ; $LOOM stat /demo/FILE
  $LOOM cp -r --progress DIR loom:/demo/ ; $LOOM du -sh / ; $LOOM df -h ; $LOOM status
  $LOOM bench read --pattern seq --seconds 5     # libloom read throughput, JSON
  # the Linux kernel client (on a machine with NFS support):
  mount -t nfs -o vers=4.2,port=$PORT 127.0.0.1:/ /mnt
Metadata: $DATA/mds ; data servers: $DATA/ds0..2 ; logs next to them.
Export rules: $DATA/mds.exports (loopback: local users keep root; see docs/security.md).
EOT
wait $cluster
