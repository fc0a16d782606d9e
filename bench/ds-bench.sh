#!/usr/bin/env bash
# ds-bench.sh -- loom-ds vs nfs-ganesha (FSAL VFS) vs raw ceilings, in ONE
# run, on this machine.  See bench/README.md for what every number means.
#
#   bench/ds-bench.sh                 full run (1 GiB file, 10 s random reads)
#   bench/ds-bench.sh --quick         CI smoke run (64 MiB, 2 s)
#
# Steps: build bench/nfsbench.c + bench/tcpstream.c (gcc -O2) into
# build/bench/, create one export directory, measure the ceilings (TCP
# loopback stream; local write / write+fsync / warm read of the export
# filesystem with dd), then for each server -- one at a time, so they never
# compete for the CPUs -- start it exporting that directory, run nfsbench
# seq-write, seq-read and rand-read, sampling the server's CPU time
# (/proc/PID/stat utime+stime, all threads) and memory (/proc/PID/status
# VmRSS/VmHWM) around each phase, and stop it.  With --repeat N the server
# rounds alternate (loom, ganesha, loom, ganesha, ...) and the summary uses
# medians.  One JSON line per result on stdout (and in --out), then a final
# summary line with the ratios.
#
# Options
#   --size N            file size for the sequential phases (default 1G; K/M/G)
#   --rand-seconds S    rand-read duration (default 10)
#   --stream-seconds S  tcpstream duration (default 5)
#   --qd-seq N          requests in flight, seq phases (default 8)
#   --qd-rand N         requests in flight, rand-read (default 16)
#   --conns N           connections for the read phases: N nfsbench processes at once, each
#                       with its own connection and seed; their results are summed (GiB/s,
#                       IOPS, bytes, ops) and the worst p50/p99 kept (default 1)
#   --bs-seq N          seq request size (default 1M)   --bs-rand N (default 4K)
#   --servers LIST      comma list of loom,ganesha (default loom,ganesha)
#   --repeat N          rounds per server, alternating (default 1)
#   --quick             --size 64M --rand-seconds 2 --stream-seconds 2
#   --out FILE          JSONL output file (default build/bench/results.jsonl)
#   --workdir DIR       where the export dir and logs go (default: mktemp -d)
#   --keep              keep the work dir
# Env: LOOM_DS (default build/apps/loom-ds/loom-ds, relative to the repo).
#
# Exit status: 0 unless something really failed -- the tools do not build, a
# server fails to start or dies, an NFS error, a data error (bad data stamp,
# changed write verifier).  Slow numbers never fail the run.  A missing
# loom-ds binary only skips loom-ds (message + nulls in the summary).
set -u
set -o pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
# shellcheck source=SCRIPTDIR/../tests/interop/lib/servers.sh
source "$REPO/tests/interop/lib/servers.sh"

SIZE=1G RAND_S=10 STREAM_S=5 QD_SEQ=8 QD_RAND=16 BS_SEQ=1M BS_RAND=4K
CONNS=1 SERVERS=loom,ganesha OUT="" WORK="" KEEP=0 QUICK=0 REPEAT=1
while (($#)); do
    case $1 in
        --size) SIZE=$2; shift 2 ;;
        --rand-seconds) RAND_S=$2; shift 2 ;;
        --stream-seconds) STREAM_S=$2; shift 2 ;;
        --qd-seq) QD_SEQ=$2; shift 2 ;;
        --qd-rand) QD_RAND=$2; shift 2 ;;
        --conns) CONNS=$2; shift 2 ;;
        --bs-seq) BS_SEQ=$2; shift 2 ;;
        --bs-rand) BS_RAND=$2; shift 2 ;;
        --servers) SERVERS=$2; shift 2 ;;
        --repeat) REPEAT=$2; shift 2 ;;
        --quick) QUICK=1; SIZE=64M RAND_S=2 STREAM_S=2; shift ;;
        --out) OUT=$2; shift 2 ;;
        --workdir) WORK=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,42p' "$0"; exit 0 ;;
        *) echo "ds-bench: unknown argument: $1" >&2; exit 2 ;;
    esac
done
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || { echo "ds-bench: --repeat must be >= 1" >&2; exit 2; }

