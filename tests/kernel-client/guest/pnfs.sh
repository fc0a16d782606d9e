# Guest test: pNFS Flexible File layouts (RFC 8435) from loom-mds through the Linux kernel
# client (runs as /test.sh; kernel-client-test.sh --server loom-mds --ds-count 3).
#
# Parameters (kernel command line words):
#   SERVER_PORT    NFSv4 port of loom-mds (required)
#   SERVER_ADDR    server address as the guest sees it (default 10.0.2.2 = host loopback)
#   NFS_VERSION    4.1 or 4.2 (default 4.2);  NFS_OPTS  extra mount options
#   BIG_MB         size of the big file in MiB (default 256)
#   EXPECT_PNFS    1 (default): the I/O must bypass loom-mds (layouts, no MDS READ/WRITE);
#                  0: loom-mds runs with --pnfs off, so there must be no layouts at all and
#                  every byte goes through it (the baseline)
#   STRIPE_TEST    auto (default: on kernels >= 6.18, which stripe within a mirror), 1, 0
#   STRIPES        stripe count for that test (default 3; needs DS_COUNT data servers >= it)
#   STRIPE_UNIT    bytes (default 1048576);  STRIPE_MB  its file's size (default 48, plus
#                  12345 bytes so that the last stripe unit is partial)
#   PNFS_DEBUG     1: echo 0x3000 >/proc/sys/sunrpc/nfs_debug (PNFS | PNFS_LD) around the
#                  striped file and print the kernel's pNFS messages
# What it does: writes a BIG_MB random file (dd bs=1M conv=fsync), drops the caches, reads it
# back and compares sha256; checks /proc/self/mountstats of the mount: pnfs=LAYOUT_FLEX_FILES,
# and GETDEVICEINFO > 0, LAYOUTGET reported (one outside OPEN is provoked: read 1 MiB, close,
# reopen with pages cached, read further; but a client holding a delegation and the layout
# from OPEN needs none: REQUIRE_LAYOUTGET_RPC=1 makes it a failure). The mount's READ/WRITE counters cannot show where data went
# (the flexfiles driver adds the data servers' NFSv3 READ/WRITE/COMMIT to them), so the host
# checks (HOSTCHECK) that loom-mds counted no READ, READ_PLUS or WRITE and that the data
# servers moved at least BIG_MB MiB each way. Then (STRIPE_TEST) a directory gets a policy of
# STRIPES stripes (host action "admin policy set"), a file is written there and read back, and
# the host checks that each of STRIPES data servers holds about 1/STRIPES of it and that the
# stripes put together are the file. SUM lines let the host find the big file's bytes in a
# data file.
. /lib/loom-guest.sh

nfs_params
case "$V" in 4.1 | 4.2) ;; *) fail "pnfs.sh is for NFSv4.1/4.2, not NFS_VERSION=$V" ;; esac
BIG_MB=${BIG_MB:-256}
EXPECT_PNFS=${EXPECT_PNFS:-1}
STRIPES=${STRIPES:-3}
STRIPE_UNIT=${STRIPE_UNIT:-1048576}
STRIPE_MB=${STRIPE_MB:-48}
STRIPE_TEST=${STRIPE_TEST:-auto}
if [ "$STRIPE_TEST" = auto ]; then
    if kernel_at_least 6 18; then STRIPE_TEST=1; else STRIPE_TEST=0; fi
fi
if [ "$STRIPE_TEST" = 1 ] && [ "${DS_COUNT:-1}" -lt "$STRIPES" ]; then
    log "only ${DS_COUNT:-1} data servers: no $STRIPES-stripe test"
    STRIPE_TEST=0
fi
[ "$EXPECT_PNFS" = 1 ] || STRIPE_TEST=0
M=/mnt/pnfs
TAG=$(hostname | tr -cd 'a-zA-Z0-9' | tail -c 8)
SUB=pnfs-$TAG
T=$M/$SUB
BIG=$((BIG_MB * 1048576))

nfs_mount nfs4 "$OPTS" "$A:$EXP" "$M" || fail "NFSv$V mount of $A:$EXP (port $P) failed"
[ "$(mount_opt "$M" vers)" = "$V" ] || fail "mounted, but not with vers=$V: $(grep " $M " /proc/mounts)"
check "mkdir $T" mkdir -p "$T"

