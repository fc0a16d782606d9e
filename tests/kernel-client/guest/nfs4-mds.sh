# Guest test: real work on NFSv4.1 / 4.2 mounts of loom-mds through the Linux kernel client,
# optionally with a metadata-server crash + restart under the mount (runs as /test.sh).
#
# Parameters (kernel command line words):
#   SERVER_PORT    NFSv4 port (required)
#   SERVER_ADDR    server address as the guest sees it (default 10.0.2.2 = host loopback)
#   EXPORT_PATH    path to mount (default /)
#   NFS4_VERSIONS  minor versions to test, one after the other, separated by ':' or '+'
#                  (default 4.1:4.2)
#   TEST_SUBDIR    per-version directory prefix below the export (default kcm -> kcm-v4.1/)
#   BIG_MB         size of the large random file in MiB (default 100)
#   NFS_OPTS       extra mount options, comma-separated
#   MDS_RESTART    1: in every version, print "LOOM-HOST-ACTION: restart-mds" while files
#                  and locks are open and I/O is in flight, wait for the client to reconnect
#                  to the restarted server, and check that all state survived (default 0;
#                  kernel-client-test.sh --server loom-mds sets it for this test)
#   RESTART_WAIT   seconds to wait for the reconnection after the marker (default 120)
# Each version: files (write, read, append, write in the middle, truncate down/up),
# a deep mkdir -p, renames across directories (files, a directory, over an existing
# file), hard links (link counts), symlinks (readlink), chmod, chown (numeric), ls -lR,
# rm -rf of a tree, flock and fcntl locks between processes (/bin/locktest), a BIG_MB file;
# all mirrored in a reference tree in guest memory and compared (on the same mount, after
# the restart, after umount + drop_caches + remount); then "SUM <sha256> <path>" and
# "DIR <path>" lines for the host check.
. /lib/loom-guest.sh

[ -n "$SERVER_PORT" ] || fail "SERVER_PORT is not set"
P=$SERVER_PORT
A=${SERVER_ADDR:-10.0.2.2}
EXP=${EXPORT_PATH:-/}
BIG_MB=${BIG_MB:-100}
MDS_RESTART=${MDS_RESTART:-0}
RESTART_WAIT=${RESTART_WAIT:-120}
VERSIONS=$(echo "${NFS4_VERSIONS:-4.1:4.2}" | tr ':+,' '   ')
S=/tmp/src
umask 022

command -v locktest >/dev/null || fail "no /bin/locktest in the initramfs (rebuild it: prepare.sh)"

mkdir -p "$S"
echo "hello loom nfs4 mds" >"$S/small.txt"
dd if=/dev/urandom of="$S/odd.bin" bs=12345 count=1 2>/dev/null
dd if=/dev/urandom of="$S/mid.bin" bs=1048583 count=1 2>/dev/null   # 1 MiB + 7
dd if=/dev/urandom of="$S/during.bin" bs=64k count=32 2>/dev/null   # 2 MiB
timed "make the $BIG_MB MiB source file" dd if=/dev/urandom of="$S/big.bin" bs=1M count="$BIG_MB" 2>/dev/null ||
    fail "cannot make $S/big.bin (guest memory?)"
BIG_SUM=$(sha256sum <"$S/big.bin" | cut -d' ' -f1)
log "big.bin: $BIG_MB MiB, sha256 $BIG_SUM"

# ---- helpers -----------------------------------------------------------------------------

# tree_manifest DIR: one sorted line per entry (big.bin left out: it is checked by its sum):
#   d PATH MODE UID:GID | f PATH MODE UID:GID NLINK SIZE SHA256 | l PATH -> TARGET
tree_manifest() {
    (
        cd "$1" || exit 1
        find . -mindepth 1 | sort | while read -r p; do
            case "$p" in ./big.bin) continue ;; esac
            if [ -L "$p" ]; then
                echo "l ${p#./} -> $(readlink "$p")"
            elif [ -d "$p" ]; then
                echo "d ${p#./} $(stat -c '%a %u:%g' "$p")"
            elif [ -f "$p" ]; then
                echo "f ${p#./} $(stat -c '%a %u:%g %h %s' "$p") $(sha256sum <"$p" | cut -d' ' -f1)"
            else
                echo "? ${p#./}"
            fi
        done
    )
}

