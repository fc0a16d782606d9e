# Guest test: a file's bytes move to other data servers (`loom admin mv-data`) while the
# guest reads it and appends to it in a loop (runs as /test.sh; kernel-client-test.sh
# --server loom-mds --ds-count 3). Issue 11, "Live data mobility".
#
# Parameters (kernel command line words):
#   SERVER_PORT    NFSv4 port of loom-mds (required); SERVER_ADDR, NFS_VERSION (4.2), NFS_OPTS
#   MOVE_MB        size of the file before the appends, MiB (default 32)
#   REC            size of one appended record in bytes (default 4096)
#   WAIT_S         seconds to wait for each step (reads, appends, GC) (default 300)
#   REQUIRE_RECALL_OK  1 (default): the host also checks that no CB_LAYOUTRECALL failed at the RPC level
#                  (pnfs.recall_reply.NFS4ERR_SERVERFAULT == 0); 0 (default): only reported
# Steps: a MOVE_MB random file f is written (one data file: 1 mirror, 1 stripe). A reader loop
# reads f whole again and again (caches dropped): its first MOVE_MB MiB must be the original
# bytes and the rest a prefix of the records appended so far. An appender loop appends
# numbered REC-byte records ("record N", blank-padded) with dd oflag=append conv=fsync; the
# guest also holds f open for writing meanwhile (its RW layout stays in use). Twice,
# `admin layout` names the data server holding f and `admin mv-data f --to ID` moves it to
# one that has not held it yet (ids 1..3: a second, then a third server); after each move the
# layout must name the new server, both loops must go on (more good reads and appends), and
# the old data file must disappear from the old server (host action "data-files INO", polled:
# loom-mds's GC worker removes it within seconds). Any I/O error in either loop fails the
# test. At the end f must be the original bytes plus every record in order (sha256 computed
# here), also after a remount; the host checks that f has exactly one data file left and that
# one data server holds its final bytes (HOSTCHECK data-files, ds-copies).
. /lib/loom-guest.sh

nfs_params
MOVE_MB=${MOVE_MB:-32}
REC=${REC:-4096}
WAIT_S=${WAIT_S:-300}
[ "${DS_COUNT:-3}" -ge 3 ] || fail "pnfs-move needs 3 data servers (--ds-count 3), DS_COUNT=$DS_COUNT"
pnfs_dir move   # M, D, F, SP
BASE=$((MOVE_MB * 1048576))

# ---- helpers -------------------------------------------------------------------------------
# now, since, over (default WAIT_S), sum_of: /lib/loom-guest.sh

# layout_of: `loom admin layout` of f, printed and kept in /tmp/layout; CUR = its data server.
layout_of() {
    host_do admin layout "$SP/f" >/tmp/layout 2>&1 || { cat /tmp/layout; fail "admin layout $SP/f failed"; }
    sed 's|^|guest: layout of f: |' /tmp/layout
    [ "$(grep -c '^ *stripe [0-9]*  ds ' /tmp/layout)" = 1 ] || fail "f should have exactly one data file (1 mirror, 1 stripe)"
    CUR=$(sed -n 's/^ *stripe 0  ds \([0-9]*\) .*/\1/p' /tmp/layout | head -n 1)
    CUR_PORT=$(sed -n 's/^ *stripe 0  ds [0-9]* ([^,]*:\([0-9]*\),.*/\1/p' /tmp/layout | head -n 1)
    [ -n "$CUR" ] && [ -n "$CUR_PORT" ] || fail "cannot find the data server (id, port) in the layout of f"
}

