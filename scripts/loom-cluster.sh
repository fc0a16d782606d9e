#!/usr/bin/env bash
# Runs a Loom cluster in the foreground: N loom-ds data servers and one loom-mds, all on
# 127.0.0.1, with their data and logs under DIR. Prints the loom-mds ready line (with its
# port) once the metadata server answers; SIGTERM/SIGINT stop everything.
#   loom-cluster.sh --dir DIR [--port PORT] [--ds N] [--lease S] [--grace S] [--bin BUILD/apps]
#                   [--mds-exports FILE] [--advertise HOST] [--mds-args "ARGS"]
#                   [--ds-args "ARGS"] [--ds-trust ADDR]
#   loom-cluster.sh --dir DIR --ctl COMMAND [ARG...]     (control a running cluster, below)
# --advertise HOST  passed to loom-mds: the host it tells clients for every data server (a qemu
#                   guest behind slirp reaches this host's 127.0.0.1 as 10.0.2.2).
# --mds-args ARGS   extra loom-mds arguments, split on blanks (e.g. "--mirrors 2 --pnfs off").
# --ds-args ARGS    extra loom-ds arguments, the same for every data server.
# --ds-trust ADDR   the address(es, comma-separated) the data servers trust as the metadata
#                   server (loom-ds --mds; default 127.0.0.1).
# Access (docs/security.md): the data servers trust 127.0.0.1 (where loom-mds connects from)
# with root (--mds 127.0.0.1) and squash everyone else's root; loom-mds gets DIR/mds.exports
# (or the --mds-exports file), written when missing as 127.0.0.0/8(rw,no_root_squash), so local
# clients and a qemu guest behind slirp (whose connections come from 127.0.0.1) act as root.
# Files: DIR/dsI/ (data server I's export), DIR/dsI.state, DIR/dsI.log (appended by each of
# its runs), DIR/dsI.stats.json (loom-ds --stats-file, rewritten every second; when a data
# server is started again the last one is kept as DIR/dsI.stats.json.K, K = 1, 2, ...),
# DIR/mds/ (state), DIR/mds.log (every loom-mds run appends to it; its lines are also copied
# to this script's stdout), DIR/mds.stats.json, DIR/cluster.pid, DIR/ctl.ID.req|res (control).
# SIGUSR1 crashes the metadata server and starts it again: loom-mds gets SIGKILL, and a new
# one starts on the same port with the same --state-dir (the data servers keep running). The
# script prints "loom-cluster: restarted loom-mds (#N, ...)" once the new one is ready, and
# exits non-zero if it does not come up. If loom-mds exits by itself, the cluster stops
# with its status. A data server that dies does not stop the cluster.
# Control (--ctl: a request file DIR/ctl.ID.req, polled every 0.2 s, one command at a time,
# answered in DIR/ctl.ID.res; files rather than a FIFO read with `read -t`, whose timeout
# can fire while a line is being read: bash then drops the line as timed out):
#   kill-ds I       SIGKILL data server I (0-based); its port stays reserved for start-ds
#   start-ds I      start data server I again: same port, export and state dir; waits for ready
#   restart-mds     as SIGUSR1
#   status          one line per server: "mds PID PORT" and "dsI PID|- PORT" (- = not running)
# The client prints the answer and exits 0 when the command succeeded, 1 when it failed, 2
# when no cluster answers within 120 s. By hand: echo COMMAND >DIR/ctl.ID.new, mv it to
# DIR/ctl.ID.req, then read DIR/ctl.ID.res (first line "ok" or "error: ...").
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
DIR= PORT=20490 NDS=1 LEASE=90 GRACE= BIN=${LOOM_BIN:-$here/build/apps} MDS_EXPORTS=
ADVERTISE= MDS_ARGS= DS_ARGS= DS_TRUST=127.0.0.1 CTL=
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR=$2; shift 2 ;;
    --port) PORT=$2; shift 2 ;;
    --ds) NDS=$2; shift 2 ;;
    --lease) LEASE=$2; shift 2 ;;
    --grace) GRACE=$2; shift 2 ;;
    --bin) BIN=$2; shift 2 ;;
    --mds-exports) MDS_EXPORTS=$2; shift 2 ;;
    --advertise) ADVERTISE=$2; shift 2 ;;
    --mds-args) MDS_ARGS=$2; shift 2 ;;
    --ds-args) DS_ARGS=$2; shift 2 ;;
    --ds-trust) DS_TRUST=$2; shift 2 ;;
    --ctl) shift; CTL="$*"; break ;;
    *) echo "loom-cluster: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -n "$DIR" ] || { echo "loom-cluster: --dir is required" >&2; exit 2; }