compare_trees() {
    tree_manifest "$R" >/tmp/m.ref
    tree_manifest "$T" >/tmp/m.nfs
    if ! cmp -s /tmp/m.ref /tmp/m.nfs; then
        echo "guest: reference tree vs NFS tree ($1):"
        diff /tmp/m.ref /tmp/m.nfs
        fail "v$V: NFS tree differs from the reference tree ($1)"
    fi
    log "v$V: trees identical ($1): $(wc -l </tmp/m.ref) entries"
}

check_big() {
    local sum
    sum=$(sha256sum <"$T/big.bin" | cut -d' ' -f1) || fail "v$V: reading big.bin failed ($1)"
    [ "$sum" = "$BIG_SUM" ] || fail "v$V: big.bin has sha256 $sum, wrote $BIG_SUM ($1)"
    log "v$V: big.bin ($BIG_MB MiB) checksum ok ($1)"
}

# ls -lnR, reduced to what must agree between tmpfs and NFS: type+mode, owner, and for
# non-directories the link count, size and name (with the symlink target).
ls_canon() {
    (cd "$1" && ls -lnR .) | awk '
        /^total / || /^$/ { next }
        /:$/ { print; next }
        /^d/ { print $1, $3, $4, $NF; next }
        { line = $1 " " $2 " " $3 " " $4 " " $5; for (i = 9; i <= NF; i++) line = line " " $i; print line }' |
        grep -v ' big.bin$'
}

# expect_eq WHAT GOT WANT
expect_eq() { [ "$2" = "$3" ] || fail "v$V: $1: got '$2', expected '$3'"; }

