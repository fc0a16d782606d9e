#!/usr/bin/env bash
# train-bench.sh -- AI training reads, MLPerf Storage method, on Loom (libloom), on the local
# filesystem (the page-cache reference) and on nfs-ganesha (libnfs, NFSv3), in ONE run on this
# machine; then a raw libloom read sweep over 1-3 data servers and 1-4 connections per data
# server.  See bench/README.md ("Training benchmark") and docs/benchmarks.md.
#
#   bench/train-bench.sh                 full run (4 s search trials, 3 s sweep points; ~5 min)
#   bench/train-bench.sh --quick         smoke run (smaller data sets, 2 s trials; ~2 min)
#
# Steps: build bench/tcpstream.c and bench/nfsbench.c (gcc) into build/bench/; measure one
# loopback TCP stream (the ceiling); start a Loom cluster (scripts/loom-cluster.sh: loom-mds +
# 3 loom-ds on free ports) and nfs-ganesha (FSAL VFS, tests/interop/lib/servers.sh) exporting a
# local directory; write the data sets with `loom bench train --prepare` (to Loom, and to the
# local directory that ganesha exports: local and ganesha read the same files); for each
# workload (unet3d, resnet50, cosmoflow) and backend (loom, local, ganesha) run
# `loom bench train --search`: the largest number of simulated accelerators whose mean AU stays
# >= 90% (70% for cosmoflow).  Sweep: `loom bench read` of a file striped over n = 1, 2, 3 data
# servers (directory policy --stripes n), 1 MiB sequential and 128 KiB random, 1, 2 and 4
# connections per data server, next to nfsbench reading n loom-ds directly at the same time
# (the ceiling of n servers on this machine).  Servers run side by side but only one client
# runs at a time.
#
# Options
#   --quick             TRAIN_SCALE=0.5, --trial-seconds 2, --sweep-seconds 2, --sweep-size 128M
#   --workloads LIST    comma list (default unet3d,resnet50,cosmoflow)
#   --backends LIST     comma list of loom,local,ganesha (default all three)
#   --trial-seconds S   length of one search trial (default 4)
#   --max-accelerators N  search cap (default 64)
#   --sweep-seconds S   length of one sweep point (default 3); --sweep-size N (default 512M)
#   --sweep-depth D     reads in flight in the sweep (default 16)
#   --no-sweep          skip the sweep
#   --out FILE          JSONL of every run (default build/bench/train-results.jsonl)
#   --keep              keep the work directory (default: mktemp -d, removed at the end)
# Env: TRAIN_SCALE (default 1) scales the data sets: unet3d 24, resnet50 8 (of 1251 samples
#      each, as MLPerf's TFRecord files), cosmoflow 300 files at 1 (never fewer than one
#      batch); LOOM_BIN (default build/apps: loom/loom, loom-mds/loom-mds, loom-ds/loom-ds);
#      LOOM_DS_ARGS: extra loom-ds arguments (e.g. --sendfile on), for the cluster's data servers
#      and the direct ones alike.
#
# Output: progress on stderr, every run as a JSON line in --out, and on stdout ONE JSON object:
# per workload the accelerators, AU and MB/s of each backend side by side, the loopback ceiling
# (one TCP stream / one accelerator's demand) and the ratios loom/ceiling and loom/ganesha; the
# sweep table.  Exit status 0 unless something broke (a server does not start, a benchmark
# fails with an I/O error); low numbers never fail it.  Needs root for ganesha and rpcbind.
set -u
set -o pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
# shellcheck source=SCRIPTDIR/../tests/interop/lib/servers.sh
source "$REPO/tests/interop/lib/servers.sh"

WORKLOADS=unet3d,resnet50,cosmoflow BACKENDS=loom,local,ganesha TRIAL_S=4 MAX_ACC=64
SWEEP=1 SWEEP_S=3 SWEEP_SIZE=512M SWEEP_DEPTH=16 OUT='' KEEP=0
SCALE=${TRAIN_SCALE:-1}
while (($#)); do
    case $1 in
        --quick) SCALE=${TRAIN_SCALE:-0.5} TRIAL_S=2 SWEEP_S=2 SWEEP_SIZE=128M; shift ;;
        --workloads) WORKLOADS=$2; shift 2 ;;
        --backends) BACKENDS=$2; shift 2 ;;
        --trial-seconds) TRIAL_S=$2; shift 2 ;;
        --max-accelerators) MAX_ACC=$2; shift 2 ;;
        --sweep-seconds) SWEEP_S=$2; shift 2 ;;
        --sweep-size) SWEEP_SIZE=$2; shift 2 ;;
        --sweep-depth) SWEEP_DEPTH=$2; shift 2 ;;
        --no-sweep) SWEEP=0; shift ;;
        --out) OUT=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "train-bench: unknown argument: $1" >&2; exit 2 ;;
    esac
