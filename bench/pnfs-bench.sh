#!/usr/bin/env bash
# pnfs-bench.sh -- the Linux kernel NFS client (a qemu guest, tests/kernel-client/) doing
# sequential dd writes and reads through loom-mds with Flex Files layouts on 1, 2 and 3 data
# servers, vs the same with loom-mds proxying every byte (--pnfs off), vs nfs-ganesha; with the
# metadata server's and the data servers' CPU seconds per GiB moved.  See bench/README.md
# ("pNFS benchmark").
#
#   bench/pnfs-bench.sh                     kernel 7, 512 MiB per case and direction
#   bench/pnfs-bench.sh --quick             64 MiB (smoke run)
#   bench/pnfs-bench.sh --kernels 6.1,7 --size 256
#
# One guest boot per (kernel, target), each a tests/kernel-client/kernel-client-test.sh run of
# guest/pnfs-bench.sh:
#   loom-pnfs   loom-mds + 3 loom-ds (scripts/loom-cluster.sh, --advertise 10.0.2.2), NFSv4.2
#   loom-proxy  the same cluster with loom-mds --pnfs off: no layouts, loom-mds moves the bytes
#   ganesha     nfs-ganesha (FSAL VFS) on one directory (NFSv4.2; NFSv4.1 on kernel 7, whose
#               READ_PLUS ganesha 4.3 answers wrongly)
# Cases n = 1, 2, 3 (--ns): on kernel 7 (which stripes within a mirror) one file in a
# directory with an n-stripe policy, one dd stream ("stripes"); on 6.1 (one data server per
# mirror) n files of SIZE/n, each on its own data server (created while the others are
# drained), n dd streams at once ("parallel"). ganesha: n files, n streams ("plain"). Each
# case writes SIZE MiB (dd bs=1M conv=fsync from /dev/zero) and reads it back (caches dropped),
# timed in the guest; around every phase the host notes utime+stime (/proc/PID/stat) of
# loom-mds, each loom-ds and ganesha (host action "mark").
#
# Options
#   --size MIB        MiB per case and direction (default 512)
#   --quick           --size 64
#   --kernels LIST    comma list of 6.1, 7 (default 7)
#   --targets LIST    comma list of loom-pnfs, loom-proxy, ganesha (default all three)
#   --ns LIST         cases (default 1,2,3)
#   --readahead-kb K  the guest mount's read_ahead_kb (default 15360, as NFS had before Linux
#                     5.4; "default": the kernel's 128 KiB, which caps every READ at 128 KiB)
#   --out FILE        JSONL output (default build/bench/pnfs-results.jsonl)
#   --keep            keep each run's directory (tests/kernel-client --keep)
# Env: LOOM_DS (default build/apps/loom-ds/loom-ds; loom-mds and loom from the same build).
#
# Output: one JSON line per (kernel, target, n, op) on stdout and in --out, then one summary
# line per kernel. Exit status: 0 unless a run failed (a guest I/O error, a server that does not
# start); slow numbers never fail it. Numbers come from a TCG guest (no KVM): the guest's CPU
# is usually the bottleneck, so compare targets with each other, not with the loopback ceiling.
set -u
set -o pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
KC=$REPO/tests/kernel-client/kernel-client-test.sh

SIZE=512 KERNELS=7 TARGETS=loom-pnfs,loom-proxy,ganesha NS=1,2,3 OUT= KEEP=0 RA=15360
while (($#)); do
    case $1 in
        --size) SIZE=$2; shift 2 ;;
        --quick) SIZE=64; shift ;;
        --kernels) KERNELS=$2; shift 2 ;;
        --targets) TARGETS=$2; shift 2 ;;
        --ns) NS=$2; shift 2 ;;
        --readahead-kb) RA=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "pnfs-bench: unknown argument: $1" >&2; exit 2 ;;
    esac
done
[[ $SIZE =~ ^[1-9][0-9]*$ ]] || { echo "pnfs-bench: --size is a number of MiB" >&2; exit 2; }
RA_WORD=
[ "$RA" = default ] || RA_WORD="RA_KB=$RA"
OUT=${OUT:-$REPO/build/bench/pnfs-results.jsonl}
mkdir -p "$(dirname "$OUT")"
: >"$OUT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/loom-pnfs-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
FAILED=0

note() { echo "pnfs-bench: $*" >&2; }
emit() { echo "$1"; echo "$1" >>"$OUT"; }

