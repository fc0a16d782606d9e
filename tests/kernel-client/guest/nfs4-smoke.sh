# Guest test: NFSv4.1 / 4.2 smoke test through the Linux kernel client (runs as /test.sh).
#
# Parameters (kernel command line words):
#   SERVER_PORT    NFSv4 port (required)
#   SERVER_ADDR    server address as the guest sees it (default 10.0.2.2 = host loopback)
#   EXPORT_PATH    path to mount (default /)
#   NFS4_VERSIONS  minor versions to test, one after the other, separated by ':'
#                  or '+' (default 4.1:4.2); e.g. NFS4_VERSIONS=4.2
#   TEST_SUBDIR    per-version directory prefix below the export (default kc4 -> kc4-v4.1/)
#   BIG_MB         size of the large random file in MiB (default 8)
#   NFS_OPTS       extra mount options, comma-separated
#   EXPECT_PNFS    if set (e.g. LAYOUT_FLEX_FILES), mountstats must show pnfs=<that>
# For each version: mount, write files, rename, list, remount, verify checksums;
# then "SUM <sha256> <path>" / "DIR <path>" lines for the host to check.
. /lib/loom-guest.sh

[ -n "$SERVER_PORT" ] || fail "SERVER_PORT is not set"
P=$SERVER_PORT
A=${SERVER_ADDR:-10.0.2.2}
EXP=${EXPORT_PATH:-/}
BIG_MB=${BIG_MB:-8}
VERSIONS=$(echo "${NFS4_VERSIONS:-4.1:4.2}" | tr ':+,' '   ')
S=/tmp/src
umask 022

mkdir -p "$S"
echo "hello loom nfs4" >"$S/small.txt"
dd if=/dev/urandom of="$S/odd.bin" bs=12345 count=1 2>/dev/null
dd if=/dev/urandom of="$S/big.bin" bs=1M count="$BIG_MB" 2>/dev/null

compare_trees() {
    manifest "$R" >/tmp/m.ref
    manifest "$T" >/tmp/m.nfs
    if ! cmp -s /tmp/m.ref /tmp/m.nfs; then
        echo "guest: reference tree vs NFS tree ($1):"
        diff /tmp/m.ref /tmp/m.nfs
        fail "v$V: NFS tree differs from the reference tree ($1)"
    fi
    log "v$V: trees identical ($1): $(wc -l </tmp/m.ref) entries"
}

for V in $VERSIONS; do
    case "$V" in 4.0 | 4.1 | 4.2) ;; *) fail "unsupported NFS4_VERSIONS entry '$V'" ;; esac
    OPTS="vers=$V,proto=tcp,port=$P,addr=$A${NFS_OPTS:+,$NFS_OPTS}"
    M=/mnt/v$V
    SUB=${TEST_SUBDIR:-kc4}-v$V
    T=$M/$SUB
    R=/tmp/ref/$SUB

    nfs_mount nfs4 "$OPTS" "$A:$EXP" "$M" || fail "NFSv$V mount of $A:$EXP (port $P) failed"
    [ "$(mount_opt "$M" vers)" = "$V" ] || fail "mounted, but not with vers=$V: $(grep " $M " /proc/mounts)"
    [ -e "$T" ] && { log "removing $T left from an earlier run"; rm -rf "$T"; }
    check "mkdir $T" mkdir -p "$T/dir/sub"
    mkdir -p "$R/dir/sub"

    for d in "$R" "$T"; do
        cp "$S/small.txt" "$d/small.txt" || fail "v$V: write small.txt in $d"
        cp "$S/odd.bin" "$d/odd.bin" || fail "v$V: write odd.bin in $d"
        cp "$S/odd.bin" "$d/dir/sub/nested.bin" || fail "v$V: write nested.bin in $d"
    done
    cp "$S/big.bin" "$R/big.bin"
    timed "v$V: write $BIG_MB MiB (dd conv=fsync)" dd if="$S/big.bin" of="$T/big.bin" bs=1M conv=fsync 2>/dev/null ||
        fail "v$V: writing big.bin failed"
    for d in "$R" "$T"; do
        mv "$d/odd.bin" "$d/dir/odd-renamed.bin" || fail "v$V: rename in $d"
        echo "more" >>"$d/small.txt" || fail "v$V: append in $d"
    done
    echo "guest: ls -laR $T"; ls -laR "$T"
    compare_trees "same mount"
    show_nfs_state
    if [ -n "$EXPECT_PNFS" ]; then
        grep -q "pnfs=$EXPECT_PNFS" /proc/self/mountstats || fail "v$V: mountstats does not show pnfs=$EXPECT_PNFS"
    fi
    nfs_umount "$M" || fail "v$V: umount failed"

    drop_caches
    nfs_mount nfs4 "$OPTS" "$A:$EXP" "$M" || fail "NFSv$V remount failed"
    timed "v$V: read $BIG_MB MiB" dd if="$T/big.bin" of=/dev/null bs=1M 2>/dev/null || fail "v$V: reading big.bin failed"
    drop_caches
    compare_trees "after remount"
    show_nfs_state
    emit_sums "$T" "$SUB"
    nfs_umount "$M" || fail "v$V: final umount failed"
done
log "nfs4-smoke: all checks passed for NFSv$(echo $VERSIONS | sed 's/ /, v/g')"
