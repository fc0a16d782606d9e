# Guest test: root squashing seen through the Linux kernel client (busybox sh, /test.sh).
#
# Run with export rules that squash root, e.g.
#   kernel-client-test.sh --test root-squash --exports '*(rw,root_squash)'
# The harness passes ROOT_SQUASHED=1. loom-ds: it makes the export root 1777. loom-mds (whose
# namespace root is 0755 root's): it starts loom-mds with "*(rw,no_root_squash)" and passes
# EXPORTS_STAGED=1; the guest, still root, makes a 1777 directory to work in, then asks for
# the host action "apply-exports" (the rules under test, loom-mds restarted with them) and
# waits until root is squashed. uid 1000 keeps a 0600 file; root in the guest must be
# treated as the anonymous user (65534): it cannot read, change or give away that file, and
# what it creates belongs to 65534.
# Parameters: SERVER_PORT, MOUNT_PORT, SERVER_KIND, NFS_VERSION, SERVER_ADDR, EXPORT_PATH,
# NFS_OPTS (read by nfs_params in /lib/loom-guest.sh); ANON_UID (65534), ANON_GID (65534).
. /lib/loom-guest.sh

[ "${ROOT_SQUASHED:-0}" = 1 ] || fail "the export rules do not squash root (ROOT_SQUASHED=${ROOT_SQUASHED:-unset}); run with --exports '*(rw,root_squash)'"
nfs_params
AU=${ANON_UID:-65534}
AG=${ANON_GID:-65534}
M=/mnt/nfs
SUB=rsq-v$V
B=$M          # a directory everyone may write in: the export root, or (staged) one in it
REL=
T=$B/$SUB
umask 022
cd /

as1000() { posixtool asuser 1000 1000 -- "$@"; }
: >/tmp/item-fail
bad() { echo "guest: CHECK FAILED: $*"; echo "$*" >>/tmp/item-fail; }
# expect_op WHAT WANTED CMD...: CMD prints OK or an errno name, which must be in WANTED.
expect_op() {
    local what=$1 want=$2 got w; shift 2
    got=$("$@" 2>&1 | tail -n 1)
    for w in $want; do
        [ "$got" = "$w" ] && { log "$what: $got"; return 0; }
    done
    bad "$what: got '$got', want $(echo $want | sed 's/ / or /g')"
}
expect_stat() {
    local got
    drop_caches
    got=$(stat -c "$1" "$3" 2>&1)
    [ "$got" = "$2" ] && { log "$3: $1 = $got"; return 0; }
    bad "$3: stat $1 is '$got', want '$2'"
}

nfs_mount "$FSTYPE" "$OPTS" "$A:$EXP" "$M" || fail "mount -t $FSTYPE -o $OPTS $A:$EXP failed"
log "root squashing over NFSv$V (server ${SERVER_KIND:-?}); export root: $(stat -c '%a %u:%g' "$M")"
if [ "${EXPORTS_STAGED:-0}" = 1 ]; then
    REL=$SUB-base/
    B=$M/$SUB-base
    T=$B/$SUB
    mkdir "$B" && chmod 1777 "$B" || fail "root (not squashed yet) cannot make $B"
    log "made $B 1777 as root; asking the host to apply the export rules under test"
    echo "LOOM-HOST-ACTION: apply-exports"
    # Until the server has restarted with the new rules, root may still change what it owns.
    i=0
    while :; do
        drop_caches
        [ "$(posixtool chmod "$B" 1777 2>&1)" = EPERM ] && break
        i=$((i + 1))
        [ $i -lt 120 ] || fail "root is still not squashed 120 s after apply-exports"
        sleep 1
    done
    log "root is squashed now (after ${i} s)"
fi
if [ -e "$T" ]; then
    as1000 rm -rf "$T" || fail "cannot remove $T left from an earlier run"
fi
as1000 mkdir "$T" || fail "uid 1000 cannot mkdir $T (the export root must be writable by it: 1777)"
as1000 sh -c "umask 077; echo 'secret of 1000' >'$T/secret'" || fail "uid 1000 cannot write $T/secret"
as1000 chmod 0711 "$T" || fail "chmod 0711 $T"
expect_stat %a:%u:%g 600:1000:1000 "$T/secret"

expect_op "uid 1000 reads its own 0600 file" OK as1000 posixtool open "$T/secret" r
expect_op "root (squashed) opens uid 1000's 0600 file for reading" EACCES posixtool open "$T/secret" r
expect_op "root (squashed) opens uid 1000's 0600 file for writing" EACCES posixtool open "$T/secret" w
expect_op "root (squashed) chmods uid 1000's file" EPERM posixtool chmod "$T/secret" 644
expect_op "root (squashed) chowns uid 1000's file to root" EPERM posixtool chown "$T/secret" 0 0
expect_op "root (squashed) creates a file in uid 1000's 0711 directory" EACCES posixtool open "$T/root-was-here" cx
got=$(cat "$T/secret" 2>/dev/null) && bad "root read the secret: '$got'"
expect_stat %a:%u:%g 600:1000:1000 "$T/secret"

echo "made by root" >"$B/$SUB-root" || bad "root cannot create $SUB-root in the 1777 directory $B"
expect_stat %u:%g "$AU:$AG" "$B/$SUB-root"
echo "HOSTSTAT %u:%g $AU:$AG $REL$SUB-root"
echo "HOSTSTAT %a:%u:%g 600:1000:1000 $REL$SUB/secret"
echo "SUM $(sha256sum <"$B/$SUB-root" | cut -d' ' -f1) $REL$SUB-root"
show_nfs_state
nfs_umount "$M"

n=$(wc -l </tmp/item-fail)
[ "$n" -eq 0 ] || fail "root squashing over NFSv$V: $n checks failed: $(head -n 1 /tmp/item-fail)"
echo "ITEM root-squash: PASS"