# work_ops D: the same namespace and data operations, applied to the reference tree and
# to the NFS tree.
work_ops() {
    local d=$1 i
    mkdir -p "$d/a/b/c/d/e/f/g/h/i/j/k/l" || fail "v$V: mkdir -p of a deep tree in $d"
    mkdir -p "$d/src" "$d/dst" "$d/a/b/c/d/e/f/g/h/i/j/k/l" || fail "v$V: mkdir -p (existing) in $d"
    cp "$S/small.txt" "$d/src/small.txt" || fail "v$V: write small.txt in $d"
    cp "$S/odd.bin" "$d/src/odd.bin" || fail "v$V: write odd.bin in $d"
    cp "$S/mid.bin" "$d/src/mid.bin" || fail "v$V: write mid.bin in $d"
    cp "$S/odd.bin" "$d/a/b/c/d/e/f/g/h/i/j/k/l/deep.bin" || fail "v$V: write deep.bin in $d"
    echo "line 1" >"$d/src/log.txt" || fail "v$V: create log.txt in $d"
    for i in 2 3 4 5 6 7 8 9 10; do echo "line $i" >>"$d/src/log.txt" || fail "v$V: append to log.txt in $d"; done
    cat "$S/odd.bin" >>"$d/src/log.txt" || fail "v$V: append odd.bin to log.txt in $d"
    # A write in the middle, and one past the end (a hole).
    dd if="$S/small.txt" of="$d/src/mid.bin" bs=1 seek=100000 conv=notrunc 2>/dev/null || fail "v$V: write into mid.bin in $d"
    cp "$S/small.txt" "$d/src/sparse.bin" && dd if="$S/small.txt" of="$d/src/sparse.bin" bs=1 seek=3000000 conv=notrunc 2>/dev/null ||
        fail "v$V: write past EOF of sparse.bin in $d"
    # truncate: shrink, grow (hole), to zero and then append.
    cp "$S/mid.bin" "$d/src/shrink.bin" && truncate -s 5000 "$d/src/shrink.bin" || fail "v$V: truncate down in $d"
    cp "$S/odd.bin" "$d/src/grow.bin" && truncate -s 2000000 "$d/src/grow.bin" || fail "v$V: truncate up in $d"
    cp "$S/odd.bin" "$d/src/zero.bin" && truncate -s 0 "$d/src/zero.bin" && echo "after truncate" >>"$d/src/zero.bin" ||
        fail "v$V: truncate to 0 + append in $d"
    : >"$d/src/empty" || fail "v$V: create empty in $d"
    # Renames: within a directory, across directories, a directory with a subtree across
    # directories, onto an existing file.
    mv "$d/src/small.txt" "$d/src/small-renamed.txt" || fail "v$V: rename in a directory in $d"
    mv "$d/src/odd.bin" "$d/dst/odd-moved.bin" || fail "v$V: rename a file across directories in $d"
    mv "$d/a/b/c/d" "$d/dst/d-moved" || fail "v$V: rename a directory across directories in $d"
    cp "$S/small.txt" "$d/dst/victim.txt" && cp "$S/mid.bin" "$d/src/replacement.bin" &&
        mv "$d/src/replacement.bin" "$d/dst/victim.txt" || fail "v$V: rename onto an existing file in $d"
    # Hard links (three names for mid.bin, one of them in the moved directory).
    ln "$d/src/mid.bin" "$d/dst/mid-link.bin" || fail "v$V: hard link in $d"
    ln "$d/src/mid.bin" "$d/dst/d-moved/mid-link2.bin" || fail "v$V: second hard link in $d"
    ln "$d/src/log.txt" "$d/src/log-link.txt" && rm "$d/src/log-link.txt" || fail "v$V: link + unlink in $d"
    # Symbolic links.
    ln -s ../src/log.txt "$d/dst/log-symlink" || fail "v$V: symlink in $d"
    ln -s /nonexistent/target "$d/dst/dangling" || fail "v$V: dangling symlink in $d"
    ln -s a/b "$d/dirlink" || fail "v$V: symlink to a directory in $d"
    # chmod, chown (numeric ids).
    chmod 600 "$d/src/log.txt" && chmod 755 "$d/dst/odd-moved.bin" && chmod 700 "$d/a/b" &&
        chmod 1777 "$d/dst/d-moved" && chmod 444 "$d/src/shrink.bin" || fail "v$V: chmod in $d"
    chown 1234:5678 "$d/src/grow.bin" && chown 4242 "$d/dst" && chgrp 99 "$d/src/empty" ||
        fail "v$V: chown in $d"
    # Root may append to a read-only (0444) file.
    echo "root writes anyway" >>"$d/src/shrink.bin" || fail "v$V: root appending to a 0444 file in $d"
    # rm -rf of a tree with files, links and a directory symlink.
    mkdir -p "$d/junk/x/y/z" "$d/junk/w" || fail "v$V: mkdir junk in $d"
    for i in 1 2 3 4 5 6 7 8; do cp "$S/small.txt" "$d/junk/x/y/z/f$i" || fail "v$V: write junk in $d"; done
    cp "$S/odd.bin" "$d/junk/w/odd" && ln "$d/junk/w/odd" "$d/junk/x/odd-link" && ln -s ../x "$d/junk/w/xlink" ||
        fail "v$V: links in junk in $d"
    rm -rf "$d/junk" || fail "v$V: rm -rf of a tree in $d"
    [ -e "$d/junk" ] && fail "v$V: $d/junk is still there after rm -rf"
    return 0
}

