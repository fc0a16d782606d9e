#!/usr/bin/env bash
# Runs a Loom cluster in the foreground: N loom-ds data servers and one loom-mds, all on
# 127.0.0.1, with their data and logs under DIR. Prints the loom-mds ready line (with its
# port) once the metadata server answers; SIGTERM/SIGINT stop everything.
#   loom-cluster.sh --dir DIR [--port PORT] [--ds N] [--lease S] [--grace S] [--bin BUILD/apps]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
DIR= PORT=2049 NDS=1 LEASE=90 GRACE= BIN=${LOOM_BIN:-$here/build/apps}
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR=$2; shift 2 ;;
    --port) PORT=$2; shift 2 ;;
    --ds) NDS=$2; shift 2 ;;
    --lease) LEASE=$2; shift 2 ;;
    --grace) GRACE=$2; shift 2 ;;
    --bin) BIN=$2; shift 2 ;;
    *) echo "loom-cluster: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -n "$DIR" ] || { echo "loom-cluster: --dir is required" >&2; exit 2; }
mkdir -p "$DIR"
pids=()
stop() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap 'stop; exit 0' TERM INT
trap stop EXIT

ds_args=()
for i in $(seq 0 $((NDS - 1))); do
  mkdir -p "$DIR/ds$i"
  "$BIN/loom-ds/loom-ds" --root "$DIR/ds$i" --listen 127.0.0.1:0 --stats-file "$DIR/ds$i.stats.json" \
    >"$DIR/ds$i.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do grep -q "loom-ds ready" "$DIR/ds$i.log" 2>/dev/null && break; sleep 0.05; done
  port=$(sed -n 's/.*loom-ds ready.* port \([0-9]*\).*/\1/p' "$DIR/ds$i.log" | head -1)
  [ -n "$port" ] || { echo "loom-cluster: loom-ds $i did not start:" >&2; cat "$DIR/ds$i.log" >&2; exit 1; }
  ds_args+=(--ds "127.0.0.1:$port")
done
"$BIN/loom-mds/loom-mds" --state-dir "$DIR/mds" --listen "127.0.0.1:$PORT" --lease "$LEASE" \
  ${GRACE:+--grace "$GRACE"} --stats-file "$DIR/mds.stats.json" "${ds_args[@]}" &
pids+=($!)
wait "${pids[-1]}"