done

BIN=${LOOM_BIN:-$REPO/build/apps}
LOOM=$BIN/loom/loom
export LOOM_DS=$BIN/loom-ds/loom-ds
BUILD=$REPO/build/bench
OUT=${OUT:-$BUILD/train-results.jsonl}
FAILED=0

note() { echo "train-bench: $*" >&2; }
die() { note "ERROR: $*"; exit 1; }

RUN_LOOM=0
[[ ,$BACKENDS, == *,loom,* ]] && RUN_LOOM=1
for b in "$LOOM" "$BIN/loom-mds/loom-mds" "$LOOM_DS"; do
    [[ $b == "$LOOM" ]] || ((RUN_LOOM)) || continue
    [[ -x $b ]] || die "$b not found (build: ninja -C build loom loom-mds loom-ds)"
done
"$LOOM" bench --help >/dev/null 2>&1 || die "$LOOM has no 'bench' command"
need=(gcc:gcc /usr/include/nfsc/libnfs.h:libnfs-dev python3:python3)
[[ ,$BACKENDS, == *,ganesha,* ]] && need+=(ganesha.nfsd:nfs-ganesha
    "$GANESHA_PLUGINS_DIR/libfsalvfs.so:nfs-ganesha-vfs" rpcbind:rpcbind rpcinfo:rpcbind)
ensure_pkgs "${need[@]}" || die "missing dependencies"
mkdir -p "$BUILD" "$(dirname "$OUT")"
gcc -O2 -Wall -o "$BUILD/tcpstream" "$HERE/tcpstream.c" || die "building tcpstream failed"
gcc -O2 -Wall -o "$BUILD/nfsbench" "$HERE/nfsbench.c" -lnfs || die "building nfsbench failed"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/loom-train-bench.XXXXXX")
EXPORT=$WORK/export
mkdir -p "$EXPORT"
: >"$OUT"
CLUSTER_PID=
cleanup() {
    local rc=$?
    if [[ -n $CLUSTER_PID ]]; then
        kill "$CLUSTER_PID" 2>/dev/null
        wait "$CLUSTER_PID" 2>/dev/null
    fi
    srv_cleanup_all
    if ((KEEP)); then note "kept $WORK"; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'note interrupted; exit 1' INT TERM HUP

record() { echo "$1" >>"$OUT"; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# ---- the loopback ceiling ---------------------------------------------------------------
stream() {
    local l
    l=$("$BUILD/tcpstream" --seconds 2 --bs 1M --target loopback) || { note "tcpstream failed"; return; }
    record "${l%\}},\"phase\":\"$1\",\"loadavg\":\"$(loadavg)\"}"
}
stream before

# ---- servers ----------------------------------------------------------------------------
MDS= LOOM_PIDS= GANESHA_PID=
if ((RUN_LOOM)); then
    free_port || die "no free port"
    MDS=127.0.0.1:$FREE_PORT
    "$REPO/scripts/loom-cluster.sh" --dir "$WORK/cluster" --port "$FREE_PORT" --ds 3 --bin "$BIN" \
        --ds-args "${LOOM_DS_ARGS:-}" \
        >"$WORK/cluster.out" 2>&1 &
    CLUSTER_PID=$!
    for _ in $(seq 300); do
        grep -q "loom-mds ready" "$WORK/cluster/mds.log" 2>/dev/null && break
        kill -0 "$CLUSTER_PID" 2>/dev/null || break
        sleep 0.1
    done
    grep -q "loom-mds ready" "$WORK/cluster/mds.log" 2>/dev/null ||
        { tail -n 20 "$WORK/cluster.out" >&2; die "the Loom cluster did not start"; }
    # The servers whose CPU time `loom bench train --cpu-pid` counts per GB read: loom-mds
    # and the three loom-ds (started by the cluster script, found by their state paths).
    LOOM_PIDS=
    for p in $(pgrep -f -- "$WORK/cluster/"); do
        case $(cat "/proc/$p/comm" 2>/dev/null) in loom-mds|loom-ds) LOOM_PIDS+=${LOOM_PIDS:+,}$p ;; esac
    done
    note "Loom cluster up: loom-mds $MDS, 3 loom-ds (pids $LOOM_PIDS)"
fi
GANESHA_URL=
if [[ ,$BACKENDS, == *,ganesha,* ]]; then
    srv_start ganesha "$EXPORT" "$WORK/ganesha" || die "ganesha did not start"
    GANESHA_URL=$(srv_url_dir)
    GANESHA_PID=$SRV_PID
fi

# ---- data sets -------------------------------------------------------------------------
files_for() {  # workload -> scaled file count, at least one batch
    local base min
    case $1 in unet3d) base=24 min=7 ;; resnet50) base=8 min=1 ;; cosmoflow) base=300 min=1 ;; esac
    awk -v b="$base" -v s="$SCALE" -v m="$min" 'BEGIN { n = int(b * s + 0.5); print (n < m ? m : n) }'
}
bench_train() {  # backend-args... ; prints the JSON line, 0 on success
    "$LOOM" bench train "$@" --json 2>>"$WORK/train.log"
}
backend_args() {  # backend -> the loom bench train arguments for it
    case $1 in
        loom) echo "--backend loom --mds $MDS --dir /train${LOOM_PIDS:+ --cpu-pid $LOOM_PIDS}" ;;
        local) echo "--backend local --dir $EXPORT/train" ;;
        ganesha) echo "--backend nfs --nfs-url $GANESHA_URL --dir /train --cpu-pid $GANESHA_PID" ;;
    esac
}
IFS=, read -r -a workloads <<<"$WORKLOADS"
IFS=, read -r -a backends <<<"$BACKENDS"
for w in "${workloads[@]}"; do
    n=$(files_for "$w")
    # ganesha reads the files the local backend wrote (it exports that directory).
    for where in loom local; do
        [[ $where == loom && ,$BACKENDS, != *,loom,* ]] && continue
        [[ $where == local && ,$BACKENDS, != *,local,* && ,$BACKENDS, != *,ganesha,* ]] && continue
        note "writing $w ($n files) to $where"
        # shellcheck disable=SC2046  # backend_args words
        if l=$(bench_train --prepare --workload "$w" --files "$n" $(backend_args "$where")); then
            record "${l%\}},\"backend\":\"$where\"}"
        else
            note "prepare $w on $where failed (see below)"; tail -n 5 "$WORK/train.log" >&2; FAILED=1
        fi
    done