# verify_ops: what work_ops must have left on the NFS tree, looked at directly.
verify_ops() {
    local i1 i2 i3
    expect_eq "link count of src/mid.bin" "$(stat -c %h "$T/src/mid.bin")" 3
    expect_eq "link count of dst/mid-link.bin" "$(stat -c %h "$T/dst/mid-link.bin")" 3
    i1=$(stat -c %i "$T/src/mid.bin") i2=$(stat -c %i "$T/dst/mid-link.bin") i3=$(stat -c %i "$T/dst/d-moved/mid-link2.bin")
    [ "$i1" = "$i2" ] && [ "$i2" = "$i3" ] || fail "v$V: hard links have different inode numbers: $i1 $i2 $i3"
    expect_eq "link count of src/log.txt after link + unlink" "$(stat -c %h "$T/src/log.txt")" 1
    expect_eq "readlink dst/log-symlink" "$(readlink "$T/dst/log-symlink")" ../src/log.txt
    expect_eq "readlink dst/dangling" "$(readlink "$T/dst/dangling")" /nonexistent/target
    expect_eq "readlink dirlink" "$(readlink "$T/dirlink")" a/b
    expect_eq "stat -L of a symlink to a directory" "$(stat -L -c %F "$T/dirlink")" directory
    if ! cmp -s "$T/dst/log-symlink" "$R/src/log.txt"; then
        # What differs, as this client sees it and as the server has it (caches dropped), so
        # that a failure says whether the bytes or only the size went wrong.
        log "v$V: log.txt differs: $(cmp "$T/dst/log-symlink" "$R/src/log.txt" 2>&1 | head -n 1);" \
            "sizes nfs $(stat -c %s "$T/src/log.txt") reference $(stat -c %s "$R/src/log.txt")"
        head -n 12 "$T/src/log.txt" | od -c | head -n 12
        sync; echo 3 >/proc/sys/vm/drop_caches
        log "v$V: after drop_caches: $(cmp "$T/dst/log-symlink" "$R/src/log.txt" 2>&1 | head -n 1)"
        fail "v$V: reading through dst/log-symlink gives other data"
    fi
    [ -d "$T/dirlink/c/d" ] && fail "v$V: a/b/c/d should have moved away"
    [ -d "$T/dst/d-moved/e/f/g/h/i/j/k/l" ] || fail "v$V: the moved directory lost its subtree"
    expect_eq "mode of src/log.txt" "$(stat -c %a "$T/src/log.txt")" 600
    expect_eq "mode of dst/d-moved" "$(stat -c %a "$T/dst/d-moved")" 1777
    expect_eq "mode of a/b" "$(stat -c %a "$T/a/b")" 700
    expect_eq "owner of src/grow.bin" "$(stat -c %u:%g "$T/src/grow.bin")" 1234:5678
    expect_eq "owner of dst" "$(stat -c %u:%g "$T/dst")" 4242:0
    expect_eq "owner of src/empty" "$(stat -c %u:%g "$T/src/empty")" 0:99
    expect_eq "size of src/shrink.bin" "$(stat -c %s "$T/src/shrink.bin")" 5019
    expect_eq "size of src/grow.bin" "$(stat -c %s "$T/src/grow.bin")" 2000000
    expect_eq "size of src/sparse.bin" "$(stat -c %s "$T/src/sparse.bin")" 3000020
    expect_eq "size of src/empty" "$(stat -c %s "$T/src/empty")" 0
    expect_eq "content of src/zero.bin" "$(cat "$T/src/zero.bin")" "after truncate"
    expect_eq "tail of src/log.txt" "$(head -n 10 "$T/src/log.txt" | tail -n 1)" "line 10"
    expect_eq "zeros in the grown part of grow.bin" \
        "$(dd if="$T/src/grow.bin" bs=4096 skip=100 count=10 2>/dev/null | od -An -v -tx1 | tr -d ' \n' | tr -d 0 | wc -c)" 0
    [ -e "$T/junk" ] && fail "v$V: junk is back"
    ls "$T" | grep -q junk && fail "v$V: the directory listing still shows junk"
    log "v$V: link counts, inode numbers, symlinks, modes, owners, sizes ok"
}