# The reader: f whole, caches dropped, until /tmp/reader.stop. Good reads counted in
# /tmp/reader.count, the first bad one described in /tmp/reader.fail.
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
            if [ "$s" -lt "$BASE" ]; then
                echo "read #$i of f: $s bytes, less than the original $BASE" >/tmp/reader.fail; exit 1
            fi
            if [ "$(head -c "$BASE" /tmp/rcopy | sha256sum | cut -d' ' -f1)" != "$BASE_SUM" ]; then
                echo "read #$i of f: the first $MOVE_MB MiB are not the original bytes" >/tmp/reader.fail; exit 1
            fi
            # The appender writes /tmp/app.ref before f: what f has beyond BASE is a prefix of it.
            x=$((s - BASE))
            a=$(tail -c +$((BASE + 1)) /tmp/rcopy | sha256sum | cut -d' ' -f1)
            b=$(head -c "$x" /tmp/app.ref | sha256sum | cut -d' ' -f1)
            if [ "$a" != "$b" ]; then
                echo "read #$i of f: the $x bytes after the original are not the records appended (size $s)" >/tmp/reader.fail; exit 1
            fi
            echo "$i" >/tmp/reader.count
            echo "$s" >/tmp/reader.size
        done
    ) &
    READER=$!
}
# The appender: numbered REC-byte records, each with dd oflag=append conv=fsync (an I/O
# error fails dd), until /tmp/app.stop; each record goes to /tmp/app.ref first.
appender_start() {
    rm -f /tmp/app.stop /tmp/app.fail
    : >/tmp/app.ref
    echo 0 >/tmp/app.count
    (
        i=0
        while [ ! -e /tmp/app.stop ]; do
            i=$((i + 1))
            printf "%-$((REC - 1))s\n" "record $i" >/tmp/rec
            cat /tmp/rec >>/tmp/app.ref
            if ! dd if=/tmp/rec of="$F" bs="$REC" count=1 oflag=append conv=notrunc,fsync 2>/tmp/app.err; then
                echo "append #$i to f failed: $(cat /tmp/app.err)" >/tmp/app.fail; exit 1
            fi
            echo "$i" >/tmp/app.count
            sleep 0.1
        done
    ) &
    APPENDER=$!
}
# loops_wait R A WHAT: wait for R good reads and A appends in all.
loops_wait() {
    local t0 r a
    t0=$(now)
    while :; do
        [ -e /tmp/reader.fail ] && fail "$3: $(cat /tmp/reader.fail)"
        [ -e /tmp/app.fail ] && fail "$3: $(cat /tmp/app.fail)"
        r=$(cat /tmp/reader.count) a=$(cat /tmp/app.count)
        [ "$r" -ge "$1" ] && [ "$a" -ge "$2" ] && break
        kill -0 "$READER" 2>/dev/null || fail "$3: the reader stopped"
        kill -0 "$APPENDER" 2>/dev/null || fail "$3: the appender stopped"
        over "$t0" && fail "$3: $r of $1 reads and $a of $2 appends after ${WAIT_S}s"
        sleep 1
    done
}
loops_stop() {
    touch /tmp/reader.stop /tmp/app.stop
    wait "$READER" || fail "reader: $(cat /tmp/reader.fail 2>/dev/null)"
    wait "$APPENDER" || fail "appender: $(cat /tmp/app.fail 2>/dev/null)"
    [ -e /tmp/reader.fail ] && fail "$(cat /tmp/reader.fail)"
    [ -e /tmp/app.fail ] && fail "$(cat /tmp/app.fail)"
    log "loops stopped: $(cat /tmp/reader.count) good reads, $(cat /tmp/app.count) records appended"
}
# data_files: the host's list of f's data files ("dsI port P NAME SIZE") in /tmp/dfiles.
data_files() {
    host_do data-files "$INO" >/tmp/dfiles 2>&1 || { cat /tmp/dfiles; fail "host action data-files $INO failed"; }
}
# wait_old_gone PORT WHAT: poll until f has one data file, on the data server at PORT.
wait_old_gone() {
    local t0 n
    t0=$(now)
    while :; do
        data_files
        n=$(grep -c '^ds[0-9]* port ' /tmp/dfiles)
        [ "$n" = 1 ] && grep -q "^ds[0-9]* port $1 " /tmp/dfiles && break
        [ -e /tmp/reader.fail ] && fail "$2: $(cat /tmp/reader.fail)"
        [ -e /tmp/app.fail ] && fail "$2: $(cat /tmp/app.fail)"
        over "$t0" && { sed 's/^/guest: data file: /' /tmp/dfiles; fail "$2: f still has $n data files after ${WAIT_S}s (want one, on port $1)"; }
        sleep 2
    done
    log "$2: the old data file is gone after $(since "$t0")s; left: $(cat /tmp/dfiles)"
}

# ---- 1. the file ---------------------------------------------------------------------------
dd if=/dev/urandom of=/tmp/f.ref bs=1M count="$MOVE_MB" 2>/dev/null || fail "cannot make /tmp/f.ref"
BASE_SUM=$(sum_of /tmp/f.ref)
timed "write f ($MOVE_MB MiB)" dd if=/tmp/f.ref of="$F" bs=1M conv=fsync 2>/dev/null || fail "writing f failed"
drop_caches
[ "$(sum_of "$F")" = "$BASE_SUM" ] || fail "f does not read back as written"
INO=$(stat -c %i "$F")
layout_of
FIRST=$CUR
data_files
sed 's/^/guest: data file: /' /tmp/dfiles
log "f: inode $INO on data server $CUR (port $CUR_PORT)"

