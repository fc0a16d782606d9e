# Guest side of bench/pnfs-bench.sh: sequential write and read with dd (1 MiB blocks) through
# the kernel NFS client, timed, with the host noting the servers' CPU seconds around every
# phase (host action "mark"). Not a test: it fails only when I/O fails.
#
# Parameters (kernel command line words):
#   SERVER_PORT    NFSv4 port (required); SERVER_ADDR, NFS_VERSION (4.2 for loom-mds), NFS_OPTS
#   SIZE_MB        bytes moved per case and direction, in MiB (default 512)
#   NS             the cases: numbers of data servers / streams (default "1 2 3"; ':' or ',' work)
#   RA_KB          the mount's readahead (read_ahead_kb of its bdi; default: the kernel's,
#                  128 KiB since Linux 5.4, which caps sequential READs at 128 KiB)
#   LAYOUT         stripes:  one file in a directory with an N-stripe policy (host action
#                            "admin policy set"; needs a client that stripes: kernel >= 6.18)
#                  parallel: N files of SIZE_MB/N, each created while every other data server
#                            is drained ("admin ds drain"), so each lives on its own data
#                            server; N dd streams at once
#                  plain:    N files of SIZE_MB/N, N dd streams, no admin commands (any server)
# Per case and direction it prints
#   BENCH layout=L n=N op=write|read streams=S bytes=B seconds=T
# between host marks "nN-OP-start" and "nN-OP-end". Writes are dd if=/dev/zero conv=fsync;
# before every read the caches are dropped.
. /lib/loom-guest.sh

nfs_params
SIZE_MB=${SIZE_MB:-512}
NS=$(echo "${NS:-1 2 3}" | tr ':,' '  ')
LAYOUT=${LAYOUT:-plain}
M=/mnt/bench
TAG=$(hostname | tr -cd 'a-zA-Z0-9' | tail -c 8)
B=bench-$TAG
# since START: as in /lib/loom-guest.sh, but with three decimals
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }

# streams OP: OP (write: per MiB of zeros, fsynced; read: whole) on each of $files at once with
# dd, timed between host marks n$n-OP-start and -end; prints the BENCH line.
streams() {
    host_must mark "n$n-$1-start"
    t0=$(now) pids=
    for f in $files; do
        if [ "$1" = write ]; then
            dd if=/dev/zero of="$f" bs=1M count="$per" conv=notrunc,fsync 2>/dev/null &
        else
            dd if="$f" of=/dev/null bs=1M 2>/dev/null &
        fi
        pids="$pids $!"
    done
    st=0
    for i in $pids; do wait "$i" || st=1; done
    secs=$(since "$t0")
    host_must mark "n$n-$1-end"
    [ $st = 0 ] || fail "n=$n: a $1 stream failed"
    echo "BENCH layout=$LAYOUT n=$n op=$1 streams=$(echo $files | wc -w) bytes=$((per * 1048576 * $(echo $files | wc -w))) seconds=$secs"
}

nfs_mount nfs4 "$OPTS" "$A:$EXP" "$M" || fail "NFSv$V mount of $A:$EXP (port $P) failed"
check "mkdir $M/$B" mkdir "$M/$B"
if [ -n "${RA_KB:-}" ]; then
    bdi=$(awk -v m="$M" '$5 == m { print $3 }' /proc/self/mountinfo | head -n 1)
    echo "$RA_KB" >"/sys/class/bdi/$bdi/read_ahead_kb" || fail "cannot set read_ahead_kb of bdi $bdi"
    log "read_ahead_kb of $M (bdi $bdi): $(cat "/sys/class/bdi/$bdi/read_ahead_kb")"
fi
# Something for the host's SUM check (the harness wants one).
echo "pnfs-bench $TAG" >"$M/$B/marker" || fail "cannot write $M/$B/marker"

# ds_ids: the data servers' ids (loom admin ds list).
ds_ids() { host_do admin ds list | awk '$1 ~ /^[0-9]+$/ { print $1 }'; }

# run_case N: write then read N streams (or one N-stripe file).
run_case() {
    local n=$1 d="$M/$B/n$1" i per files= f t0 ids id other pids st
    check "mkdir $d" mkdir "$d"
    case "$LAYOUT" in
    stripes)
        host_must admin policy set "${EXP%/}/$B/n$n" --stripes "$n"
        per=$SIZE_MB files="$d/f0" ;;
    parallel | plain)
        per=$((SIZE_MB / n))
        for i in $(seq 0 $((n - 1))); do files="$files $d/f$i"; done ;;
    *) fail "LAYOUT must be stripes, parallel or plain, not '$LAYOUT'" ;;
    esac
    if [ "$LAYOUT" = parallel ]; then
        ids=$(ds_ids)
        [ "$(echo "$ids" | wc -w)" -ge "$n" ] || fail "$n streams need $n data servers, have: $(echo $ids)"
        i=0
        for f in $files; do
            id=$(echo "$ids" | sed -n "$((i + 1))p")
            for other in $ids; do [ "$other" = "$id" ] || host_must admin ds drain "$other"; done
            dd if=/dev/zero of="$f" bs=4k count=1 conv=fsync 2>/dev/null || fail "creating $f failed"
            for other in $ids; do [ "$other" = "$id" ] || host_must admin ds undrain "$other"; done
            host_do admin layout "${EXP%/}/$B/n$n/f$i" | grep ' ds ' | sed "s|^|guest: f$i on |"
            i=$((i + 1))
        done
    fi
    streams write
    # read, caches dropped
    drop_caches
    streams read
    [ "$LAYOUT" = stripes ] && host_do admin layout "${EXP%/}/$B/n$n/f0" | sed 's|^|guest: layout: |'
    rm -rf "$d" || fail "rm -rf $d failed"
    sync
}

for n in $NS; do run_case "$n"; done
show_nfs_state
echo "SUM $(sha256sum <"$M/$B/marker" | cut -d' ' -f1) $B/marker"
nfs_umount "$M" || fail "umount failed"
