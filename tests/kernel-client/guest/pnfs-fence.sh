# Guest test: fencing and bad data-server handles (runs as /test.sh; kernel-client-test.sh
# --server loom-mds --ds-count 3). Issue 11, "Loosely coupled security" and "Errors".
#
# Parameters (kernel command line words):
#   SERVER_PORT    NFSv4 port of loom-mds (required); SERVER_ADDR, NFS_VERSION (4.2), NFS_OPTS
#   FENCE_MB       size of the fenced file, MiB (default 16; even)
#   FENCES         how many times it is fenced during the loops (default 2)
#   WAIT_S         seconds to wait for each step of part A (default 300)
#   BAD_MB         size of the file whose data file is broken in part B (default 8)
#   BREAK          remove | replace (default): what the host does to that data file
#   BAD_READ_S     bound on each read in part B, seconds (default 150)
#   BAD_READS      reads of the broken file (default 2)
#   PNFS_DEBUG     1: nfs_debug 0x3000 (PNFS | PNFS_LD) during part A, the kernel's messages printed
#   REQUIRE_RECALL_OK  1 (default): the host also checks that no CB_LAYOUTRECALL failed at the RPC level
#                  (pnfs.recall_reply.NFS4ERR_SERVERFAULT == 0); 0 (default): only reported
# Part A, fencing (RFC 8435 §2.2): a FENCE_MB random file f; a reader loop reads it whole
# (caches dropped; its first half never changes and must stay the original bytes) and a
# writer loop rewrites its second half MiB by MiB (dd conv=notrunc,fsync) from a second
# random source. FENCES times `admin fence f` (the first with a recall, which the client
# answers by returning its layout; the others with --no-recall, as if the client ignored the
# recall: the data file gets a new owner and the ids in the client's layout then get
# NFS3ERR_ACCES from the data server); the loops must
# go on without an I/O error (the client gets a new layout, or reads and writes through
# loom-mds), `admin layout` must show a new owner after each fence, and at the end f must be
# the first half of the original and the second half of the new bytes, also after a
# remount. The guest holds f open for writing during part A (so the RW layout is not given
# back with each CLOSE of the loops). Each fence waits until the client holds a layout of f
# ("held by client" in `admin layout`, up to WAIT_S). The data servers must have refused some READ/WRITE/COMMIT
# during part A (host action "counter ds-io-errors" before and after: NFS3ERR_ACCES to the
# old ids), and loom-mds must have recalled the layouts (HOSTCHECK pnfs.recalls).
# Part B, a bad data-server handle (issue 11 item 6): a BAD_MB file b, read once; the host
# then removes or replaces its data file on the data server ("break-data-file INO BREAK":
# every handle of it turns NFS3ERR_STALE, loom-mds's own too), while the guest reads b in a
# loop; each read must end (data or an error) within BAD_READ_S seconds, under `timeout`.
# What the client did (exit status, time, dmesg) is printed; a read that does not end in
# time fails the test ("the client hangs on a bad data-server handle").
. /lib/loom-guest.sh

nfs_params
FENCE_MB=${FENCE_MB:-16}
FENCES=${FENCES:-2}
WAIT_S=${WAIT_S:-300}
BAD_MB=${BAD_MB:-8}
BREAK=${BREAK:-replace}
BAD_READ_S=${BAD_READ_S:-150}
BAD_READS=${BAD_READS:-2}
[ "${DS_COUNT:-1}" -ge 1 ] || fail "pnfs-fence needs loom-mds with data servers"
pnfs_dir fence   # M, D, F, SP
B=$D/b
HALF=$((FENCE_MB / 2))

# ---- helpers -------------------------------------------------------------------------------
# now, since, over, sum_of: /lib/loom-guest.sh

# owner_of NAME: the data files' owner ("U:G") in `admin layout`, printed; kept in /tmp/layout.
owner_of() {
    host_do admin layout "$SP/$1" >/tmp/layout 2>&1 || { cat /tmp/layout; fail "admin layout $SP/$1 failed"; }
    sed "s|^|guest: layout of $1: |" /tmp/layout >&2
    sed -n 's/^ *stripe 0  ds .* owner \([0-9]*:[0-9]*\).*/\1/p' /tmp/layout | head -n 1
}
nfs_dmesg() {
    dmesg | grep -iE 'nfs|pnfs|flexfile|layout|rpc' | grep -vE 'Register|id_resolver' |
        tail -n "${1:-30}" | sed 's/^/guest: dmesg: /'
}

