#!/usr/bin/env bash
# Runs a Loom cluster in the foreground: N loom-ds data servers and one loom-mds, all on
# 127.0.0.1, with their data and logs under DIR. Prints the loom-mds ready line (with its
# port) once the metadata server answers; SIGTERM/SIGINT stop everything.
#   loom-cluster.sh --dir DIR [--port PORT] [--ds N] [--lease S] [--grace S] [--bin BUILD/apps]
#                   [--mds-exports FILE]
# Access (docs/security.md): the data servers trust 127.0.0.1 (where loom-mds connects from)
# with root (--mds 127.0.0.1) and squash everyone else's root; loom-mds gets DIR/mds.exports
# (or the --mds-exports file), written when missing as 127.0.0.0/8(rw,no_root_squash), so local
# clients and a qemu guest behind slirp (whose connections come from 127.0.0.1) act as root.
# Logs: DIR/dsI.log, DIR/mds.log (every loom-mds run appends to it; its lines are also copied
# to this script's stdout).
# SIGUSR1 crashes the metadata server and starts it again: loom-mds gets SIGKILL, and a new
# one starts on the same port with the same --state-dir (the data servers keep running). The
# script prints "loom-cluster: restarted loom-mds (#N, ...)" once the new one is ready, and
# exits non-zero if it does not come up. If loom-mds exits by itself, the cluster stops
# with its status.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
DIR= PORT=2049 NDS=1 LEASE=90 GRACE= BIN=${LOOM_BIN:-$here/build/apps} MDS_EXPORTS=
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR=$2; shift 2 ;;
    --port) PORT=$2; shift 2 ;;
    --ds) NDS=$2; shift 2 ;;
    --lease) LEASE=$2; shift 2 ;;
    --grace) GRACE=$2; shift 2 ;;
    --bin) BIN=$2; shift 2 ;;
    --mds-exports) MDS_EXPORTS=$2; shift 2 ;;
    *) echo "loom-cluster: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -n "$DIR" ] || { echo "loom-cluster: --dir is required" >&2; exit 2; }
mkdir -p "$DIR"
if [ -z "$MDS_EXPORTS" ]; then
  MDS_EXPORTS=$DIR/mds.exports
  [ -e "$MDS_EXPORTS" ] || cat >"$MDS_EXPORTS" <<'EOT'
# Written by scripts/loom-cluster.sh: a loopback cluster. Local clients (and a qemu guest
# behind slirp, whose connections arrive from 127.0.0.1) may write and keep root.
127.0.0.0/8(rw,no_root_squash)
EOT
fi
ds_pids=() mds_pid= tail_pid= restart=0 restarts=0
stop() {
  local p
  for p in ${mds_pid:+"$mds_pid"} "${ds_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in ${mds_pid:+"$mds_pid"} "${ds_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  mds_pid= ds_pids=()
  if [ -n "$tail_pid" ]; then
    sleep 0.2  # let tail copy the last lines
    kill "$tail_pid" 2>/dev/null || true; wait "$tail_pid" 2>/dev/null || true; tail_pid=
  fi
}
trap 'stop; exit 0' TERM INT
trap stop EXIT
trap 'restart=1' USR1

ds_args=()
for i in $(seq 0 $((NDS - 1))); do
  mkdir -p "$DIR/ds$i"
  # The handle secret stays with the cluster's directory (DIR/ds<i>.state), outside the export.
  "$BIN/loom-ds/loom-ds" --root "$DIR/ds$i" --state-dir "$DIR/ds$i.state" --listen 127.0.0.1:0 \
    --stats-file "$DIR/ds$i.stats.json" --mds 127.0.0.1 >"$DIR/ds$i.log" 2>&1 &
  ds_pids+=($!)
  for _ in $(seq 100); do grep -q "loom-ds ready" "$DIR/ds$i.log" 2>/dev/null && break; sleep 0.05; done
  port=$(sed -n 's/.*loom-ds ready.* port \([0-9]*\).*/\1/p' "$DIR/ds$i.log" | head -1)
  [ -n "$port" ] || { echo "loom-cluster: loom-ds $i did not start:" >&2; cat "$DIR/ds$i.log" >&2; exit 1; }
  ds_args+=(--ds "127.0.0.1:$port")
done

# The metadata server's output goes to mds.log (to find each run's ready line) and, through
# tail, to our stdout.
: >"$DIR/mds.log"
tail -n +1 -F "$DIR/mds.log" 2>/dev/null &
tail_pid=$!

# start_mds: start loom-mds, wait (up to 30 s) for a new ready line in mds.log.
start_mds() {
  local before i
  before=$(grep -c "loom-mds ready" "$DIR/mds.log" || true)
  "$BIN/loom-mds/loom-mds" --state-dir "$DIR/mds" --listen "127.0.0.1:$PORT" --lease "$LEASE" \
    --exports "$MDS_EXPORTS" ${GRACE:+--grace "$GRACE"} --stats-file "$DIR/mds.stats.json" "${ds_args[@]}" >>"$DIR/mds.log" 2>&1 &
  mds_pid=$!
  for i in $(seq 300); do
    [ "$(grep -c "loom-mds ready" "$DIR/mds.log" || true)" -gt "$before" ] && return 0
    kill -0 "$mds_pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "loom-cluster: loom-mds did not start (see $DIR/mds.log)" >&2
  return 1
}

# crash_and_restart_mds: SIGKILL loom-mds, start a new one on the same port and state dir.
crash_and_restart_mds() {
  local old=$mds_pid t0 st=0
  t0=$(date +%s.%N)
  kill -KILL "$old" 2>/dev/null || true
  wait "$old" 2>/dev/null || st=$?
  mds_pid=
  echo "loom-cluster: SIGUSR1: killed loom-mds (pid $old, SIGKILL, status $st), starting it again" >&2
  start_mds || exit 1
  restarts=$((restarts + 1))
  echo "loom-cluster: restarted loom-mds (#$restarts, pid $mds_pid, port $PORT, down $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')s)" >&2
}

start_mds || exit 1
while :; do
  if [ $restart = 1 ]; then
    restart=0
    crash_and_restart_mds
    continue
  fi
  st=0
  wait "$mds_pid" || st=$?
  # wait returns early when a trapped signal (USR1) arrives.
  [ $restart = 1 ] && continue
  kill -0 "$mds_pid" 2>/dev/null && continue
  echo "loom-cluster: loom-mds exited with status $st" >&2
  mds_pid=
  exit "$st"
done
