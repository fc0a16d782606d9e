# Guest test: NFSv3 basics through the Linux kernel client (busybox sh, runs as /test.sh).
#
# The server's NFS and MOUNT programs are reached directly on their ports, with
# no rpcbind: the kernel does the MOUNT call itself (mountport/mountproto).
# Parameters (kernel command line words):
#   SERVER_PORT   NFSv3 port (required)
#   MOUNT_PORT    MOUNTv3 port (default SERVER_PORT: one port serves both)
#   SERVER_ADDR   server address as the guest sees it (default 10.0.2.2 = host loopback)
#   EXPORT_PATH   export to mount (default /)
#   TEST_SUBDIR   directory the test works in, below the export root (default kc3)
#   BIG_MB        size of the large random file in MiB (default 20)
#   NFS_OPTS      extra mount options, comma-separated (e.g. rsize=65536,wsize=65536)
# Every operation is applied both to the NFS tree and to a reference tree in the
# guest's tmpfs; the two must stay identical (names, types, modes, sizes, sha256),
# before and after a remount. At the end it prints "SUM <sha256> <path>" and
# "DIR <path>" lines (paths relative to the export root) for the host to check.
. /lib/loom-guest.sh

[ -n "$SERVER_PORT" ] || fail "SERVER_PORT is not set"
P=$SERVER_PORT
MP=${MOUNT_PORT:-$P}
A=${SERVER_ADDR:-10.0.2.2}
EXP=${EXPORT_PATH:-/}
SUB=${TEST_SUBDIR:-kc3}
BIG_MB=${BIG_MB:-20}
OPTS="vers=3,proto=tcp,port=$P,mountport=$MP,mountproto=tcp,nolock,addr=$A,mountaddr=$A${NFS_OPTS:+,$NFS_OPTS}"
M=/mnt/nfs
T=$M/$SUB
R=/tmp/ref/$SUB
S=/tmp/src
umask 022

# both CMD: run CMD (shell text, relative paths) in the reference tree, then on NFS.
both() {
    cd "$R" && eval "$1" || fail "reference tree: $1"
    cd "$T" && eval "$1" || fail "on NFS: $1"
    cd /
}

# size_in_listing DIR NAME: the size column of NAME in `ls -ln DIR`.
size_in_listing() { ls -ln "$1" | awk -v n="$2" '$NF == n { print $5 }'; }

expect_size() {
    local got
    got=$(size_in_listing "$T/$(dirname "$1")" "$(basename "$1")")
    [ "$got" = "$2" ] || fail "ls -l shows $1 with size '${got}', expected $2"
}

compare_trees() {
    manifest "$R" >/tmp/m.ref
    manifest "$T" >/tmp/m.nfs
    if ! cmp -s /tmp/m.ref /tmp/m.nfs; then
        echo "guest: reference tree vs NFS tree ($1):"
        diff /tmp/m.ref /tmp/m.nfs
        fail "NFS tree differs from the reference tree ($1)"
    fi
    log "trees identical ($1): $(wc -l </tmp/m.ref) entries"
}

do_mount() {
    nfs_mount nfs "$OPTS" "$A:$EXP" "$M" || fail "NFSv3 mount of $A:$EXP (port $P, mountport $MP) failed"
    [ "$(mount_opt "$M" vers)" = 3 ] || fail "mounted, but not with vers=3: $(grep " $M " /proc/mounts)"
}

# ---- source data -------------------------------------------------------------
mkdir -p "$S" "$R"
echo "hello loom" >"$S/small.txt"
dd if=/dev/urandom of="$S/odd.bin" bs=12345 count=1 2>/dev/null
dd if=/dev/urandom of="$S/mid.bin" bs=1000001 count=1 2>/dev/null
timed "generate ${BIG_MB} MiB random" dd if=/dev/urandom of="$S/big.bin" bs=1M count="$BIG_MB" 2>/dev/null

# ---- first mount: create, write, list, rename, modify, remove ------------------
do_mount
[ -e "$T" ] && { log "removing $T left from an earlier run"; rm -rf "$T"; }
check "mkdir $T" mkdir "$T"

both "mkdir -p a/b/c d e gone/sub"
both "cp $S/small.txt small.txt"
both "cp $S/odd.bin odd.bin"
both "cp $S/mid.bin a/b/mid.bin"
both "cp $S/odd.bin doomed.bin"
both ": >empty.txt"
cp "$S/big.bin" "$R/big.bin"
timed "write ${BIG_MB} MiB (dd conv=fsync)" dd if="$S/big.bin" of="$T/big.bin" bs=1M conv=fsync 2>/dev/null ||
    fail "writing big.bin failed"

echo "guest: ls -la $T"; ls -la "$T"
expect_size small.txt 11
expect_size odd.bin 12345
expect_size empty.txt 0
expect_size big.bin $((BIG_MB * 1048576))
expect_size a/b/mid.bin 1000001
compare_trees "after create"

# Renames: files across directories, a directory across directories, over an existing file.
both "mv odd.bin a/b/c/odd-moved.bin"
both "mv a/b/mid.bin d/mid.bin"
both "mv d a/d2"
both "mv small.txt e/small.txt"
both "echo old >e/victim.txt && cp $S/odd.bin e/new.bin && mv e/new.bin e/victim.txt"
[ -e "$T/odd.bin" ] && fail "odd.bin still visible after rename"
[ -e "$T/d" ] && fail "directory d still visible after rename"
echo "guest: ls -laR $T"; ls -laR "$T"
expect_size a/b/c/odd-moved.bin 12345
expect_size a/d2/mid.bin 1000001
expect_size e/victim.txt 12345

# Appends, a write in the middle, truncation both ways, a mode change.
both "echo appended-line >>e/small.txt"
both "dd if=$S/odd.bin bs=1000 count=3 2>/dev/null >>a/d2/mid.bin"
both "dd if=$S/odd.bin of=big.bin bs=4096 seek=5 count=2 conv=notrunc 2>/dev/null"
both "truncate -s 7340035 big.bin"
both "cp $S/odd.bin sparse.bin && truncate -s 3000000 sparse.bin"
both "chmod 640 e/small.txt && chmod 700 a/b"
expect_size e/small.txt 25
expect_size a/d2/mid.bin 1003001
expect_size big.bin 7340035
expect_size sparse.bin 3000000

# Removals; a non-empty directory must refuse rmdir.
both "rm doomed.bin"
both "rmdir gone/sub && rmdir gone"
[ -e "$T/doomed.bin" ] && fail "doomed.bin still visible after rm"
[ -e "$T/gone" ] && fail "directory gone still visible after rmdir"
rmdir "$T/a" 2>/dev/null && fail "rmdir of a non-empty directory succeeded"
compare_trees "after modifications, same mount"
show_nfs_state
timed "umount" nfs_umount "$M" || fail "umount failed"

# ---- second mount: everything must have reached the server -----------------------
drop_caches
do_mount
timed "read $(stat -c %s "$T/big.bin") bytes" dd if="$T/big.bin" of=/dev/null bs=1M 2>/dev/null || fail "reading big.bin failed"
drop_caches
compare_trees "after remount"
show_nfs_state
echo "guest: ls -laR $T (after remount)"; ls -laR "$T"
emit_sums "$T" "$SUB"
timed "umount" nfs_umount "$M" || fail "final umount failed"
log "nfs3-basic: all checks passed"