# Reader: f whole, caches dropped, first half compared, until /tmp/reader.stop.
reader_start() {
    rm -f /tmp/reader.stop /tmp/reader.fail
    echo 0 >/tmp/reader.count
    (
        i=0
        while [ ! -e /tmp/reader.stop ]; do
            i=$((i + 1))
            echo 3 >/proc/sys/vm/drop_caches
            if ! cat "$F" >/tmp/rcopy 2>/tmp/reader.err; then
                echo "read #$i of f failed: $(cat /tmp/reader.err)" >/tmp/reader.fail; exit 1
            fi
            s=$(stat -c %s /tmp/rcopy)
            if [ "$s" != $((FENCE_MB * 1048576)) ]; then
                echo "read #$i of f: $s bytes, want $((FENCE_MB * 1048576))" >/tmp/reader.fail; exit 1
            fi
            if [ "$(head -c $((HALF * 1048576)) /tmp/rcopy | sha256sum | cut -d' ' -f1)" != "$HALF_SUM" ]; then
                echo "read #$i of f: its first $HALF MiB are not the original bytes" >/tmp/reader.fail; exit 1
            fi
            echo "$i" >/tmp/reader.count
        done
    ) &
    READER=$!
}
# Writer: MiB k = HALF + (i mod HALF) of /tmp/new.ref into f, conv=notrunc,fsync.
writer_start() {
    rm -f /tmp/writer.stop /tmp/writer.fail
    echo 0 >/tmp/writer.count
    (
        i=0
        while [ ! -e /tmp/writer.stop ]; do
            k=$((HALF + i % HALF))
            if ! dd if=/tmp/new.ref of="$F" bs=1M skip="$k" seek="$k" count=1 conv=notrunc,fsync 2>/tmp/writer.err; then
                echo "write #$((i + 1)) (MiB $k) of f failed: $(cat /tmp/writer.err)" >/tmp/writer.fail; exit 1
            fi
            i=$((i + 1))
            echo "$i" >/tmp/writer.count
        done
    ) &
    WRITER=$!
}
loops_wait() {
    local t0 r w
    t0=$(now)
    while :; do
        [ -e /tmp/reader.fail ] && { nfs_dmesg; fail "$3: $(cat /tmp/reader.fail)"; }
        [ -e /tmp/writer.fail ] && { nfs_dmesg; fail "$3: $(cat /tmp/writer.fail)"; }
        r=$(cat /tmp/reader.count) w=$(cat /tmp/writer.count)
        [ "$r" -ge "$1" ] && [ "$w" -ge "$2" ] && break
        kill -0 "$READER" 2>/dev/null || fail "$3: the reader stopped"
        kill -0 "$WRITER" 2>/dev/null || fail "$3: the writer stopped"
        over "$t0" "$WAIT_S" && { nfs_dmesg; fail "$3: only $r of $1 reads and $w of $2 writes after ${WAIT_S}s (hung?)"; }
        sleep 1
    done
}
loops_stop() {
    touch /tmp/reader.stop /tmp/writer.stop
    wait "$READER" || fail "reader: $(cat /tmp/reader.fail 2>/dev/null)"
    wait "$WRITER" || fail "writer: $(cat /tmp/writer.fail 2>/dev/null)"
    log "loops stopped: $(cat /tmp/reader.count) good reads, $(cat /tmp/writer.count) MiB written"
}

# ---- A. fencing while the guest reads and writes ----------------------------------------------
dd if=/dev/urandom of=/tmp/f.ref bs=1M count="$FENCE_MB" 2>/dev/null || fail "cannot make /tmp/f.ref"
dd if=/dev/urandom of=/tmp/new.ref bs=1M count="$FENCE_MB" 2>/dev/null || fail "cannot make /tmp/new.ref"
HALF_SUM=$(head -c $((HALF * 1048576)) /tmp/f.ref | sha256sum | cut -d' ' -f1)
timed "write f ($FENCE_MB MiB)" dd if=/tmp/f.ref of="$F" bs=1M conv=fsync 2>/dev/null || fail "writing f failed"
drop_caches
[ "$(sum_of "$F")" = "$(sum_of /tmp/f.ref)" ] || fail "f does not read back as written"
OWNER=$(owner_of f)
[ -n "$OWNER" ] || fail "no owner in the layout of f"
log "f: data files owned by $OWNER"
lg0=$(mountstat_op "$M" LAYOUTGET)