done
sync

# ---- training runs ---------------------------------------------------------------------
for w in "${workloads[@]}"; do
    n=$(files_for "$w")
    for b in "${backends[@]}"; do
        note "$w on $b: searching (trials of ${TRIAL_S}s)"
        # A failed search still prints what it measured, with "error" set.
        # shellcheck disable=SC2046
        l=$(bench_train --workload "$w" --files "$n" --search --trial-seconds "$TRIAL_S" \
            --max-accelerators "$MAX_ACC" $(backend_args "$b"))
        rc=$?
        [[ $l == \{* ]] && record "${l%\}},\"target\":\"$b\",\"loadavg\":\"$(loadavg)\"}"
        if ((rc == 0)); then
            note "  $(sed -n 's/.*"accelerators":\([0-9]*\),"search".*"au_mean":\([0-9.]*\).*"throughput_MB_s":\([0-9.]*\).*/\1 accelerators, AU \2, \3 MB\/s/p' <<<"$l")"
        else
            note "$w on $b failed:"; tail -n 3 "$WORK/train.log" >&2; FAILED=1
        fi
    done
done

# ---- sweep: libloom reads vs data servers and connections ----------------------------------
if ((SWEEP && RUN_LOOM)); then
    for ns in 1 2 3; do
        "$LOOM" --mds "$MDS" mkdir -p "/sweep$ns" >/dev/null 2>>"$WORK/train.log" ||
            "$LOOM" --mds "$MDS" mkdir "/sweep$ns" >/dev/null 2>>"$WORK/train.log"
        if ! "$LOOM" --mds "$MDS" admin policy set "/sweep$ns" --stripes "$ns" >>"$WORK/train.log" 2>&1; then
            note "policy set /sweep$ns --stripes $ns failed (the file gets the default placement)"
        fi
        for c in 1 2 4; do
            for p in seq:1M rand:128K; do
                if l=$("$LOOM" bench read --mds "$MDS" --pattern "${p%%:*}" --bs "${p#*:}" \
                    --depth "$SWEEP_DEPTH" --connections "$c" --seconds "$SWEEP_S" \
                    --size "$SWEEP_SIZE" --file "/sweep$ns/read.dat" --json 2>>"$WORK/train.log"); then
                    record "${l%\}},\"data_servers\":$ns,\"loadavg\":\"$(loadavg)\"}"
                    note "  sweep n=$ns c=$c ${p%%:*}: $(sed -n 's/.*"MiB_s":\([0-9.]*\).*"iops":\([0-9]*\).*/\1 MiB\/s, \2 IOPS/p' <<<"$l")"
                else
                    note "bench read n=$ns c=$c $p failed:"; tail -n 3 "$WORK/train.log" >&2; FAILED=1
                fi
            done
        done
    done
    # The direct-read ceiling: nfsbench (one connection per server, the same depth) reading
    # loom-ds instances of their own directly, no metadata server, for the same time as a sweep
    # point: 1 MiB and 128 KiB reads at random aligned offsets (nfsbench's seq-read reads the
    # file only once, too short to time here; from the page cache 1 MiB random and sequential
    # cost the same). For n = 1, 2, 3 servers the n readers run at the same time and their
    # rates add up: on one machine the servers share its CPUs, so "the sum of their ceilings"
    # is what they deliver together, not n times what one delivers alone.
    direct_urls=()
    for i in 1 2 3; do
        mkdir -p "$WORK/ds-direct$i"
        if srv_start loom "$WORK/ds-direct$i" "$WORK/ds-direct$i.work"; then
            url=$(srv_url_dir)
            # shellcheck disable=SC2086
            if out=$("$BUILD/nfsbench" --url "$url" --mode seq-write --bs 1M --target loom-ds-direct \
                --file direct.dat --size "$SWEEP_SIZE" --qd "$SWEEP_DEPTH" 2>>"$WORK/train.log"); then
                direct_urls+=("$url")
            else
                note "nfsbench seq-write against loom-ds $i failed"; FAILED=1
            fi
        else
            note "a direct loom-ds did not start"; FAILED=1
        fi
    done
    for n in 1 2 3; do
        ((n <= ${#direct_urls[@]})) || break
        for bs in 1M 128K; do
            pids=()
            for ((i = 0; i < n; i++)); do
                "$BUILD/nfsbench" --url "${direct_urls[$i]}" --mode rand-read --bs "$bs" --duration "$SWEEP_S" \
                    --target loom-ds-direct --file direct.dat --size "$SWEEP_SIZE" --qd "$SWEEP_DEPTH" \
                    >"$WORK/direct.$n.$i.out" 2>>"$WORK/train.log" &
                pids+=($!)
            done
            for ((i = 0; i < n; i++)); do
                if wait "${pids[$i]}"; then
                    while IFS= read -r l; do
                        [[ $l == \{* ]] && record "${l%\}},\"direct\":true,\"direct_servers\":$n,\"direct_index\":$i}"
                    done <"$WORK/direct.$n.$i.out"
                else
                    note "nfsbench rand-read $bs against loom-ds $((i + 1)) of $n failed"; FAILED=1
                fi
            done
        done
    done
    srv_cleanup_all
fi
stream after

# ---- the summary --------------------------------------------------------------------------
python3 - "$OUT" "$FAILED" "$SCALE" "$TRIAL_S" <<'EOF'
import json, sys
out, failed, scale, trial_s = sys.argv[1], sys.argv[2] == "1", float(sys.argv[3]), float(sys.argv[4])
lines = [json.loads(l) for l in open(out) if l.strip().startswith("{")]
def r(a, b, d=3):
    return None if a is None or b in (None, 0) else round(a / b, d)
streams = [l["GiB_s"] for l in lines if l.get("bench") == "tcpstream" and l.get("GiB_s")]
ceil_mb = max(streams) * 1073741824 / 1e6 if streams else None
train = {}
for l in lines:
    if l.get("bench") == "train":
        train.setdefault(l["workload"], {})[l["target"]] = l
workloads = {}
for w, by in train.items():
    any_l = next(iter(by.values()))
    demand = any_l["demand_MB_s_per_accelerator"]
    ceiling_acc = r(ceil_mb, demand, 2)
    side = {b: {"accelerators": l["accelerators"], "au_mean": l["au_mean"], "au_min": l["au_min"],
                "MB_s": l["throughput_MB_s"], "samples_s": l["samples_s"],
                "MB_s_over_demand": r(l["throughput_MB_s"], demand, 2),
                "read_p99_ms": l.get("best_trial", {}).get("read_p99_ms"),
                "cpu_s_per_GB": {k: l.get("cpu", {}).get(k + "_s_per_GB") for k in ("client", "server", "total")},
                "trials": len(l["trials"]), "error": l.get("error")} for b, l in by.items()}
    # The same load on both: the largest accelerator count that loom's and ganesha's searches
    # both ran (their doubling steps are the same), a batch's read time there side by side.
    equal = None
    if "loom" in by and "ganesha" in by:
        tl = {t["accelerators"]: t for t in by["loom"]["trials"] if not t.get("error")}
        tg = {t["accelerators"]: t for t in by["ganesha"]["trials"] if not t.get("error")}
        both = sorted(set(tl) & set(tg))
        if both:
            n = both[-1]
            pick = lambda t: {k: t.get(k) for k in ("au_mean", "MB_s", "read_p50_ms", "read_p99_ms")}
            equal = {"accelerators": n, "loom": pick(tl[n]), "ganesha": pick(tg[n]),
                     "ganesha_over_loom_read_p99": r(tg[n].get("read_p99_ms"), tl[n].get("read_p99_ms"), 2)}
    cpu = lambda b: side.get(b, {}).get("cpu_s_per_GB", {}).get("total")
    # A search that ended in an error has no answer: no count, no ratio.
    acc = lambda b: by[b]["accelerators"] if b in by and not by[b].get("error") else None
    workloads[w] = {
        "sample_bytes": any_l["sample_bytes"], "batch": any_l["batch"], "compute_s": any_l["compute_s"],
        "files": any_l["files"], "samples_per_file": any_l.get("samples_per_file", 1),
        "au_target": any_l["au_target"],
        "demand_MB_s_per_accelerator": demand,
        "accelerators": {b: acc(b) for b in by},
        "backends": side,
        "ceiling_accelerators": ceiling_acc,
        "loom_over_ceiling": r(acc("loom"), ceiling_acc),
        # Accelerators are counted whole: the ceiling feeds floor(ceiling / demand) of them at
        # full utilisation.
        "ceiling_accelerators_whole": None if ceiling_acc is None else int(ceil_mb // demand),
        "loom_over_ceiling_whole": None if ceiling_acc is None or ceil_mb < demand else r(acc("loom"), int(ceil_mb // demand)),
        "loom_over_ganesha": r(acc("loom"), acc("ganesha")),
        "loom_over_local": r(acc("loom"), acc("local")),
        "loom_over_ganesha_MB_s": r(by.get("loom", {}).get("throughput_MB_s"), by.get("ganesha", {}).get("throughput_MB_s")),
        # Client + server CPU seconds per GB read over the whole search.
        "ganesha_over_loom_cpu_per_GB": r(cpu("ganesha"), cpu("loom"), 2),
        "equal_load": equal,
    }
sweep = []
for l in lines:
    if l.get("bench") == "read":
        sweep.append({k: l.get(k) for k in ("data_servers", "stripes", "connections", "pattern", "bs", "depth",
                                             "MiB_s", "iops", "p50_us", "p99_us", "mds_read_bytes")})
def bs_key(bs):
    return "1M" if bs == 1048576 else "128K"
# direct[n][bs]: n loom-ds read directly at the same time, their rates summed.
direct = {}
for l in lines:
    if l.get("target") == "loom-ds-direct" and l.get("op") == "rand-read" and l.get("direct_servers"):
        d = direct.setdefault(str(l["direct_servers"]), {}).setdefault(
            bs_key(l.get("bs")), {"MiB_s": 0.0, "iops": 0, "p99_us_max": 0, "bs": l.get("bs"), "qd": l.get("qd")})
        d["MiB_s"] = round(d["MiB_s"] + l["GiB_s"] * 1024, 1)
        d["iops"] += l.get("iops") or 0
        d["p99_us_max"] = max(d["p99_us_max"], l.get("p99_us") or 0)
for s in sweep:
    d = direct.get(str(s["data_servers"]), {}).get(bs_key(s["bs"]))
    s["over_direct_ceiling"] = r(s["MiB_s"], d["MiB_s"]) if d else None
loads = [l.get("loadavg") for l in lines if l.get("loadavg")]
print(json.dumps({
    "bench": "train-bench", "op": "summary", "scale": scale, "trial_seconds": trial_s,
    "loadavg_first": loads[0] if loads else None, "loadavg_last": loads[-1] if loads else None,
    "loopback_ceiling_MB_s": round(ceil_mb, 1) if ceil_mb else None,
    "workloads": workloads,
    "sweep": {"direct_ds_ceiling": direct, "points": sweep},
    "failed": failed}, separators=(",", ":")))
EOF
if ((FAILED)); then note "FAILED (see above; log lines in $WORK/train.log)"; exit 1; fi
note "done; every run in $OUT"