timed "make the $BIG_MB MiB source file" dd if=/dev/urandom of=/tmp/big.bin bs=1M count="$BIG_MB" 2>/dev/null ||
    fail "cannot make /tmp/big.bin (guest memory?)"
BIG_SUM=$(sha256sum </tmp/big.bin | cut -d' ' -f1)
log "big.bin: $BIG_MB MiB, sha256 $BIG_SUM"

timed "write $BIG_MB MiB (dd bs=1M conv=fsync)" dd if=/tmp/big.bin of="$T/big.bin" bs=1M conv=fsync 2>/dev/null ||
    fail "writing $T/big.bin failed"
rm -f /tmp/big.bin  # guest memory
drop_caches
timed "read $BIG_MB MiB back (sha256, caches dropped)" sh -c "sha256sum <'$T/big.bin' >/tmp/big.sum" ||
    fail "reading $T/big.bin back failed"
sum=$(cut -d' ' -f1 /tmp/big.sum)
[ "$sum" = "$BIG_SUM" ] || fail "big.bin reads back with sha256 $sum, wrote $BIG_SUM"
[ "$(stat -c %s "$T/big.bin")" = "$BIG" ] || fail "big.bin has size $(stat -c %s "$T/big.bin"), want $BIG"
log "big.bin read back identical"
# A LAYOUTGET of its own, not inside OPEN (mountstats counts RPCs, and the layouts so far came
# with OPEN): read the first MiB and close (the layout goes back with the CLOSE:
# return-on-close); a read-only open that finds cached pages asks for no layout, so reading
# further on needs a LAYOUTGET.
drop_caches
dd if="$T/big.bin" of=/dev/null bs=1M count=1 2>/dev/null || fail "reading the first MiB of big.bin failed"
dd if="$T/big.bin" of=/dev/null bs=1M skip=$((BIG_MB / 2)) count=4 2>/dev/null || fail "reading big.bin at $((BIG_MB / 2)) MiB failed"

# check_mountstats WHAT: the client's own view of this mount.
check_mountstats() {
    local pnfs lg gdi r rp w
    pnfs=$(awk -v m="$M" '/^device / { on = ($5 == m) } on && /pnfs=/ { sub(/.*pnfs=/, ""); sub(/,.*/, ""); print; exit }' /proc/self/mountstats)
    lg=$(mountstat_op "$M" LAYOUTGET) gdi=$(mountstat_op "$M" GETDEVICEINFO)
    r=$(mountstat_op "$M" READ) rp=$(mountstat_op "$M" READ_PLUS) w=$(mountstat_op "$M" WRITE)
    log "mountstats ($1): pnfs=$pnfs LAYOUTGET=$lg GETDEVICEINFO=$gdi LAYOUTCOMMIT=$(mountstat_op "$M" LAYOUTCOMMIT) LAYOUTRETURN=$(mountstat_op "$M" LAYOUTRETURN) READ=$r READ_PLUS=$rp WRITE=$w COMMIT=$(mountstat_op "$M" COMMIT)"
    if [ "$EXPECT_PNFS" = 1 ]; then
        [ "$pnfs" = LAYOUT_FLEX_FILES ] || fail "$1: mountstats says pnfs=$pnfs, want LAYOUT_FLEX_FILES"
        # mountstats counts RPCs: a LAYOUTGET inside an OPEN compound is counted as OPEN. With
        # layouts handed out in OPEN and a delegation held (later opens stay local), the
        # client may never need a LAYOUTGET of its own; the host counts every one
        # (HOSTCHECK mds-op LAYOUTGET). REQUIRE_LAYOUTGET_RPC=1 insists on one here.
        if [ "$lg" = 0 ]; then
            [ "${REQUIRE_LAYOUTGET_RPC:-0}" = 1 ] && fail "$1: no LAYOUTGET RPC in mountstats"
            log "$1: no LAYOUTGET RPC of its own (OPEN=$(mountstat_op "$M" OPEN) DELEGRETURN=$(mountstat_op "$M" DELEGRETURN)): the layouts came inside OPEN"
        fi
        [ "$gdi" -gt 0 ] || fail "$1: no GETDEVICEINFO in mountstats"
        # READ/WRITE/COMMIT here include the data servers' NFSv3 calls: the flexfiles driver
        # counts them on the mount (ff_layout_{read,write,commit}_count_stats). Whether the
        # metadata server saw any is for the host to check (HOSTCHECK mds-op READ ...).
        [ "$rp" = 0 ] || log "$1: READ_PLUS=$rp: reads went to the metadata server (the data servers are NFSv3: no READ_PLUS)"
    else
        [ "$lg" = 0 ] || fail "$1: LAYOUTGET=$lg with EXPECT_PNFS=0 (loom-mds --pnfs off)"
        [ "$w" -gt 0 ] || fail "$1: no WRITE to the metadata server with EXPECT_PNFS=0"
    fi
}
check_mountstats "after $BIG_MB MiB written and read"
echo "SUM $BIG_SUM $SUB/big.bin"
if [ "$EXPECT_PNFS" = 1 ]; then
    echo "HOSTCHECK mds-op READ calls == 0"
    echo "HOSTCHECK mds-op READ_PLUS calls == 0"
    echo "HOSTCHECK mds-op WRITE calls == 0"
    echo "HOSTCHECK mds-op LAYOUTGET calls > 0"
    echo "HOSTCHECK mds-op GETDEVICEINFO calls > 0"
    echo "HOSTCHECK ds-bytes-written >= $BIG"
    echo "HOSTCHECK ds-bytes-read >= $BIG"