LOOM_DS=${LOOM_DS:-$REPO/build/apps/loom-ds/loom-ds}
[[ $LOOM_DS == /* ]] || LOOM_DS="$REPO/$LOOM_DS"
export LOOM_DS
BUILD="$REPO/build/bench"
OUT=${OUT:-$BUILD/results.jsonl}
FAILED=0

note() { echo "ds-bench: $*" >&2; }
die() { note "ERROR: $*"; exit 1; }

CREATED_WORK=0
cleanup() {
    local rc=$?
    srv_cleanup_all
    if [[ -n ${EXPORT:-} && -d $EXPORT ]]; then
        rm -f "$EXPORT/nfsbench.dat" "$EXPORT/.ceiling.dat"
    fi
    if ((CREATED_WORK)) && [[ -d $WORK ]]; then
        if ((KEEP)); then note "kept $WORK"; else rm -rf "$WORK"; fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'note interrupted; exit 1' INT TERM HUP

# ---- which servers ------------------------------------------------------
RUN_LOOM=0 RUN_GANESHA=0
IFS=, read -r -a _srv <<<"$SERVERS"
for s in "${_srv[@]}"; do
    case $s in
        loom|loom-ds) RUN_LOOM=1 ;;
        ganesha) RUN_GANESHA=1 ;;
        *) die "--servers: unknown '$s'" ;;
    esac
done
LOOM_SKIPPED=""
if ((RUN_LOOM)) && [[ ! -x $LOOM_DS ]]; then
    LOOM_SKIPPED="binary not found at $LOOM_DS"
    note "loom-ds skipped: $LOOM_SKIPPED"
    RUN_LOOM=0
fi

# ---- dependencies + build ---------------------------------------------
need=(gcc:gcc /usr/include/nfsc/libnfs.h:libnfs-dev awk:mawk dd:coreutils)
((RUN_GANESHA)) && need+=(ganesha.nfsd:nfs-ganesha
    "$GANESHA_PLUGINS_DIR/libfsalvfs.so:nfs-ganesha-vfs" rpcbind:rpcbind rpcinfo:rpcbind)
ensure_pkgs "${need[@]}" || die "missing build/run dependencies"

mkdir -p "$BUILD" "$(dirname "$OUT")"
gcc -O2 -Wall -o "$BUILD/nfsbench" "$HERE/nfsbench.c" -lnfs || die "building nfsbench failed"
gcc -O2 -Wall -o "$BUILD/tcpstream" "$HERE/tcpstream.c" || die "building tcpstream failed"
NFSBENCH="$BUILD/nfsbench"
TCPSTREAM="$BUILD/tcpstream"

if [[ -z $WORK ]]; then
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/loom-bench.XXXXXX")
    CREATED_WORK=1
fi
EXPORT="$WORK/export"
mkdir -p "$EXPORT"
: >"$OUT"

SIZE_BYTES=$(awk -v s="$SIZE" 'BEGIN{ n=s+0; u=toupper(substr(s, length(s))); if(u=="K")n*=1024; else if(u=="M")n*=1048576; else if(u=="G")n*=1073741824; else if(u=="T")n*=1099511627776; printf "%.0f", n}')
SIZE_MB=$(( (SIZE_BYTES + 1048575) / 1048576 ))
((SIZE_BYTES > 0)) || die "--size must be > 0"

emit() { echo "$1"; echo "$1" >>"$OUT"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# tiny JSON helpers for our own flat one-line JSON (no jq needed)
jnum() {  # line key -> number or empty
    sed -n "s/.*\"$2\":\(-\{0,1\}[0-9][0-9.eE+-]*\).*/\1/p" <<<"$1" | head -n1
}
jmedian() {  # bench target op key -> median over all matching lines, or empty
    grep -F "\"bench\":\"$1\"" "$OUT" | grep -F "\"target\":\"$2\"" | grep -F "\"op\":\"$3\"" |
        sed -n "s/.*\"$4\":\(-\{0,1\}[0-9][0-9.eE+-]*\).*/\1/p" | sort -g |
        awk '{v[NR]=$1} END{ if (NR==0) exit; if (NR%2) print v[(NR+1)/2]; else printf "%.4f\n", (v[NR/2]+v[NR/2+1])/2 }'
}
jmax() {  # bench target op key -> max
    grep -F "\"bench\":\"$1\"" "$OUT" | grep -F "\"target\":\"$2\"" | grep -F "\"op\":\"$3\"" |
        sed -n "s/.*\"$4\":\(-\{0,1\}[0-9][0-9.eE+-]*\).*/\1/p" | sort -g | tail -n1
}
fdiv() {  # a b -> a/b with 4 decimals, or null
    awk -v a="${1:-}" -v b="${2:-}" 'BEGIN{ if (a=="" || b=="" || b+0==0) print "null"; else printf "%.4f\n", a/b }'
}
orNull() { [[ -n ${1:-} ]] && echo "$1" || echo null; }

FS_TYPE=$(stat -f -c %T "$EXPORT" 2>/dev/null || echo unknown)
emit "{\"bench\":\"ds-bench\",\"op\":\"config\",\"size\":$SIZE_BYTES,\"bs_seq\":\"$BS_SEQ\",\"bs_rand\":\"$BS_RAND\",\"qd_seq\":$QD_SEQ,\"qd_rand\":$QD_RAND,\"rand_seconds\":$RAND_S,\"stream_seconds\":$STREAM_S,\"repeat\":$REPEAT,\"quick\":$( ((QUICK)) && echo true || echo false),\"export_dir\":\"$EXPORT\",\"export_fs\":\"$FS_TYPE\",\"nproc\":$(nproc),\"kernel\":\"$(uname -r)\",\"loadavg\":\"$(loadavg)\",\"page_cache\":\"warm: no drop_caches; the export fs is primed before each server; reads hit the page cache filled by seq-write, the same for every server\"}"

# ---- page-cache priming ---------------------------------------------------
# The first large write into a fresh file on this VM can be 10x slower than
# later ones (the kernel has to reclaim/allocate pages).  Before each server
# (and before the fs ceiling) we write+delete a file of the same size, so
# every seq-write starts from the same memory state.
prime_fs() {
    dd if=/dev/zero of="$EXPORT/.prime" bs=1M count="$SIZE_MB" status=none 2>/dev/null
    rm -f "$EXPORT/.prime"
    sync
}

# ---- 1. ceilings ------------------------------------------------------------
run_stream() {  # phase
    local line
    if line=$("$TCPSTREAM" --seconds "$STREAM_S" --bs "$BS_SEQ" --target loopback); then
        emit "${line%\}},\"phase\":\"$1\",\"loadavg\":\"$(loadavg)\"}"
    else
        note "tcpstream failed (not fatal)"
    fi
}
dd_secs() {  # dd args... -> seconds dd reports
    dd "$@" 2>&1 >/dev/null | awk -F', ' '/copied/ {split($(NF-1), a, " "); print a[1]}'
}
fs_line() {  # op seconds
    local gib
    gib=$(awk -v b="$SIZE_BYTES" -v s="${2:-0}" 'BEGIN{ if (s>0) printf "%.4f", b/s/1073741824; else print "null"}')
    emit "{\"bench\":\"fs-ceiling\",\"target\":\"local\",\"op\":\"$1\",\"bytes\":$SIZE_BYTES,\"seconds\":$(orNull "$2"),\"GiB_s\":$gib,\"iops\":null,\"p50_us\":null,\"p99_us\":null,\"bs\":1048576,\"tool\":\"dd bs=1M, /dev/zero\",\"loadavg\":\"$(loadavg)\"}"
}
run_fs_ceiling() {
    local f="$EXPORT/.ceiling.dat" s
    prime_fs
    s=$(dd_secs if=/dev/zero of="$f" bs=1M count="$SIZE_MB"); fs_line write "$s"
    rm -f "$f"; sync
    s=$(dd_secs if=/dev/zero of="$f" bs=1M count="$SIZE_MB" conv=fsync); fs_line write+fsync "$s"
    s=$(dd_secs if="$f" of=/dev/null bs=1M); fs_line read "$s"
    rm -f "$f"; sync
}

run_stream before
run_fs_ceiling

# ---- 2. servers ----------------------------------------------------------
# run_phase MODE ROUND (server running; SRV_* set)
run_phase() {
    local mode=$1 round=$2 args=() out rc
    local url; url=$(srv_url_dir)
    case $mode in
        seq-write) args=(--size "$SIZE" --bs "$BS_SEQ" --qd "$QD_SEQ") ;;
        seq-read) args=(--size "$SIZE" --bs "$BS_SEQ" --qd "$QD_SEQ") ;;
        rand-read) args=(--size "$SIZE" --bs "$BS_RAND" --qd "$QD_RAND" --duration "$RAND_S") ;;
    esac
    local c0 c1 rss0 rss1 hwm0 hwm1
    c0=$(proc_cpu_s "$SRV_PID"); rss0=$(proc_mem_kb "$SRV_PID" VmRSS); hwm0=$(proc_mem_kb "$SRV_PID" VmHWM)
    local n=1 k pids=()
    [[ $mode == seq-write ]] || n=$CONNS
    if ((n == 1)); then
        out=$("$NFSBENCH" --url "$url" --mode "$mode" --target "$SRV_KIND" --file nfsbench.dat \
            --seed "$round" "${args[@]}" 2>"$WORK/nfsbench.err")
        rc=$?
    else
        : >"$WORK/nfsbench.err"
        for ((k = 0; k < n; k++)); do
            "$NFSBENCH" --url "$url" --mode "$mode" --target "$SRV_KIND" --file nfsbench.dat \
                --seed "$((round * 1000 + k))" "${args[@]}" >"$WORK/nfsbench.$k.out" 2>>"$WORK/nfsbench.err" &
            pids+=($!)
        done
        rc=0
        for k in "${pids[@]}"; do wait "$k" || rc=$?; done
        # One line per op: the connections' sums, the worst latencies, "conns":N.
        out=$(python3 - "$n" "$WORK"/nfsbench.[0-9]*.out <<'PY'
import json, sys
n = int(sys.argv[1]); ops = {}
for f in sys.argv[2:2 + n]:
    for line in open(f):
        if not line.startswith("{"):
            continue
        d = json.loads(line); a = ops.setdefault(d["op"], dict(d, GiB_s=0, iops=0, bytes=0, ops=0, p50_us=0, p99_us=0, seconds=0))
        for k in ("GiB_s", "iops", "bytes", "ops"):
            a[k] = round(a[k] + (d.get(k) or 0), 4)
        for k in ("p50_us", "p99_us", "seconds"):
            a[k] = max(a[k], d.get(k) or 0)
for d in ops.values():
    d["conns"] = n
    print(json.dumps(d, separators=(",", ":")))
PY
)
        rm -f "$WORK"/nfsbench.[0-9]*.out
    fi
    c1=$(proc_cpu_s "$SRV_PID"); rss1=$(proc_mem_kb "$SRV_PID" VmRSS); hwm1=$(proc_mem_kb "$SRV_PID" VmHWM)
    [[ -s $WORK/nfsbench.err ]] && sed 's/^/  /' "$WORK/nfsbench.err" >&2
    if ((rc != 0)); then
        case $rc in
            3) note "DATA ERROR in $mode against $SRV_KIND" ;;
            *) note "nfsbench $mode against $SRV_KIND failed (rc $rc)" ;;
        esac
        FAILED=1
    fi
    if ! kill -0 "$SRV_PID" 2>/dev/null; then
        note "$SRV_KIND died during $mode (log $SRV_LOG)"; FAILED=1
    fi
    local cpu bytes ops per_gib us_per_op l
    cpu=$(awk -v a="$c0" -v b="$c1" 'BEGIN{printf "%.3f", b-a}')
    while IFS= read -r l; do
        [[ $l == \{* ]] || continue
        bytes=$(jnum "$l" bytes); ops=$(jnum "$l" ops)
        per_gib=$(awk -v c="$cpu" -v b="$bytes" 'BEGIN{ if (b>0) printf "%.4f", c/(b/1073741824); else print "null"}')
        us_per_op=$(awk -v c="$cpu" -v o="$ops" 'BEGIN{ if (o>0) printf "%.2f", c*1e6/o; else print "null"}')
        emit "${l%\}},\"round\":$round,\"server_cpu_s\":$cpu,\"server_cpu_s_per_GiB\":$per_gib,\"server_cpu_us_per_op\":$us_per_op,\"server_rss_kb_before\":$rss0,\"server_rss_kb_after\":$rss1,\"server_hwm_kb_before\":$hwm0,\"server_hwm_kb_after\":$hwm1,\"loadavg\":\"$(loadavg)\"}"
    done <<<"$out"
    return 0
}

