# Guest test: a file with 2 mirrors on 3 data servers survives a data server's crash and
# comes back whole (runs as /test.sh; kernel-client-test.sh --server loom-mds --ds-count 3).
#
# Parameters (kernel command line words):
#   SERVER_PORT    NFSv4 port of loom-mds (required); SERVER_ADDR, NFS_VERSION (4.2), NFS_OPTS
#   MIRROR_MB      size of the mirrored file in MiB (default 32)
#   READS_AFTER    whole-file reads that must succeed while a data server is down (default 3)
#   WAIT_S         seconds to wait for each of those steps (default 300)
#   SWAP           1 (default): once resynced, crash the *other* mirror's data server too and
#                  read again, so the bytes must come from the resynced copy
# Steps: a directory gets a 2-mirror policy (host action "admin policy set DIR --mirrors 2");
# a MIRROR_MB random file f is written there; a reader loop reads it whole again and again
# (caches dropped each time, sha256 compared); the host SIGKILLs a data server holding one of
# its mirrors ("kill-ds holding:PATH"); the reader must go on without an error; then writes
# go on (into the middle of f, appended to f, a new file g) and read back right; the layout
# must now show a STALE mirror. The data server is started again ("start-ds I"); the reader
# runs while loom-mds resyncs, until `loom admin layout` shows no STALE mirror. With SWAP the
# other mirror's server is then killed and f and g are read once more (from the resynced
# copy), and started again. The host checks that at least 2 data servers hold f's and g's
# final bytes (HOSTCHECK ds-copies).
. /lib/loom-guest.sh

nfs_params
MIRROR_MB=${MIRROR_MB:-32}
READS_AFTER=${READS_AFTER:-3}
WAIT_S=${WAIT_S:-300}
SWAP=${SWAP:-1}
[ "${DS_COUNT:-3}" -ge 3 ] || fail "pnfs-mirror needs 3 data servers (--ds-count 3), DS_COUNT=$DS_COUNT"
pnfs_dir mirror   # M, D, F, SP
G=$D/g
host_must admin policy set "$SP" --mirrors 2

# ---- helpers -------------------------------------------------------------------------------

# layout_of FILE: `loom admin layout` of a file of ours, printed and kept in /tmp/layout.
layout_of() {
    host_do admin layout "$SP/$1" >/tmp/layout 2>&1 || { cat /tmp/layout; fail "admin layout $SP/$1 failed"; }
    sed "s|^|guest: layout of $1: |" /tmp/layout
}

# The reader: reads F whole, caches dropped each time, until /tmp/reader.stop; the count of
# good reads in /tmp/reader.count, the first bad one in /tmp/reader.fail.
reader_start() {
    rm -f /tmp/reader.stop /tmp/reader.fail
    echo 0 >/tmp/reader.count
    (
        i=0
        while [ ! -e /tmp/reader.stop ]; do
            t0=$(now)
            echo 3 >/proc/sys/vm/drop_caches
            s=$(sha256sum <"$F" 2>/tmp/reader.err | cut -d' ' -f1)
            if [ "$s" != "$1" ]; then
                echo "read #$((i + 1)) of f: sha256 '$s', want $1 $(cat /tmp/reader.err)" >/tmp/reader.fail
                exit 1
            fi
            i=$((i + 1))
            echo "$i" >/tmp/reader.count
            echo "$i $(since "$t0")" >>/tmp/reader.times
        done
    ) &
    READER=$!
}
reader_count() { cat /tmp/reader.count; }
# reader_wait N WHAT: wait until the reader has done N good reads.
reader_wait() {
    local t0 c
    t0=$(now)
    while :; do
        [ -e /tmp/reader.fail ] && fail "$2: $(cat /tmp/reader.fail)"
        c=$(reader_count)
        [ "$c" -ge "$1" ] && break
        kill -0 "$READER" 2>/dev/null || fail "$2: the reader stopped ($(cat /tmp/reader.fail 2>/dev/null))"
        over "$t0" &&
            fail "$2: only $c of $1 reads of f done after ${WAIT_S}s"
        sleep 1
    done
}
reader_stop() {
    touch /tmp/reader.stop
    wait "$READER" || fail "$1: $(cat /tmp/reader.fail 2>/dev/null)"
    [ -e /tmp/reader.fail ] && fail "$1: $(cat /tmp/reader.fail)"
    log "reader: $(reader_count) good reads of f ($1); slowest $(sort -k2 -n -r /tmp/reader.times | head -n 1 | cut -d' ' -f2)s"
    : >/tmp/reader.times
}
# verify NAME: the NFS file equals the reference copy /tmp/NAME.ref (caches dropped).
verify() {
    local got
    drop_caches
    got=$(sum_of "$D/$1") || fail "reading $1 failed ($2)"
    [ "$got" = "$(sum_of "/tmp/$1.ref")" ] || fail "$1 has sha256 $got, want $(sum_of "/tmp/$1.ref") ($2)"
    log "$1 reads back right ($2)"
}
# wait_resynced WHAT: poll the layout of f and g until no mirror is STALE.
wait_resynced() {
    local t0 f stale
    t0=$(now)
    while :; do
        stale=
        for f in f g; do
            host_do admin layout "$SP/$f" >/tmp/layout.$f 2>&1 || fail "admin layout $SP/$f failed: $(cat /tmp/layout.$f)"
            grep -q STALE /tmp/layout.$f && stale="$stale $f"
        done
        [ -z "$stale" ] && break
        [ -e /tmp/reader.fail ] && fail "$1, reading while loom-mds resyncs: $(cat /tmp/reader.fail)"
        over "$t0" &&
            { cat /tmp/layout.f /tmp/layout.g; fail "$1: a mirror of$stale is still STALE after ${WAIT_S}s"; }
        sleep 2
    done
    log "$1: no STALE mirror after $(since "$t0")s"
    sed 's|^|guest: layout of f: |' /tmp/layout.f
}

