#!/usr/bin/env bash
# mds-bench.sh -- NFSv4.1 metadata benchmark: loom-mds vs nfs-ganesha (FSAL VFS), in ONE run,
# from one client, one server at a time.  See bench/README.md ("Metadata benchmark").
#
#   bench/mds-bench.sh                 full run (10 000 files, qd 1 and 16)
#   bench/mds-bench.sh --quick         CI smoke run (1 000 files)
#   bench/mds-bench.sh --dirs 1,8      one shared directory, then 8 directories
#   bench/mds-bench.sh --servers loom --n 1000000 --qd 16 --phases create,stat,readdir,remove
#
# For each server: start it (loom: one loom-ds + loom-mds, as scripts/loom-cluster.sh does;
# ganesha: NFSv4-only, FSAL VFS on a directory of the same filesystem as loom's state), run
# build/bench/mdsbench (bench/mdsbench.cc) against it -- create+close, stat, open+close,
# readdir, readdirplus, rename, remove of N files in one directory (or spread over D), at each
# queue depth -- sampling the server's CPU time (/proc/PID/stat utime+stime, all threads)
# around every phase and its resident set (VmRSS) around create, and stop it. Each --dirs
# value gets freshly started servers. One JSON line per (server, op, qd, dirs) on stdout (and
# in --out), then a summary line with the ratios loom/ganesha (rate, p99, ops per server CPU
# second) and the servers' memory per million files.
#
# Options
#   --n N               files per round (default 10000)
#   --quick             --n 1000 --readdir-repeat 2
#   --qd LIST           comma list of requests in flight (default 1,16)
#   --dirs LIST         comma list of directory counts; each value is a run against fresh
#                       servers with the files spread over that many directories (default 1)
#   --phases LIST       comma list out of create,stat,open,readdir,readdirplus,rename,remove
#                       (default all; create always runs)
#   --readdir-repeat R  full listings per readdir variant (default 3)
#   --readdir-bytes B   READDIR maxcount (default 65536)
#   --servers LIST      comma list of loom, ganesha, loom-tmpfs (default loom,ganesha).
#                       loom-tmpfs: loom-mds with its state dir (RocksDB + WAL) on /dev/shm,
#                       i.e. with the WAL fsyncs made free: the difference to "loom" is what
#                       the per-commit fsync costs.
#   --repeat N          rounds, servers alternating (default 1); the summary uses medians
#   --out FILE          JSONL output (default build/bench/mds-results.jsonl)
#   --workdir DIR       where the export, loom state and logs go (default: mktemp -d in $TMPDIR
#                       or /tmp; put it on the filesystem you want to measure)
#   --keep              keep the work dir
# Env: LOOM_BIN (default build/apps), LOOM_MDS_ARGS (extra loom-mds arguments, e.g.
#      "--workers 4"), BUILD_DIR (default build).
#
# Exit status: 0 unless something really failed -- mdsbench does not build, a server does not
# start or dies, an NFS/RPC error, a verification error (wrong attributes, a listing that
# misses files, a directory not empty after the removes).  Slow numbers never fail the run.
# Missing loom binaries only skip loom (message + nulls in the summary).
set -u
set -o pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
# shellcheck source=SCRIPTDIR/../tests/interop/lib/servers.sh
source "$REPO/tests/interop/lib/servers.sh"

N=10000 QD=1,16 DIRS=1 PHASES=all RD_REPEAT=3 RD_BYTES=65536 SERVERS=loom,ganesha REPEAT=1
OUT="" WORK="" KEEP=0 QUICK=0
while (($#)); do
    case $1 in
        --n) N=$2; shift 2 ;;
        --quick) QUICK=1; N=1000 RD_REPEAT=2; shift ;;
        --qd) QD=$2; shift 2 ;;
        --dirs) DIRS=$2; shift 2 ;;
        --phases) PHASES=$2; shift 2 ;;
        --readdir-repeat) RD_REPEAT=$2; shift 2 ;;
        --readdir-bytes) RD_BYTES=$2; shift 2 ;;
        --servers) SERVERS=$2; shift 2 ;;
        --repeat) REPEAT=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --workdir) WORK=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,45p' "$0"; exit 0 ;;
        *) echo "mds-bench: unknown argument: $1" >&2; exit 2 ;;
    esac