declare -A MEM
bench_server() {  # kind round
    local kind=$1 round=$2 rc
    rm -f "$EXPORT/nfsbench.dat"
    prime_fs   # also syncs: no dirty pages of an earlier run get flushed now
    srv_start "$kind" "$EXPORT" "$WORK/$kind.$round"
    rc=$?
    if ((rc != 0)); then
        note "$kind failed to start"; FAILED=1; return 1
    fi
    sleep 0.5
    local rss_s hwm_s anon_s
    rss_s=$(proc_mem_kb "$SRV_PID" VmRSS); hwm_s=$(proc_mem_kb "$SRV_PID" VmHWM)
    anon_s=$(proc_mem_kb "$SRV_PID" RssAnon)
    run_phase seq-write "$round"
    run_phase seq-read "$round"
    run_phase rand-read "$round"
    # memory of the last round is reported in the summary
    MEM[$kind.rss_start]=$rss_s MEM[$kind.hwm_start]=$hwm_s
    MEM[$kind.rss_end]=$(proc_mem_kb "$SRV_PID" VmRSS)
    MEM[$kind.hwm_end]=$(proc_mem_kb "$SRV_PID" VmHWM)
    # RssFile counts page-cache pages mapped into the server (loom-ds sends large READs from a
    # read-only mapping of the file): the page cache, which every server reads through; the
    # server's own memory is RssAnon.
    MEM[$kind.anon_start]=$anon_s
    MEM[$kind.anon_end]=$(proc_mem_kb "$SRV_PID" RssAnon)
    srv_stop
    rm -f "$EXPORT/nfsbench.dat"
}