else
    echo "HOSTCHECK mds-op LAYOUTGET calls == 0"
    echo "HOSTCHECK mds-op WRITE calls > 0"
    echo "HOSTCHECK ds-bytes-written >= $BIG"
fi

# ---- a striped file (kernels >= 6.18) ---------------------------------------------------
if [ "$STRIPE_TEST" = 1 ]; then
    SD=$SUB-striped
    check "mkdir $M/$SD" mkdir "$M/$SD"
    host_must admin policy set "${EXP%/}/$SD" --stripes "$STRIPES" --stripe-unit "$STRIPE_UNIT"
    host_do admin policy get "${EXP%/}/$SD" | sed 's/^/guest: policy: /'
    SSIZE=$((STRIPE_MB * 1048576 + 12345))
    dd if=/dev/urandom of=/tmp/striped.bin bs=1M count="$STRIPE_MB" 2>/dev/null &&
        dd if=/dev/urandom bs=12345 count=1 2>/dev/null >>/tmp/striped.bin || fail "cannot make /tmp/striped.bin"
    S_SUM=$(sha256sum </tmp/striped.bin | cut -d' ' -f1)
    if [ "${PNFS_DEBUG:-0}" = 1 ]; then echo 0x3000 >/proc/sys/sunrpc/nfs_debug; dmesg -c >/dev/null; fi
    timed "write the $STRIPES-stripe file ($SSIZE bytes)" dd if=/tmp/striped.bin of="$M/$SD/striped.bin" bs=1M conv=fsync 2>/dev/null ||
        fail "writing $M/$SD/striped.bin failed"
    drop_caches
    sum=$(sha256sum <"$M/$SD/striped.bin" | cut -d' ' -f1)
    if [ "${PNFS_DEBUG:-0}" = 1 ]; then
        echo 0 >/proc/sys/sunrpc/nfs_debug
        echo "---- kernel pNFS messages (striped file) ----"; dmesg | grep -iE 'layout|flexfile|ff_|stripe|deviceid|_ds' | tail -n 60
        echo "---- end ----"
    fi
    [ "$sum" = "$S_SUM" ] || fail "the striped file reads back with sha256 $sum, wrote $S_SUM"
    [ "$(stat -c %s "$M/$SD/striped.bin")" = "$SSIZE" ] || fail "striped.bin has size $(stat -c %s "$M/$SD/striped.bin"), want $SSIZE"
    INO=$(stat -c %i "$M/$SD/striped.bin")
    log "striped.bin (inode $INO) read back identical"
    host_do admin layout "${EXP%/}/$SD/striped.bin" | sed 's/^/guest: layout: /'
    check_mountstats "after the striped file"
    echo "HOSTCHECK stripes $INO $SSIZE $STRIPE_UNIT $STRIPES $S_SUM"
    rm -f /tmp/striped.bin
fi

show_nfs_state
nfs_umount "$M" || fail "umount failed"
log "pnfs: all checks passed (NFSv$V, EXPECT_PNFS=$EXPECT_PNFS, striped test: $STRIPE_TEST)"