# mark_cpu MARKS LABEL KEY: the CPU seconds of KEY (mds, dsI, server) at mark LABEL.
mark_cpu() { awk -v l="$2" -v k="$3" '$1 == l { for (i = 3; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' "$1"; }
# ds_cpu MARKS LABEL: the data servers' CPU seconds summed ("-": a server not running: 0).
ds_cpu() { awk -v l="$2" '$1 == l { s = 0; for (i = 3; i <= NF; i++) if ($i ~ /^ds[0-9]+=/) { split($i, kv, "="); if (kv[2] != "-") s += kv[2] } print s }' "$1"; }
num() { [[ -n ${1:-} ]] && echo "$1" || echo null; }
per_gib() { awk -v c="${1:-}" -v b="$2" 'BEGIN { if (c == "" || b <= 0) print "null"; else printf "%.4f", c / (b / 1073741824) }'; }

# run KERNEL TARGET: one guest boot; appends JSON lines.
run() {
    local kernel=$1 target=$2 save="$WORK/$1-$2" args=() layout vers=4.2 line n op bytes secs
    local c0 c1 d0 d1 s0 s1 mds ds srv mibs
    mkdir -p "$save"
    case $target in
        loom-pnfs | loom-proxy)
            args=(--server loom-mds --ds-count 3)
            [ "$target" = loom-proxy ] && args+=(--mds-args "--pnfs off")
            if [ "$kernel" = 7 ]; then layout=stripes; else layout=parallel; fi ;;
        ganesha)
            args=(--server ganesha)
            layout=plain
            [ "$kernel" = 7 ] && vers=4.1 ;;
    esac
    ((KEEP)) && args+=(--keep)
    note "kernel $kernel, $target ($layout, ${SIZE} MiB per case, NFSv$vers) ..."
    local timeout=$((600 + SIZE * 3 * 2))
    if ! "$KC" "${args[@]}" --kernel "$kernel" --test pnfs-bench --timeout "$timeout" --save "$save" \
        -- SIZE_MB="$SIZE" NS="$NS" LAYOUT="$layout" NFS_VERSION="$vers" ${RA_WORD:+"$RA_WORD"} >"$save/run.log" 2>&1; then
        note "FAILED: kernel $kernel, $target (log: $save/run.log)"
        tail -n 30 "$save/run.log" >&2
        FAILED=1
        cp -r "$save" "$(dirname "$OUT")/pnfs-bench-failed-$kernel-$target" 2>/dev/null || true
        return 1
    fi
    while read -r line; do
        # BENCH layout=L n=N op=OP streams=S bytes=B seconds=T
        n=$(sed -n 's/.* n=\([0-9]*\).*/\1/p' <<<"$line")
        op=$(sed -n 's/.* op=\([a-z]*\).*/\1/p' <<<"$line")
        bytes=$(sed -n 's/.* bytes=\([0-9]*\).*/\1/p' <<<"$line")
        secs=$(sed -n 's/.* seconds=\([0-9.]*\).*/\1/p' <<<"$line")
        streams=$(sed -n 's/.* streams=\([0-9]*\).*/\1/p' <<<"$line")
        mibs=$(awk -v b="$bytes" -v s="$secs" 'BEGIN { if (s > 0) printf "%.2f", b / s / 1048576; else print "null" }')
        mds=null ds=null srv=null
        if [ "$target" = ganesha ]; then
            s0=$(mark_cpu "$save/marks" "n$n-$op-start" server) s1=$(mark_cpu "$save/marks" "n$n-$op-end" server)
            [[ -n $s0 && -n $s1 ]] && srv=$(awk -v a="$s0" -v b="$s1" 'BEGIN { printf "%.2f", b - a }')
        else
            c0=$(mark_cpu "$save/marks" "n$n-$op-start" mds) c1=$(mark_cpu "$save/marks" "n$n-$op-end" mds)
            d0=$(ds_cpu "$save/marks" "n$n-$op-start") d1=$(ds_cpu "$save/marks" "n$n-$op-end")
            [[ -n $c0 && -n $c1 ]] && mds=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.2f", b - a }')
            [[ -n $d0 && -n $d1 ]] && ds=$(awk -v a="$d0" -v b="$d1" 'BEGIN { printf "%.2f", b - a }')
        fi
        emit "{\"bench\":\"pnfs-bench\",\"kernel\":\"$kernel\",\"target\":\"$target\",\"layout\":\"$(sed -n 's/.*layout=\([a-z]*\).*/\1/p' <<<"$line")\",\"n\":$n,\"op\":\"$op\",\"streams\":$streams,\"bytes\":$bytes,\"seconds\":$secs,\"MiB_s\":$mibs,\"mds_cpu_s\":$mds,\"ds_cpu_s\":$ds,\"server_cpu_s\":$srv,\"mds_cpu_s_per_GiB\":$(per_gib "${mds/null/}" "$bytes"),\"ds_cpu_s_per_GiB\":$(per_gib "${ds/null/}" "$bytes"),\"server_cpu_s_per_GiB\":$(per_gib "${srv/null/}" "$bytes"),\"nfs_version\":\"$vers\",\"loadavg\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}"
    done < <(tr -d '\r' <"$save/guest.log" | grep -a '^BENCH ')
}