for ((round = 1; round <= REPEAT; round++)); do
    ((RUN_LOOM)) && bench_server loom "$round"
    ((RUN_GANESHA)) && bench_server ganesha "$round"
done
run_stream after

# ---- 3. summary (medians over rounds) -----------------------------------
ceil=$(jmax tcpstream loopback stream GiB_s)
fs_w=$(jmedian fs-ceiling local write GiB_s)
fs_wf=$(jmedian fs-ceiling local write+fsync GiB_s)
fs_r=$(jmedian fs-ceiling local read GiB_s)
OPS=(seq-write seq-write+commit seq-read rand-read)
med() { jmedian nfsbench "$1" "$2" "$3"; }

declare -A MEDIAN
for t in loom ganesha; do
    for op in "${OPS[@]}"; do
        for k in GiB_s iops p50_us p99_us server_cpu_s_per_GiB server_cpu_us_per_op; do
            MEDIAN[$t.$op.$k]=$(med "$t" "$op" "$k")
        done
    done
done
m() { orNull "${MEDIAN[$1.$2.$3]:-}"; }

obj() {  # build {"op":value,...} from "op=value" words
    local out="" kv
    for kv in "$@"; do out+="\"${kv%%=*}\":${kv#*=},"; done
    echo "{${out%,}}"
}
per_server() {  # target -> {"seq-write":{...},...}
    local t=$1 out="" op
    for op in "${OPS[@]}"; do
        out+="\"$op\":{\"GiB_s\":$(m "$t" "$op" GiB_s),\"iops\":$(m "$t" "$op" iops),\"p50_us\":$(m "$t" "$op" p50_us),\"p99_us\":$(m "$t" "$op" p99_us),\"server_cpu_s_per_GiB\":$(m "$t" "$op" server_cpu_s_per_GiB),\"server_cpu_us_per_op\":$(m "$t" "$op" server_cpu_us_per_op)},"
    done
    echo "{${out%,}}"
}
ratio_lg=() ratio_p99=() ratio_cpu=() lc=() gc=() lfs=() gfs=() cpu_l=() cpu_g=()
for op in "${OPS[@]}"; do
    ratio_lg+=("$op=$(fdiv "${MEDIAN[loom.$op.GiB_s]}" "${MEDIAN[ganesha.$op.GiB_s]}")")
    ratio_p99+=("$op=$(fdiv "${MEDIAN[loom.$op.p99_us]}" "${MEDIAN[ganesha.$op.p99_us]}")")
    [[ $op == seq-write+commit ]] && continue
    ratio_cpu+=("$op=$(fdiv "${MEDIAN[loom.$op.server_cpu_s_per_GiB]}" "${MEDIAN[ganesha.$op.server_cpu_s_per_GiB]}")")
    cpu_l+=("$op=$(m loom "$op" server_cpu_s_per_GiB)")
    cpu_g+=("$op=$(m ganesha "$op" server_cpu_s_per_GiB)")