# counter METRIC...: the host's reading of a counter now.
counter() {
    local v
    v=$(host_do counter "$@") || fail "host action counter $* failed: $v"
    echo "$v" | tail -n 1
}
E0=$(counter ds-io-errors)
# An open for writing held throughout: the RW layout is not returned with every CLOSE of the
# loops (return on close), so each fence meets a layout in use, and the I/O after it uses
# the old ids unless the client gave the layout back first.
exec 4<>"$F"
[ "${PNFS_DEBUG:-0}" = 1 ] && echo 0x3000 >/proc/sys/sunrpc/nfs_debug
reader_start
writer_start
loops_wait 1 2 "before fencing"
n=1
while [ $n -le "$FENCES" ]; do
    # Fence a layout the client holds (it may be doing I/O through loom-mds for a while).
    t0=$(now)
    while :; do
        host_do admin layout "$SP/f" >/tmp/layout 2>&1 || { cat /tmp/layout; fail "admin layout $SP/f failed"; }
        grep -q '^held by client .*(rw)' /tmp/layout && break
        [ -e /tmp/reader.fail ] && fail "waiting for a layout: $(cat /tmp/reader.fail)"
        [ -e /tmp/writer.fail ] && fail "waiting for a layout: $(cat /tmp/writer.fail)"
        over "$t0" "$WAIT_S" && { cat /tmp/layout; nfs_dmesg; fail "fence $n: the client holds no RW layout of f after ${WAIT_S}s of reading and writing it"; }
        sleep 1
    done
    log "fence $n: the client holds an RW layout of f (waited $(since "$t0")s)"
    r0=$(cat /tmp/reader.count) w0=$(cat /tmp/writer.count)
    t0=$(now)
    # The first fence recalls the layout first (the client returns it and asks again: its
    # old ids are never used); the others fence at once (--no-recall), as when a client
    # ignores the recall until its deadline: the data servers refuse the ids it holds.
    if [ "$n" -eq 1 ]; then host_must admin fence "$SP/f"; else host_must admin fence --no-recall "$SP/f"; fi
    log "fence $n: done in $(since "$t0")s"
    NEW=$(owner_of f)
    [ -n "$NEW" ] && [ "$NEW" != "$OWNER" ] || fail "fence $n: the data files' owner is '$NEW', was $OWNER (not changed)"
    log "fence $n: data files now owned by $NEW (were $OWNER)"
    OWNER=$NEW
    # With the old ids refused, the client must get going again by itself.
    loops_wait $((r0 + 2)) $((w0 + HALF)) "after fence $n"
    log "fence $n: $(($(cat /tmp/reader.count) - r0)) reads, $(($(cat /tmp/writer.count) - w0)) MiB written since"
    n=$((n + 1))
done
loops_stop
exec 4<&-
if [ "${PNFS_DEBUG:-0}" = 1 ]; then
    echo 0 >/proc/sys/sunrpc/nfs_debug
    # The errors first (from the start of part A), then the last messages.
    dmesg | grep -iE 'err|status -[0-9]|nxio|timed? ?out|resend|fail|retry' | head -n 100 | sed 's/^/guest: dmesg-err: /'
    dmesg | grep -vE 'Register|id_resolver' | tail -n 100 | sed 's/^/guest: dmesg: /'
fi
E1=$(counter ds-io-errors)
log "data-server READ/WRITE/COMMIT errors during part A: $((E1 - E0)) ($E0 before, $E1 after)"
[ "$E1" -gt "$E0" ] || fail "no data server refused anything during $FENCES fences (ds-io-errors $E0 -> $E1): the old ids were never used, or never refused"
[ "$(cat /tmp/writer.count)" -ge "$HALF" ] || fail "the writer did not cover the second half"
head -c $((HALF * 1048576)) /tmp/f.ref >/tmp/fwant
tail -c +$((HALF * 1048576 + 1)) /tmp/new.ref >>/tmp/fwant
WANT=$(sum_of /tmp/fwant)
rm -f /tmp/rcopy /tmp/fwant
drop_caches
got=$(sum_of "$F") || fail "reading f after fencing failed"
[ "$got" = "$WANT" ] || fail "f has sha256 $got after fencing, want $WANT"
log "f intact after $FENCES fences (LAYOUTGET RPCs: $lg0 before, $(mountstat_op "$M" LAYOUTGET) now)"
nfs_dmesg 10
nfs_umount "$M" || fail "umount failed"
nfs_mount nfs4 "$OPTS" "$A:$EXP" "$M" || fail "remount failed"
got=$(sum_of "$F") || fail "reading f after the remount failed"
[ "$got" = "$WANT" ] || fail "after a remount f has sha256 $got, want $WANT"
log "f reads back right after a remount"
echo "SUM $WANT $SUB/f"
echo "HOSTCHECK ds-io-errors >= $((E1 - E0))"
echo "HOSTCHECK mds pnfs.recalls >= 1"  # the first fence recalls; the others (--no-recall) do not
echo "HOSTCHECK mds pnfs.fenced >= $FENCES"
# (reported, not required: how the client recovered)
echo "HOSTCHECK mds pnfs.layoutget_refused.NFS4ERR_LAYOUTUNAVAILABLE >= 0"
echo "HOSTCHECK mds-op LAYOUTERROR >= 0"
echo "HOSTCHECK mds-op READ >= 0"
echo "HOSTCHECK mds-op WRITE >= 0"
# Recalls the client answered (CB_LAYOUTRECALL over the back channel); a late holder is
# fenced instead (pnfs.fenced). REQUIRE_RECALL_OK=1: no recall may fail at the RPC level.
echo "HOSTCHECK mds pnfs.recall_reply.NFS4_OK >= 0"
echo "HOSTCHECK mds pnfs.fenced >= 0"
if [ "${REQUIRE_RECALL_OK:-1}" = 1 ]; then
    echo "HOSTCHECK mds pnfs.recall_reply.NFS4ERR_SERVERFAULT == 0"