done
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || { echo "mds-bench: --repeat must be >= 1" >&2; exit 2; }
[[ $N =~ ^[1-9][0-9]*$ ]] || { echo "mds-bench: --n must be >= 1" >&2; exit 2; }
[[ $QD =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || { echo "mds-bench: bad --qd '$QD'" >&2; exit 2; }
[[ $DIRS =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || { echo "mds-bench: bad --dirs '$DIRS'" >&2; exit 2; }
_ph='(create|stat|open|readdir|readdirplus|rename|remove)'
[[ $PHASES == all || $PHASES =~ ^$_ph(,$_ph)*$ ]] || { echo "mds-bench: bad --phases '$PHASES'" >&2; exit 2; }

BUILD_DIR=${BUILD_DIR:-$REPO/build}
[[ $BUILD_DIR == /* ]] || BUILD_DIR="$REPO/$BUILD_DIR"
LOOM_BIN=${LOOM_BIN:-$BUILD_DIR/apps}
[[ $LOOM_BIN == /* ]] || LOOM_BIN="$REPO/$LOOM_BIN"
LOOM_DS_BIN="$LOOM_BIN/loom-ds/loom-ds"
LOOM_MDS_BIN="$LOOM_BIN/loom-mds/loom-mds"
OUT=${OUT:-$BUILD_DIR/bench/mds-results.jsonl}
FAILED=0

note() { echo "mds-bench: $*" >&2; }
die() { note "ERROR: $*"; exit 1; }

# ---- which servers ----------------------------------------------------------------------
RUN=()
IFS=, read -r -a _srv <<<"$SERVERS"
for s in "${_srv[@]}"; do
    case $s in
        loom|loom-mds) RUN+=(loom) ;;
        loom-tmpfs) RUN+=(loom-tmpfs) ;;
        ganesha) RUN+=(ganesha) ;;
        *) die "--servers: unknown '$s'" ;;
    esac
done
LOOM_SKIPPED=""
if [[ " ${RUN[*]} " == *" loom"* ]] && { [[ ! -x $LOOM_MDS_BIN ]] || [[ ! -x $LOOM_DS_BIN ]]; }; then
    LOOM_SKIPPED="binaries not found at $LOOM_MDS_BIN / $LOOM_DS_BIN (ninja -C build loom-mds loom-ds)"
    note "loom skipped: $LOOM_SKIPPED"
    keep=()
    for s in "${RUN[@]}"; do [[ $s == loom* ]] || keep+=("$s"); done
    RUN=("${keep[@]}")
fi

# ---- dependencies + build ---------------------------------------------------------------
need=(python3:python3 ninja:ninja-build)
[[ " ${RUN[*]} " == *" ganesha "* ]] &&
    need+=(ganesha.nfsd:nfs-ganesha "$GANESHA_PLUGINS_DIR/libfsalvfs.so:nfs-ganesha-vfs")
ensure_pkgs "${need[@]}" || die "missing dependencies"
[[ -f $BUILD_DIR/build.ninja ]] || die "no configured build in $BUILD_DIR (cmake -G Ninja -B build)"
ninja -C "$BUILD_DIR" mdsbench >&2 || die "building mdsbench failed"
MDSBENCH="$BUILD_DIR/bench/mdsbench"

CREATED_WORK=0 SHM_DIR=""
cleanup() {
    local rc=$?
    srv_cleanup_all
    [[ -n $SHM_DIR && -d $SHM_DIR ]] && rm -rf "$SHM_DIR"
    if ((CREATED_WORK)) && [[ -d $WORK ]]; then
        if ((KEEP)); then note "kept $WORK"; else rm -rf "$WORK"; fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'note interrupted; exit 1' INT TERM HUP

if [[ -z $WORK ]]; then
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/loom-mdsbench.XXXXXX")
    CREATED_WORK=1
fi
mkdir -p "$WORK" "$(dirname "$OUT")"
WORK=$(cd "$WORK" && pwd -P)
: >"$OUT"

emit() { echo "$1"; echo "$1" >>"$OUT"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
fstype() { stat -f -c %T "$1" 2>/dev/null || echo unknown; }

emit "{\"bench\":\"mds-bench\",\"op\":\"config\",\"n\":$N,\"qd\":\"$QD\",\"dirs\":\"$DIRS\",\"phases\":\"$PHASES\",\"readdir_repeat\":$RD_REPEAT,\"readdir_bytes\":$RD_BYTES,\"servers\":\"$(IFS=,; echo "${RUN[*]}")\",\"repeat\":$REPEAT,\"quick\":$( ((QUICK)) && echo true || echo false),\"workdir\":\"$WORK\",\"workdir_fs\":\"$(fstype "$WORK")\",\"nproc\":$(nproc),\"kernel\":\"$(uname -r)\",\"loadavg\":\"$(loadavg)\",\"loom_mds_args\":\"${LOOM_MDS_ARGS:-}\"}"

# ---- servers ------------------------------------------------------------------------------
# Each start sets PORT, PIDS (NAME=PID ..., the server first), ALIVE (pids to check), STATE_FS.
PORT="" PIDS=() ALIVE=() STATE_FS=""
wait_log() {  # file pattern pid -> 0 when pattern shows up, 1 if pid died / timeout
    local i
    for ((i = 0; i < SRV_READY_TIMEOUT * 10; i++)); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
start_loom() {  # work statedir
    local w=$1 state=$2 dsport dspid mdspid
    mkdir -p "$w/ds0"
    # The MDS on loopback keeps root on the data server (--mds); the benchmark client runs as
    # root, so the MDS's export keeps loopback's root too (docs/security.md).
    "$LOOM_DS_BIN" --root "$w/ds0" --state-dir "$w/ds0-state" --listen 127.0.0.1:0 \
        --mds 127.0.0.1 >"$w/ds0.log" 2>&1 &
    dspid=$!
    _SRV_PIDS+=("$dspid")
    if ! wait_log "$w/ds0.log" "loom-ds ready" "$dspid"; then
        note "loom-ds did not start:"; tail -n 20 "$w/ds0.log" >&2; return 1
    fi
    dsport=$(sed -n 's/.*loom-ds ready.* port \([0-9]*\).*/\1/p' "$w/ds0.log" | head -n1)
    free_port || return 1
    PORT=$FREE_PORT
    # shellcheck disable=SC2086  # LOOM_MDS_ARGS is a word list on purpose
    printf '127.0.0.0/8(rw,no_root_squash)\n' >"$w/mds.exports"
    "$LOOM_MDS_BIN" --state-dir "$state" --listen "127.0.0.1:$PORT" --ds "127.0.0.1:$dsport" \
        --exports "$w/mds.exports" ${LOOM_MDS_ARGS:-} >"$w/mds.log" 2>&1 &
    mdspid=$!
    _SRV_PIDS+=("$mdspid")
    if ! wait_log "$w/mds.log" "loom-mds ready" "$mdspid"; then
        note "loom-mds did not start:"; tail -n 20 "$w/mds.log" >&2; return 1
    fi
    if grep -q "in grace" "$w/mds.log"; then note "loom-mds is in grace (fresh state dir expected)"; fi
    PIDS=("mds=$mdspid" "ds=$dspid") ALIVE=("$mdspid" "$dspid") STATE_FS=$(fstype "$state")
    note "loom-mds pid $mdspid port $PORT (state $state, $STATE_FS), loom-ds pid $dspid port $dsport"
}
start_ganesha() {  # work exportdir
    local w=$1 root=$2 pid i
    mkdir -p /var/run/ganesha /var/lib/nfs/ganesha
    free_port || return 1
    PORT=$FREE_PORT
    cat >"$w/ganesha.conf" <<EOF
NFS_CORE_PARAM {
    NFS_Port = $PORT;
    Protocols = 4;
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Plugins_Dir = "$GANESHA_PLUGINS_DIR";
}
NFSV4 { Graceless = true; }
EXPORT {
    Export_Id = 1;
    Path = "$root";
    Pseudo = /;
    Access_Type = RW;
    Squash = No_Root_Squash;
    Protocols = 4;
    Transports = TCP;
    SecType = sys;
    FSAL { Name = VFS; }
}
LOG { Default_Log_Level = EVENT; }
EOF
    : >"$w/ganesha.log"
    ganesha.nfsd -F -f "$w/ganesha.conf" -p "$w/ganesha.pid" -L "$w/ganesha.log" >"$w/ganesha.stdout" 2>&1 &
    pid=$!
    _SRV_PIDS+=("$pid")
    for ((i = 0; i < SRV_READY_TIMEOUT * 10; i++)); do
        if grep -q "NFS SERVER INITIALIZED" "$w/ganesha.log" 2>/dev/null && tcp_connectable 127.0.0.1 "$PORT"; then
            PIDS=("ganesha=$pid") ALIVE=("$pid") STATE_FS=$(fstype "$root")
            note "ganesha pid $pid port $PORT (export $root, $STATE_FS)"
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    note "ganesha did not start:"; tail -n 20 "$w/ganesha.log" "$w/ganesha.stdout" >&2
    return 1
}
stop_all() {  # everything started for this server, newest first (loom-mds before loom-ds)
    local i
    for ((i = ${#_SRV_PIDS[@]} - 1; i >= 0; i--)); do _srv_kill "${_SRV_PIDS[i]}"; done
    _SRV_PIDS=() ALIVE=() PIDS=()
}

EXPORT="$WORK/export"
mkdir -p "$EXPORT"

bench_server() {  # kind round dirs
    local kind=$1 round=$2 dirs=$3 w="$WORK/$1.$2.d$3" rc state p args=() line
    mkdir -p "$w"
    sync
    case $kind in
        loom) start_loom "$w" "$w/mds" ;;
        loom-tmpfs)
            [[ -n $SHM_DIR ]] || SHM_DIR=$(mktemp -d /dev/shm/loom-mdsbench.XXXXXX)
            start_loom "$w" "$SHM_DIR/mds.$round.d$dirs" ;;
        ganesha) start_ganesha "$w" "$EXPORT" ;;
    esac
    rc=$?
    if ((rc != 0)); then note "$kind failed to start"; FAILED=1; stop_all; return 1; fi
    for p in "${PIDS[@]}"; do args+=(--cpu-pid "$p"); done
    [[ $PHASES == all ]] || args+=(--phases "$PHASES")
    "$MDSBENCH" --server "127.0.0.1:$PORT" --target "$kind" --n "$N" --qd "$QD" --dirs "$dirs" \
        --readdir-repeat "$RD_REPEAT" --readdir-bytes "$RD_BYTES" "${args[@]}" \
        --json-extra "\"round\":$round,\"state_fs\":\"$STATE_FS\"" >"$w/mdsbench.out" 2>"$w/mdsbench.err"
    rc=$?
    sed 's/^/  /' "$w/mdsbench.err" >&2
    while IFS= read -r line; do [[ $line == \{* ]] && emit "$line"; done <"$w/mdsbench.out"
    if ((rc != 0)); then
        case $rc in
            3) note "VERIFICATION ERROR against $kind" ;;
            *) note "mdsbench against $kind failed (rc $rc)" ;;
        esac
        FAILED=1
    fi
    for p in "${ALIVE[@]}"; do
        kill -0 "$p" 2>/dev/null || { note "$kind: pid $p died (logs in $w)"; FAILED=1; KEEP=1; }
    done
    stop_all
    [[ $kind == loom-tmpfs ]] && rm -rf "$SHM_DIR/mds.$round.d$dirs"
    return 0
}

IFS=, read -r -a DIRS_LIST <<<"$DIRS"
for ((round = 1; round <= REPEAT; round++)); do
    for dirs in "${DIRS_LIST[@]}"; do
        for kind in "${RUN[@]}"; do bench_server "$kind" "$round" "$dirs"; done
    done
done

# ---- summary (medians over rounds) ----------------------------------------------------------
summary=$(python3 - "$OUT" "$FAILED" "$LOOM_SKIPPED" <<'PY'
import json, statistics, sys
out, failed, skipped = sys.argv[1], sys.argv[2] == "1", sys.argv[3] or None
rows = [json.loads(l) for l in open(out) if l.startswith("{")]
rows = [r for r in rows if r.get("bench") == "mdsbench"]
KEYS = ["ops_s", "p50_us", "p99_us", "server_cpu_s_per_1000_ops", "ops_per_server_cpu_s",
        "ds_cpu_s_per_1000_ops", "listing_s", "rss_bytes_per_file"]
# op@qdN for one shared directory (the keys from before --dirs), op@qdN/dD for D directories.
def suffix(r):
    d = r.get("dirs", 1)
    return "" if d == 1 else f"/d{d}"
def med(vals):
    vals = [v for v in vals if isinstance(v, (int, float))]
    return round(statistics.median(vals), 4) if vals else None
groups = {}
for r in rows:
    groups.setdefault((r["target"], f'{r["op"]}@qd{r["qd"]}{suffix(r)}'), []).append(r)
median = {}
for (t, k), rs in groups.items():
    median.setdefault(t, {})[k] = {key: med([r.get(key) for r in rs]) for key in KEYS
                                   if any(key in r for r in rs)}
def ratio(a, b):
    return round(a / b, 4) if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None
def over(a, b):
    A, B = median.get(a, {}), median.get(b, {})
    res = {"ops_s": {}, "p99_us": {}, "ops_per_server_cpu_s": {}}
    for k in sorted(set(A) | set(B)):
        for key in res:
            res[key][k] = ratio(A.get(k, {}).get(key), B.get(k, {}).get(key))
    return res
# ops per server CPU second over create+stat+rename+remove (per qd, per round, then median)
MIX = ("create", "stat", "rename", "remove")
def mix(t, with_ds=False):
    per = {}
    for r in rows:
        if r["target"] != t or r["op"] not in MIX:
            continue
        cpu = r.get("server_cpu_s") or 0
        if with_ds:
            cpu += r.get("ds_cpu_s") or 0
        a = per.setdefault((f'qd{r["qd"]}{suffix(r)}', r.get("round")), [0, 0.0])
        a[0] += r["ops"]; a[1] += cpu
    byqd = {}
    for (key, _), (ops, cpu) in per.items():
        if cpu > 0:
            byqd.setdefault(key, []).append(ops / cpu)
    return {k: round(statistics.median(v), 1) for k, v in sorted(byqd.items())}
targets = sorted(median)
# Resident-set growth of the server over create, per file, times a million, in MiB (medians
# over rounds); "loom+ds" adds loom-ds's growth. The first --qd value is the one measured on a
# freshly started server; later rounds reuse memory the earlier removes freed.
def rss_per_million(t, fields):
    per = {}
    for r in rows:
        if r["target"] != t or r["op"] != "create":
            continue
        vals = [r.get(f) for f in fields]
        if all(isinstance(v, (int, float)) for v in vals):
            per.setdefault(f'create@qd{r["qd"]}{suffix(r)}', []).append(sum(vals) * 1e6 / 2**20)
    return {k: round(statistics.median(v), 1) for k, v in sorted(per.items())}
rss = {t: rss_per_million(t, ["rss_bytes_per_file"]) for t in targets}
if "loom" in targets:
    rss["loom+ds"] = rss_per_million("loom", ["mds_rss_bytes_per_file", "ds_rss_bytes_per_file"])
rss = {t: v for t, v in rss.items() if v}
mixes = {t: mix(t) for t in targets}
if "loom" in median:
    mixes["loom+ds"] = mix("loom", True)
TARGET_X = 5.0
eff = {}
if "loom" in mixes and "ganesha" in mixes:
    for q, v in mixes["loom"].items():
        g = mixes["ganesha"].get(q)
        eff[q] = ratio(v, g)
s = {
    "bench": "mds-bench", "op": "summary",
    "loom_over_ganesha": over("loom", "ganesha") if "loom" in median and "ganesha" in median else None,
    "ops_per_server_cpu_s_mix": mixes,
    "loom_over_ganesha_ops_per_cpu_s_mix": eff or None,
    "cpu_efficiency_target_x": TARGET_X,
    "cpu_efficiency_target_met": {q: (v is not None and v >= TARGET_X) for q, v in eff.items()} or None,
    "rss_mib_per_million_files": rss or None,
    "loom_over_loom_tmpfs": over("loom", "loom-tmpfs") if "loom" in median and "loom-tmpfs" in median else None,
    "median": median,
    "loom_skipped": skipped,
    "failed": failed,
}
print(json.dumps(s, separators=(",", ":")))
PY
) || { note "summary failed"; FAILED=1; summary=""; }
[[ -n $summary ]] && emit "$summary"

if ((FAILED)); then
    note "FAILED (see messages above)"
    exit 1
fi
note "done; results in $OUT"
exit 0