# ---- client side of the control files --------------------------------------------------
if [ -n "$CTL" ]; then
  pid=$(cat "$DIR/cluster.pid" 2>/dev/null || true)
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null ||
    { echo "loom-cluster: no cluster running in $DIR" >&2; exit 2; }
  id=$$-$RANDOM
  res=$DIR/ctl.$id.res
  printf '%s\n' "$CTL" >"$DIR/ctl.$id.new"
  mv "$DIR/ctl.$id.new" "$DIR/ctl.$id.req"  # whole, or not there
  for _ in $(seq 1200); do
    if [ -f "$res" ]; then
      first=$(head -n 1 "$res")
      tail -n +2 "$res"
      rm -f "$res"
      [ "$first" = ok ] && exit 0
      echo "loom-cluster: $CTL: $first" >&2
      exit 1
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  echo "loom-cluster: no answer to '$CTL' from the cluster (pid $pid)" >&2
  exit 2
fi

mkdir -p "$DIR"
if [ -z "$MDS_EXPORTS" ]; then
  MDS_EXPORTS=$DIR/mds.exports
  [ -e "$MDS_EXPORTS" ] || cat >"$MDS_EXPORTS" <<'EOT'
# Written by scripts/loom-cluster.sh: a loopback cluster. Local clients (and a qemu guest
# behind slirp, whose connections arrive from 127.0.0.1) may write and keep root.
127.0.0.0/8(rw,no_root_squash)
EOT
fi
read -r -a mds_extra <<<"$MDS_ARGS"
read -r -a ds_extra <<<"$DS_ARGS"
ds_trust=()
IFS=, read -r -a _trust <<<"$DS_TRUST"
for a in "${_trust[@]}"; do ds_trust+=(--mds "$a"); done

ds_pids=() ds_ports=() ds_runs=() mds_pid= tail_pid= restart=0 restarts=0
stop() {
  local p
  for p in ${mds_pid:+"$mds_pid"} "${ds_pids[@]}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  for p in ${mds_pid:+"$mds_pid"} "${ds_pids[@]}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  mds_pid= ds_pids=()
  if [ -n "$tail_pid" ]; then
    sleep 0.2  # let tail copy the last lines
    kill "$tail_pid" 2>/dev/null || true; wait "$tail_pid" 2>/dev/null || true; tail_pid=
  fi
  rm -f "$DIR/cluster.pid"
}
trap 'stop; exit 0' TERM INT
trap stop EXIT
trap 'restart=1' USR1

# start_ds I: start data server I (on its old port if it had one), wait (up to 10 s) for its
# ready line. Each run appends to DIR/dsI.log.
start_ds() {
  local i=$1 before port listen="127.0.0.1:${ds_ports[$1]:-0}" n
  mkdir -p "$DIR/ds$i"
  [ "${ds_runs[$i]:-0}" -eq 0 ] && : >"$DIR/ds$i.log"
  n=${ds_runs[$i]:-0}
  # Keep the counters of the run before (loom-ds starts them at zero).
  [ "$n" -gt 0 ] && [ -f "$DIR/ds$i.stats.json" ] && mv "$DIR/ds$i.stats.json" "$DIR/ds$i.stats.json.$n"
  before=$(grep -c "loom-ds ready" "$DIR/ds$i.log" || true)
  # The handle secret stays with the cluster's directory (DIR/ds<i>.state), outside the export.
  "$BIN/loom-ds/loom-ds" --root "$DIR/ds$i" --state-dir "$DIR/ds$i.state" --listen "$listen" \
    --stats-file "$DIR/ds$i.stats.json" "${ds_trust[@]}" "${ds_extra[@]}" >>"$DIR/ds$i.log" 2>&1 &
  ds_pids[$i]=$!
  ds_runs[$i]=$((n + 1))
  for _ in $(seq 200); do
    [ "$(grep -c "loom-ds ready" "$DIR/ds$i.log" || true)" -gt "$before" ] && break
    kill -0 "${ds_pids[$i]}" 2>/dev/null || break
    sleep 0.05
  done
  port=$(grep "loom-ds ready" "$DIR/ds$i.log" | tail -n 1 | sed -n 's/.* port \([0-9]*\).*/\1/p')
  if [ "$(grep -c "loom-ds ready" "$DIR/ds$i.log" || true)" -le "$before" ] || [ -z "$port" ]; then
    echo "loom-cluster: loom-ds $i did not start:" >&2; tail -n 20 "$DIR/ds$i.log" >&2
    kill "${ds_pids[$i]}" 2>/dev/null || true; wait "${ds_pids[$i]}" 2>/dev/null || true
    ds_pids[$i]=
    return 1
  fi
  ds_ports[$i]=$port
}