# value KERNEL TARGET N OP KEY: a number from this run's lines, or empty.
value() {
    grep -F "\"kernel\":\"$1\"" "$OUT" | grep -F "\"target\":\"$2\"" | grep -F "\"n\":$3," | grep -F "\"op\":\"$4\"" |
        sed -n "s/.*\"$5\":\([0-9.][0-9.]*\).*/\1/p" | head -n 1
}
ratio() { awk -v a="${1:-}" -v b="${2:-}" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "null"; else printf "%.4f", a / b }'; }

emit "{\"bench\":\"pnfs-bench\",\"op\":\"config\",\"size_mib\":$SIZE,\"kernels\":\"$KERNELS\",\"targets\":\"$TARGETS\",\"ns\":\"$NS\",\"readahead_kb\":\"$RA\",\"nproc\":$(nproc),\"host_kernel\":\"$(uname -r)\",\"loadavg\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"}"
IFS=, read -r -a kernels <<<"$KERNELS"
IFS=, read -r -a targets <<<"$TARGETS"
IFS=, read -r -a ns <<<"$NS"
for k in "${kernels[@]}"; do
    for t in "${targets[@]}"; do
        case $t in loom-pnfs | loom-proxy | ganesha) ;; *) note "unknown target $t"; exit 2 ;; esac
        run "$k" "$t" || true
    done
    # Summary per kernel: per n and op, MiB/s of each target, pNFS over proxy and over ganesha,
    # loom-mds CPU as a fraction of the data servers' (target: <= 0.01), and how pNFS scales
    # with n (MiB/s at n over MiB/s at the first n).
    s=""
    for op in write read; do
        o=""
        for n in "${ns[@]}"; do
            p=$(value "$k" loom-pnfs "$n" "$op" MiB_s) x=$(value "$k" loom-proxy "$n" "$op" MiB_s) g=$(value "$k" ganesha "$n" "$op" MiB_s)
            mc=$(value "$k" loom-pnfs "$n" "$op" mds_cpu_s_per_GiB) dc=$(value "$k" loom-pnfs "$n" "$op" ds_cpu_s_per_GiB)
            xc=$(value "$k" loom-proxy "$n" "$op" mds_cpu_s_per_GiB) gc=$(value "$k" ganesha "$n" "$op" server_cpu_s_per_GiB)
            p1=$(value "$k" loom-pnfs "${ns[0]}" "$op" MiB_s)
            o+="\"$n\":{\"MiB_s\":{\"loom-pnfs\":$(num "$p"),\"loom-proxy\":$(num "$x"),\"ganesha\":$(num "$g")},\"pnfs_over_proxy\":$(ratio "$p" "$x"),\"pnfs_over_ganesha\":$(ratio "$p" "$g"),\"pnfs_scaling\":$(ratio "$p" "$p1"),\"cpu_s_per_GiB\":{\"pnfs_mds\":$(num "$mc"),\"pnfs_ds\":$(num "$dc"),\"proxy_mds\":$(num "$xc"),\"ganesha\":$(num "$gc")},\"pnfs_mds_over_ds_cpu\":$(ratio "$mc" "$dc")},"
        done
        s+="\"$op\":{${o%,}},"
    done
    emit "{\"bench\":\"pnfs-bench\",\"op\":\"summary\",\"kernel\":\"$k\",\"size_mib\":$SIZE,${s%,},\"failed\":$( ((FAILED)) && echo true || echo false)}"
done
if ((FAILED)); then note "FAILED (see above)"; exit 1; fi
note "done; results in $OUT"