# ---- 1. the mirrored file --------------------------------------------------------------
dd if=/dev/urandom of=/tmp/f.ref bs=1M count="$MIRROR_MB" 2>/dev/null || fail "cannot make /tmp/f.ref"
timed "write f ($MIRROR_MB MiB, 2 mirrors)" dd if=/tmp/f.ref of="$F" bs=1M conv=fsync 2>/dev/null || fail "writing f failed"
verify f "written"
layout_of f
grep -q 'mirrors 2' /tmp/layout || fail "f does not have 2 mirrors (the directory's policy says --mirrors 2)"
[ "$(grep -c '^ *stripe [0-9]*  ds ' /tmp/layout)" -ge 2 ] || fail "the layout of f names fewer than 2 data files"

# ---- 2. a data server holding a mirror dies during a read loop --------------------------
reader_start "$(sum_of /tmp/f.ref)"
reader_wait 1 "reading f before the crash"
out=$(host_do kill-ds "holding:$SP/f") || fail "host action kill-ds holding:$SP/f failed: $out"
echo "$out" | sed 's/^/guest: host: /'
KILLED=$(echo "$out" | sed -n 's/^killed ds\([0-9]*\) .*/\1/p')
[ -n "$KILLED" ] || fail "cannot tell which data server the host killed: $out"
c0=$(reader_count)
log "data server $KILLED (cluster index) killed after $c0 reads of f; reading on"
reader_wait $((c0 + READS_AFTER)) "reading f with data server $KILLED down"
reader_stop "data server $KILLED down"

# ---- 3. writes go on with the data server down ------------------------------------------
dd if=/dev/urandom of=/tmp/patch bs=64k count=16 2>/dev/null
timed "write 1 MiB into the middle of f" dd if=/tmp/patch of="$F" bs=64k seek=100 conv=notrunc,fsync 2>/dev/null ||
    fail "writing into f with data server $KILLED down failed"
dd if=/tmp/patch of=/tmp/f.ref bs=64k seek=100 conv=notrunc 2>/dev/null
dd if=/dev/urandom of=/tmp/tail bs=1M count=2 2>/dev/null
timed "append 2 MiB to f" sh -c "cat /tmp/tail >>'$F' && sync" || fail "appending to f with data server $KILLED down failed"
cat /tmp/tail >>/tmp/f.ref
dd if=/dev/urandom of=/tmp/g.ref bs=1M count=8 2>/dev/null
timed "write g (8 MiB)" dd if=/tmp/g.ref of="$G" bs=1M conv=fsync 2>/dev/null || fail "writing g with data server $KILLED down failed"
verify f "after writes with data server $KILLED down"
verify g "written with data server $KILLED down"
layout_of f
grep -q STALE /tmp/layout || fail "f missed writes on data server $KILLED, but its layout shows no STALE mirror"
layout_of g

# ---- 4. the data server comes back; loom-mds resyncs while we read ----------------------
reader_start "$(sum_of /tmp/f.ref)"
reader_wait 1 "reading f after the writes"
host_must start-ds "$KILLED"
wait_resynced "after data server $KILLED came back"
c0=$(reader_count)
reader_wait $((c0 + 2)) "reading f after the resync"
reader_stop "resync of data server $KILLED"
verify f "after the resync"
verify g "after the resync"

# ---- 5. the other mirror dies: the resynced copy must serve the bytes --------------------
if [ "$SWAP" = 1 ]; then
    out=$(host_do kill-ds "holding:$SP/f" "except:$KILLED") || fail "host action kill-ds holding:$SP/f except:$KILLED failed: $out"
    echo "$out" | sed 's/^/guest: host: /'
    OTHER=$(echo "$out" | sed -n 's/^killed ds\([0-9]*\) .*/\1/p')
    [ -n "$OTHER" ] || fail "cannot tell which data server the host killed: $out"
    verify f "data server $OTHER (the other mirror) down: from the resynced copy"
    verify g "data server $OTHER down"
    host_must start-ds "$OTHER"
    wait_resynced "after data server $OTHER came back"
    verify f "both data servers back"
fi

echo "SUM $(sum_of /tmp/f.ref) $SUB/f"
echo "SUM $(sum_of /tmp/g.ref) $SUB/g"
echo "HOSTCHECK ds-copies $(sum_of /tmp/f.ref) >= 2"
echo "HOSTCHECK ds-copies $(sum_of /tmp/g.ref) >= 2"
show_nfs_state
nfs_umount "$M" || fail "umount failed"
log "pnfs-mirror: all checks passed (killed data server $KILLED${OTHER:+, then $OTHER})"