done
for op in seq-write seq-read; do
    lc+=("$op=$(fdiv "${MEDIAN[loom.$op.GiB_s]}" "$ceil")")
    gc+=("$op=$(fdiv "${MEDIAN[ganesha.$op.GiB_s]}" "$ceil")")
done
for pair in seq-write:$fs_w seq-write+commit:$fs_wf seq-read:$fs_r; do
    op=${pair%%:*} v=${pair#*:}
    lfs+=("$op=$(fdiv "${MEDIAN[loom.$op.GiB_s]}" "$v")")
    gfs+=("$op=$(fdiv "${MEDIAN[ganesha.$op.GiB_s]}" "$v")")
done
mem_json() {
    local k=$1
    [[ -n ${MEM[$k.rss_start]:-} ]] || { echo null; return; }
    local g
    g=$(awk -v a="${MEM[$k.hwm_start]}" -v b="${MEM[$k.hwm_end]}" -v s="$SIZE_BYTES" \
        'BEGIN{ printf "\"hwm_growth_kb\":%d,\"hwm_growth_over_file_size\":%.4f", b-a, (s>0)?(b-a)*1024/s:0 }')
    g+=$(awk -v a="${MEM[$k.anon_start]}" -v b="${MEM[$k.anon_end]}" -v s="$SIZE_BYTES" \
        'BEGIN{ printf ",\"anon_kb_start\":%d,\"anon_kb_end\":%d,\"anon_growth_over_file_size\":%.4f", a, b, (s>0)?(b-a)*1024/s:0 }')
    echo "{\"rss_kb_start\":${MEM[$k.rss_start]},\"rss_kb_end\":${MEM[$k.rss_end]},\"hwm_kb_start\":${MEM[$k.hwm_start]},\"hwm_kb_end\":${MEM[$k.hwm_end]},$g}"
}
skipped=null
[[ -n $LOOM_SKIPPED ]] && skipped="\"$LOOM_SKIPPED\""
emit "{\"bench\":\"ds-bench\",\"op\":\"summary\",\"file_size\":$SIZE_BYTES,\"repeat\":$REPEAT,\"ceiling_GiB_s\":$(orNull "$ceil"),\"fs_ceiling_GiB_s\":$(obj "write=$(orNull "$fs_w")" "write+fsync=$(orNull "$fs_wf")" "read=$(orNull "$fs_r")"),\"loom_over_ganesha_GiB_s\":$(obj "${ratio_lg[@]}"),\"loom_over_ganesha_p99\":$(obj "${ratio_p99[@]}"),\"loom_over_ceiling\":$(obj "${lc[@]}"),\"ganesha_over_ceiling\":$(obj "${gc[@]}"),\"loom_over_fs_ceiling\":$(obj "${lfs[@]}"),\"ganesha_over_fs_ceiling\":$(obj "${gfs[@]}"),\"cpu_s_per_GiB\":{\"loom\":$(obj "${cpu_l[@]}"),\"ganesha\":$(obj "${cpu_g[@]}")},\"loom_over_ganesha_cpu_per_GiB\":$(obj "${ratio_cpu[@]}"),\"memory\":{\"loom\":$(mem_json loom),\"ganesha\":$(mem_json ganesha)},\"median\":{\"loom\":$(per_server loom),\"ganesha\":$(per_server ganesha)},\"loom_skipped\":$skipped,\"failed\":$( ((FAILED)) && echo true || echo false)}"

if ((FAILED)); then
    note "FAILED (see messages above)"
    exit 1
fi
note "done; results in $OUT"
exit 0