ds_args=()
for i in $(seq 0 $((NDS - 1))); do
  start_ds "$i" || exit 1
  ds_args+=(--ds "127.0.0.1:${ds_ports[$i]}")
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
    --exports "$MDS_EXPORTS" ${GRACE:+--grace "$GRACE"} ${ADVERTISE:+--advertise "$ADVERTISE"} \
    --stats-file "$DIR/mds.stats.json" "${ds_args[@]}" "${mds_extra[@]}" >>"$DIR/mds.log" 2>&1 &
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

# ctl COMMAND...: run one control command; prints the answer's body, returns its status.
ctl() {
  local cmd=${1:-} i=${2:-} st=0 p
  case "$cmd" in
    kill-ds|start-ds)
      [[ "$i" =~ ^[0-9]+$ ]] && [ "$i" -lt "$NDS" ] || { echo "no data server '$i' (0..$((NDS - 1)))"; return 1; } ;;
  esac
  case "$cmd" in
    kill-ds)
      p=${ds_pids[$i]:-}
      [ -n "$p" ] || { echo "loom-ds $i is not running"; return 1; }
      kill -KILL "$p" 2>/dev/null || true
      wait "$p" 2>/dev/null || st=$?
      ds_pids[$i]=
      echo "loom-cluster: killed loom-ds $i (pid $p, port ${ds_ports[$i]}, SIGKILL, status $st)" >&2
      echo "killed ds$i pid $p port ${ds_ports[$i]}" ;;
    start-ds)
      [ -z "${ds_pids[$i]:-}" ] || { echo "loom-ds $i is running (pid ${ds_pids[$i]})"; return 1; }
      start_ds "$i" 2>&1 || return 1
      echo "loom-cluster: started loom-ds $i again (run #${ds_runs[$i]}, pid ${ds_pids[$i]}, port ${ds_ports[$i]})" >&2
      echo "started ds$i pid ${ds_pids[$i]} port ${ds_ports[$i]}" ;;
    restart-mds)
      crash_and_restart_mds
      echo "restarted mds pid $mds_pid port $PORT" ;;
    status)
      echo "mds $mds_pid $PORT"
      for i in $(seq 0 $((NDS - 1))); do echo "ds$i ${ds_pids[$i]:--} ${ds_ports[$i]}"; done ;;
    *) echo "unknown command '$*' (kill-ds I, start-ds I, restart-mds, status)"; return 1 ;;
  esac
}

echo $$ >"$DIR/cluster.pid"
rm -f "$DIR"/ctl.*.req "$DIR"/ctl.*.res "$DIR"/ctl.*.tmp "$DIR"/ctl.*.new
start_mds || exit 1
while :; do
  if [ $restart = 1 ]; then
    restart=0
    crash_and_restart_mds
    continue
  fi
  if ! kill -0 "$mds_pid" 2>/dev/null; then
    st=0
    wait "$mds_pid" || st=$?
    echo "loom-cluster: loom-mds exited with status $st" >&2
    mds_pid=
    exit "$st"
  fi
  served=0
  for req in "$DIR"/ctl.*.req; do
    [ -e "$req" ] || continue
    id=${req##*/ctl.} && id=${id%.req}
    cmd=
    read -r cmd <"$req" || true
    rm -f "$req"
    served=1
    [[ "$id" =~ ^[A-Za-z0-9_-]+$ ]] || { echo "loom-cluster: bad control request '$req'" >&2; continue; }
    st=0
    # In this shell, not a subshell: the commands change ds_pids and wait for our children.
    # shellcheck disable=SC2086  # the command's words
    ctl $cmd >"$DIR/ctl.$id.out" || st=$?
    if [ $st = 0 ]; then echo ok; else echo "error: $(tr '\n' ' ' <"$DIR/ctl.$id.out")"; fi >"$DIR/ctl.$id.tmp"
    [ $st = 0 ] && cat "$DIR/ctl.$id.out" >>"$DIR/ctl.$id.tmp"
    rm -f "$DIR/ctl.$id.out"
    mv "$DIR/ctl.$id.tmp" "$DIR/ctl.$id.res"
  done
  [ $served = 1 ] || sleep 0.2
done