# wait_file FILE SECONDS: wait until the local FILE exists.
wait_file() {
    local i=0
    while [ ! -e "$1" ]; do
        i=$((i + 1))
        [ $i -gt $(($2 * 10)) ] && return 1
        usleep 100000
    done
}

# wait_in_fcntl PID SECONDS READY: wait until process PID sleeps inside fcntl(2) (x86_64 syscall
# 72, the first field of /proc/PID/syscall) without having made its READY file (what it makes
# once it has the lock); fails if PID leaves, makes READY or never gets there. A blocked
# F_SETLKW sits there while the NFS client retries LOCK (RFC 8881 §9.6: the client polls).
wait_in_fcntl() {
    local i=0 nr
    while :; do
        read -r nr _ <"/proc/$1/syscall" 2>/dev/null || return 1
        [ "$nr" = 72 ] && [ ! -e "$3" ] && return 0
        [ -e "$3" ] && return 1
        i=$((i + 1))
        [ $i -gt $(($2 * 50)) ] && return 1
        usleep 20000
    done
}

# lock_tests DIR: flock and fcntl locks between processes on the NFS tree.
lock_tests() {
    local d=$1 kind holder rc waiter
    mkdir -p "$d" || fail "v$V: mkdir $d"
    timed "v$V: locktest forktest (fcntl ranges, flock, F_GETLK across fork)" \
        locktest forktest "$d/range.lck" || fail "v$V: locktest forktest failed (see the locktest lines)"
    for kind in flock fcntl; do
        rm -f /tmp/l.ready /tmp/l.go
        locktest hold "$kind" "$d/$kind.lck" 0 0 /tmp/l.ready /tmp/l.go &
        holder=$!
        wait_file /tmp/l.ready 60 || fail "v$V: $kind: the lock holder did not get its lock"
        rc=0; locktest try "$kind" "$d/$kind.lck" || rc=$?
        [ $rc = 1 ] || fail "v$V: $kind: a second process got the lock held by another one (try: $rc, want 1 = conflict)"
        touch /tmp/l.go
        wait $holder || fail "v$V: $kind: the lock holder failed"
        locktest try "$kind" "$d/$kind.lck" || fail "v$V: $kind: no lock after the holder released it"
        log "v$V: $kind: exclusive lock held by one process, refused to another (non-blocking), granted after release"
    done
    # fcntl: F_GETLK sees a byte-range lock of another process; a blocked F_SETLKW waiter
    # gets the lock when the holder releases it.
    rm -f /tmp/l.ready /tmp/l.go /tmp/w.ready /tmp/w.go
    locktest hold fcntl "$d/wait.lck" 10 20 /tmp/l.ready /tmp/l.go &
    holder=$!
    wait_file /tmp/l.ready 60 || fail "v$V: fcntl range holder did not get its lock"
    rc=0; locktest test "$d/wait.lck" 0 100 || rc=$?
    [ $rc = 1 ] || fail "v$V: F_GETLK over [0,100) does not see the lock on [10,30) (status $rc)"
    locktest test "$d/wait.lck" 30 10 || fail "v$V: F_GETLK over [30,40) sees a conflict"
    locktest try fcntl "$d/wait.lck" 30 10 || fail "v$V: lock [30,40) next to [10,30) refused"
    locktest hold -b fcntl "$d/wait.lck" 0 15 /tmp/w.ready /tmp/w.go &
    waiter=$!
    # The sync point: the waiter asleep inside fcntl(2). F_SETLKW returns only once the lock is
    # granted, so a waiter seen inside it has not got [0,15) while [10,30) is held.
    wait_in_fcntl $waiter 60 /tmp/w.ready || fail "v$V: F_SETLKW [0,15) was granted while [10,30) is held" \
        "(or the waiter never blocked: $(cat /proc/$waiter/syscall 2>&1))"
    [ -e /tmp/w.ready ] && fail "v$V: F_SETLKW [0,15) was granted while [10,30) is held"
    touch /tmp/l.go
    wait $holder || fail "v$V: fcntl range holder failed"
    wait_file /tmp/w.ready 60 || fail "v$V: blocked F_SETLKW waiter did not get the lock within 60 s of its release"
    touch /tmp/w.go
    wait $waiter || fail "v$V: the F_SETLKW waiter failed"
    log "v$V: fcntl: F_GETLK, adjacent ranges, blocking F_SETLKW waiter woken after release"
}