# ---- 2. reader and appender; two moves -------------------------------------------------------
# An open for writing held throughout, as a long-lived writer would: the client keeps its RW
# layout between the loops' opens (else each CLOSE gives it back: return on close), so every
# move meets a layout in use that must be recalled (or fenced) and replaced.
exec 4<>"$F"
reader_start
appender_start
loops_wait 1 3 "before the first move"
USED=" $CUR "
for step in 1 2; do
    T=
    for id in 1 2 3; do
        case "$USED" in *" $id "*) ;; *) T=$id; break ;; esac
    done
    [ -n "$T" ] || fail "no data server left to move f to (used:$USED)"
    OLD=$CUR OLD_PORT=$CUR_PORT
    r0=$(cat /tmp/reader.count) a0=$(cat /tmp/app.count)
    t0=$(now)
    out=$(host_do admin mv-data "$SP/f" --to "$T") || { echo "$out"; fail "move $step: admin mv-data $SP/f --to $T failed: $(echo "$out" | tail -n 1)"; }
    log "move $step: data server $OLD -> $T in $(since "$t0")s ($out); during it $(($(cat /tmp/reader.count) - r0)) reads, $(($(cat /tmp/app.count) - a0)) appends"
    layout_of
    [ "$CUR" = "$T" ] || fail "move $step: after mv-data --to $T the layout names data server $CUR"
    [ "$CUR_PORT" != "$OLD_PORT" ] || fail "move $step: data servers $OLD and $T have the same port $CUR_PORT?"
    USED="$USED$T "
    r0=$(cat /tmp/reader.count) a0=$(cat /tmp/app.count)
    loops_wait $((r0 + 2)) $((a0 + 5)) "move $step (to data server $T): reading and appending after it"
    wait_old_gone "$CUR_PORT" "move $step (data server $OLD -> $T)"
done
loops_stop
exec 4<&-

# ---- 3. the bytes ---------------------------------------------------------------------------------
N=$(cat /tmp/app.count)
[ "$(stat -c %s /tmp/app.ref)" = $((N * REC)) ] || fail "the appender's reference has $(stat -c %s /tmp/app.ref) bytes for $N records"
cat /tmp/f.ref /tmp/app.ref >/tmp/final.ref
rm -f /tmp/rcopy
WANT=$(sum_of /tmp/final.ref)
SIZE=$((BASE + N * REC))
drop_caches
[ "$(stat -c %s "$F")" = "$SIZE" ] || fail "f has $(stat -c %s "$F") bytes, want $SIZE ($MOVE_MB MiB + $N records)"
got=$(sum_of "$F") || fail "reading f at the end failed"
[ "$got" = "$WANT" ] || fail "f has sha256 $got, want $WANT (the original + $N records in order)"
log "f is the original + $N records in order ($SIZE bytes)"
layout_of
[ "$CUR" = "$T" ] || fail "the layout names data server $CUR, the last move went to $T"
nfs_umount "$M" || fail "umount failed"
nfs_mount nfs4 "$OPTS" "$A:$EXP" "$M" || fail "remount failed"
got=$(sum_of "$F") || fail "reading f after the remount failed"
[ "$got" = "$WANT" ] || fail "after a remount f has sha256 $got, want $WANT"
log "f reads back right after a remount"

echo "SUM $WANT $SUB/f"
echo "HOSTCHECK data-files $INO == 1"
echo "HOSTCHECK ds-copies $WANT == 1"
echo "HOSTCHECK mds pnfs.moves >= 2"
# (reported, not required: whether the client went on with layouts or through loom-mds)
echo "HOSTCHECK mds pnfs.layoutget_refused.NFS4ERR_LAYOUTUNAVAILABLE >= 0"
echo "HOSTCHECK mds-op READ >= 0"
echo "HOSTCHECK mds-op READ_PLUS >= 0"
echo "HOSTCHECK mds-op WRITE >= 0"
# Recalls the client answered (CB_LAYOUTRECALL over the back channel); a late holder is
# fenced instead (pnfs.fenced). REQUIRE_RECALL_OK=1: no recall may fail at the RPC level.
echo "HOSTCHECK mds pnfs.recall_reply.NFS4_OK >= 0"
echo "HOSTCHECK mds pnfs.fenced >= 0"
if [ "${REQUIRE_RECALL_OK:-1}" = 1 ]; then
    echo "HOSTCHECK mds pnfs.recall_reply.NFS4ERR_SERVERFAULT == 0"
    echo "HOSTCHECK mds pnfs.recall_reply.NFS4_OK >= 1"
else
    echo "HOSTCHECK mds pnfs.recall_reply.NFS4ERR_SERVERFAULT >= 0"
fi
show_nfs_state
nfs_umount "$M" || fail "umount failed"
log "pnfs-move: all checks passed (data server $FIRST -> ${USED# $FIRST }, $N records appended)"