else
    echo "HOSTCHECK mds pnfs.recall_reply.NFS4ERR_SERVERFAULT >= 0"
fi

# ---- B. a bad data-server handle must not hang the client -------------------------------------
dd if=/dev/urandom of=/tmp/b.ref bs=1M count="$BAD_MB" 2>/dev/null || fail "cannot make /tmp/b.ref"
dd if=/tmp/b.ref of="$B" bs=1M conv=fsync 2>/dev/null || fail "writing b failed"
drop_caches
[ "$(sum_of "$B")" = "$(sum_of /tmp/b.ref)" ] || fail "b does not read back as written"
BINO=$(stat -c %i "$B")
owner_of b >/dev/null
# Keep b open for reading across the break (the layout stays with the client).
exec 6<"$B"
dd if="$B" of=/dev/null bs=1M count=1 2>/dev/null || fail "reading b failed"
host_must break-data-file "$BINO" "$BREAK"
dmesg -c >/dev/null 2>&1 || true
i=1
results=
hung=
while [ $i -le "$BAD_READS" ]; do
    echo 3 >/proc/sys/vm/drop_caches
    rm -f /tmp/bad.rc
    t0=$(now)
    ( timeout -s KILL "$BAD_READ_S" dd if="$B" of=/tmp/b.out bs=1M 2>/tmp/bad.err; echo $? >/tmp/bad.rc ) &
    bp=$!
    # timeout kills a blocked dd; give it a margin (an unkillable wait would stay).
    while [ ! -e /tmp/bad.rc ] && ! over "$t0" $((BAD_READ_S + 30)); do sleep 1; done
    if [ ! -e /tmp/bad.rc ]; then
        hung="read #$i of b did not end within $((BAD_READ_S + 30))s, not even after SIGKILL (unkillable)"
        break
    fi
    rc=$(cat /tmp/bad.rc)
    t=$(since "$t0")
    wait "$bp" 2>/dev/null
    if [ "$rc" = 137 ]; then
        hung="read #$i of b did not end within ${BAD_READ_S}s (killed by timeout)"
        break
    fi
    sz=$(stat -c %s /tmp/b.out 2>/dev/null || echo 0)
    if [ "$rc" = 0 ]; then
        if [ "$(sum_of /tmp/b.out)" = "$(sum_of /tmp/b.ref)" ]; then what="the right bytes"; else what="WRONG bytes ($sz)"; fi
    else
        what="error after $sz bytes: $(tail -n 1 /tmp/bad.err)"
    fi
    log "bad handle ($BREAK): read #$i of b ended in ${t}s, status $rc: $what"
    results="$results [#$i ${t}s rc=$rc]"
    [ "$rc" = 0 ] && [ "$what" != "the right bytes" ] && fail "read #$i of b after the data file was ${BREAK}d returned wrong bytes"
    i=$((i + 1))
done
exec 6<&-
log "bad handle: what the client did (dmesg):"
nfs_dmesg 40
show_nfs_state
echo "HOSTCHECK mds pnfs.layoutget_refused.NFS4ERR_LAYOUTUNAVAILABLE >= 0"
[ -z "$hung" ] || fail "the client hangs on a bad data-server handle: $hung (BREAK=$BREAK; loom-mds should answer LAYOUTUNAVAILABLE after repeated errors)"
rm -f "$B" 2>/dev/null || log "rm b: $?"
nfs_umount "$M" || log "umount after part B failed (not part of the test)"
log "pnfs-fence: all checks passed (fenced $FENCES times; bad handle:$results)"