# xprt_connects MOUNTPOINT: the sum of the transport connect counts of that mount
# (mountstats "xprt: tcp SRCPORT BINDS CONNECTS ...").
xprt_connects() {
    awk -v m="$1" '/^device / { on = ($5 == m) } on && $1 == "xprt:" && $2 == "tcp" { n += $5 } END { print n + 0 }' \
        /proc/self/mountstats
}

# restart_test: crash and restart loom-mds (host action) under the mount, with open
# files, held locks and writes in flight; check that the client recovered all of it.
restart_test() {
    local d="$T/crash" rd="$R/crash" c0 c1 t0 i writer fholder xholder rc dmesg_before f
    mkdir -p "$d" "$rd" || fail "v$V: mkdir crash"
    for f in small.txt odd.bin mid.bin; do
        cp "$S/$f" "$d/pre-$f" && cp "$S/$f" "$rd/pre-$f" || fail "v$V: write crash/pre-$f"
    done
    echo "before the crash" >"$rd/held.txt"
    exec 3>>"$d/held.txt" || fail "v$V: open crash/held.txt"
    echo "before the crash" >&3 || fail "v$V: write to the open held.txt"
    exec 4<"$d/pre-mid.bin" || fail "v$V: open crash/pre-mid.bin for reading"
    cp "$S/odd.bin" "$d/unlink-open.bin" && cp "$S/odd.bin" /tmp/unlink-open.ref
    exec 5<"$d/unlink-open.bin" || fail "v$V: open crash/unlink-open.bin"
    rm "$d/unlink-open.bin" || fail "v$V: unlink an open file"
    sync
    # Locks held across the crash.
    rm -f /tmp/x.ready /tmp/x.go /tmp/f.ready /tmp/f.go
    locktest hold fcntl "$d/crash.lck" 0 100 /tmp/x.ready /tmp/x.go &
    xholder=$!
    locktest hold flock "$d/crash.flk" 0 0 /tmp/f.ready /tmp/f.go &
    fholder=$!
    wait_file /tmp/x.ready 60 && wait_file /tmp/f.ready 60 || fail "v$V: lock holders did not get their locks"
    # Writes in flight: 32 x 64 KiB, each with fsync, spanning the crash.
    cp "$S/during.bin" "$rd/during.bin"
    (
        for i in $(seq 0 31); do
            dd if="$S/during.bin" of="$d/during.bin" bs=64k skip=$i seek=$i count=1 conv=notrunc,fsync 2>/dev/null || exit 1
            usleep 150000
        done
    ) &
    writer=$!
    # The crash must come while the writes are in flight: wait for the first two chunks.
    i=0
    while [ "$(stat -c %s "$d/during.bin" 2>/dev/null || echo 0)" -lt 131072 ]; do
        i=$((i + 1))
        [ $i -gt 3000 ] && fail "v$V: the writer wrote nothing to crash/during.bin in 60 s"
        usleep 20000
    done
    c0=$(xprt_connects "$M")
    t0=$(guest_uptime)
    log "v$V: asking the host to crash + restart loom-mds (transport connects so far: $c0)"
    dmesg_before=$(dmesg | wc -l)
    echo "LOOM-HOST-ACTION: restart-mds"
    # Keep using the mount (hard: I/O waits) until the client has reconnected.
    i=0
    while :; do
        sleep 1
        touch "$d/heartbeat" || fail "v$V: touch during the restart failed"
        c1=$(xprt_connects "$M")
        [ "$c1" -gt "$c0" ] && break
        i=$((i + 1))
        [ $i -ge "$RESTART_WAIT" ] && fail "v$V: no reconnection within ${RESTART_WAIT}s of LOOM-HOST-ACTION: restart-mds (is the host watching for it? run with kernel-client-test.sh --server loom-mds)"
    done
    : >"$rd/heartbeat"
    log "v$V: reconnected (transport connects $c0 -> $c1); first operation after the crash done $(awk -v a="$t0" -v b="$(guest_uptime)" 'BEGIN{printf "%.2f", b-a}')s after the marker"
    wait $writer || fail "v$V: the writes in flight across the restart failed"
    cmp -s "$d/during.bin" "$S/during.bin" || fail "v$V: crash/during.bin (written across the restart) differs"
    # The open files still work: the client reclaimed their opens.
    echo "after the restart" >&3 || fail "v$V: write to held.txt (opened before the crash) failed"
    echo "after the restart" >>"$rd/held.txt"
    exec 3>&-
    [ "$(sha256sum <&4 | cut -d' ' -f1)" = "$(sha256sum <"$S/mid.bin" | cut -d' ' -f1)" ] ||
        fail "v$V: reading pre-mid.bin through a descriptor opened before the crash gives other data"
    exec 4<&-
    cmp -s /tmp/unlink-open.ref - <&5 ||
        fail "v$V: the unlinked open file unlink-open.bin is unreadable or changed after the restart"
    exec 5<&-
    # The locks are still held by their owners (reclaimed).
    rc=0; locktest try fcntl "$d/crash.lck" 0 100 || rc=$?
    [ $rc = 1 ] || fail "v$V: the fcntl lock held across the restart is gone (try: $rc)"
    rc=0; locktest try flock "$d/crash.flk" || rc=$?
    [ $rc = 1 ] || fail "v$V: the flock held across the restart is gone (try: $rc)"
    touch /tmp/x.go /tmp/f.go
    wait $xholder || fail "v$V: the fcntl lock holder failed after the restart (re-lock/unlock with reclaimed state)"
    wait $fholder || fail "v$V: the flock holder failed after the restart (re-lock/unlock with reclaimed state)"
    locktest try fcntl "$d/crash.lck" 0 100 || fail "v$V: no fcntl lock after the reclaimed one was released"
    locktest try flock "$d/crash.flk" || fail "v$V: no flock after the reclaimed one was released"
    : >"$rd/crash.lck"; : >"$rd/crash.flk"
    # New work after the restart.
    mkdir -p "$d/post/x/y" "$rd/post/x/y"
    for f in small.txt odd.bin mid.bin; do
        cp "$S/$f" "$d/post/x/y/post-$f" && cp "$S/$f" "$rd/post/x/y/post-$f" || fail "v$V: write post-$f after the restart"
    done
    mv "$d/pre-odd.bin" "$d/post/pre-odd-moved.bin" && mv "$rd/pre-odd.bin" "$rd/post/pre-odd-moved.bin" ||
        fail "v$V: rename after the restart"
    ln "$d/pre-small.txt" "$d/post/pre-small-link.txt" && ln "$rd/pre-small.txt" "$rd/post/pre-small-link.txt" ||
        fail "v$V: hard link after the restart"
    # The client silly-renamed the unlinked open file (.nfsXXXX); closing it removes that.
    i=0
    while ls -a "$d" | grep -q '^\.nfs'; do
        i=$((i + 1))
        [ $i -gt 100 ] && fail "v$V: silly-renamed file still in crash/ 10 s after the last close: $(ls -a "$d" | grep '^\.nfs')"
        usleep 100000
    done
    drop_caches
    compare_trees "after the loom-mds restart"
    dmesg | tail -n +$((dmesg_before + 1)) >/tmp/dmesg.restart
    echo "---- guest dmesg since the restart request ($(wc -l </tmp/dmesg.restart) lines) ----"
    tail -n 30 /tmp/dmesg.restart
    echo "---- end ----"
    if grep -iE 'NFS.*(reclaim failed|unhandled error|lost lock|lock lost|failed on NFSv4|fileid changed|state recovery failed|bad sequence)' \
        /tmp/dmesg.restart >/tmp/nfs-warnings; then
        cat /tmp/nfs-warnings
        fail "v$V: the client logged state-recovery problems after the restart: $(head -n 1 /tmp/nfs-warnings)"
    fi
    log "v$V: loom-mds crash + restart: data, open files, locks and new work all ok"
}

# emit_sums_tree: SUM lines for the regular files of the NFS tree, DIR lines for directories.
emit_sums_tree() {
    tree_manifest "$T" | while read -r kind path rest; do
        case "$kind" in
        f) echo "SUM ${rest##* } $SUB/$path" ;;
        d) echo "DIR $SUB/$path" ;;
        esac
    done
    echo "SUM $BIG_SUM $SUB/big.bin"
}

# ---- the test ----------------------------------------------------------------------------
restarts=0
for V in $VERSIONS; do
    case "$V" in 4.1 | 4.2) ;; *) fail "unsupported NFS4_VERSIONS entry '$V' (4.1, 4.2)" ;; esac
    OPTS="vers=$V,proto=tcp,port=$P,addr=$A${NFS_OPTS:+,$NFS_OPTS}"
    M=/mnt/v$V
    SUB=${TEST_SUBDIR:-kcm}-v$V
    T=$M/$SUB
    R=/tmp/ref/$SUB

    nfs_mount nfs4 "$OPTS" "$A:$EXP" "$M" || fail "NFSv$V mount of $A:$EXP (port $P) failed"
    [ "$(mount_opt "$M" vers)" = "$V" ] || fail "mounted, but not with vers=$V: $(grep " $M " /proc/mounts)"
    [ -e "$T" ] && { log "removing $T left from an earlier run"; rm -rf "$T"; }
    check "mkdir $T" mkdir "$T"
    rm -rf "$R"; mkdir -p "$R"

    work_ops "$R"
    timed "v$V: namespace and data operations" work_ops "$T"
    verify_ops
    echo "guest: ls -lR $T"
    ls -lR "$T" || fail "v$V: ls -lR failed"
    ls_canon "$R" >/tmp/ls.ref
    ls_canon "$T" >/tmp/ls.nfs
    cmp -s /tmp/ls.ref /tmp/ls.nfs || { diff /tmp/ls.ref /tmp/ls.nfs; fail "v$V: ls -lnR of the NFS tree differs from the reference"; }
    log "v$V: ls -lnR agrees with the reference ($(wc -l </tmp/ls.ref) lines)"
    lock_tests "$T/locks"
    cp -a "$T/locks" "$R/" || fail "v$V: copy the lock files to the reference tree"
    compare_trees "same mount"

    timed "v$V: write $BIG_MB MiB (dd conv=fsync)" dd if="$S/big.bin" of="$T/big.bin" bs=1M conv=fsync 2>/dev/null ||
        fail "v$V: writing big.bin failed"

    if [ "$MDS_RESTART" = 1 ]; then
        restart_test
        restarts=$((restarts + 1))
    fi

    show_nfs_state
    nfs_umount "$M" || fail "v$V: umount failed"
    drop_caches
    nfs_mount nfs4 "$OPTS" "$A:$EXP" "$M" || fail "NFSv$V remount failed"
    timed "v$V: read + sha256 of $BIG_MB MiB after remount" check_big "after umount + drop_caches + remount"
    drop_caches
    compare_trees "after remount"
    emit_sums_tree
    show_nfs_state
    nfs_umount "$M" || fail "v$V: final umount failed"
    rm -rf "$R"
done
log "nfs4-mds: all checks passed for NFSv$(echo $VERSIONS | sed 's/ /, v/g') (loom-mds crashes + restarts: $restarts)"
