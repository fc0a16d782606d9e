# Guest test: POSIX permission semantics through the Linux kernel client (busybox sh, /test.sh).
#
# Items 5-11 of issue 9, each seen from the client: the guest runs as root and acts as other
# users with `posixtool asuser` (setgroups/setgid/setuid, then exec). Users:
#   uid 1000, groups 1000,2000    uid 1001, group 1001    group 3000: neither is in it
# Every result the server must keep is read back with a fresh stat (drop_caches: the inode is
# looked up again) and once more after umount + remount, so the client's caches cannot hide
# what the server did.
#   5  set-user-ID / set-group-ID cleared: chown/chgrp by the owner, WRITE by another user
#      or by the owner, chmod g+s by an owner outside the file's group (kept, as Linux keeps
#      them: S_ISGID without group-exec on chown and WRITE, S_ISUID set by the owner, g+s by
#      an owner in the group, directories on chown, WRITE by root)
#   6  chown by a non-owner that changes nothing: EPERM
#   7  OPEN for write (O_WRONLY, O_RDWR, O_TRUNC, O_CREAT of the existing file) by the owner
#      of a 0444 file: EACCES, the file untouched (on NFSv3 the client asks ACCESS); but a
#      file created 0444 can be written through the descriptor that created it
#   8  another user moves my directory to a new parent: EACCES/EPERM ("..": write on it);
#      in the same parent, or a file to a new parent: allowed
#   9  chmod, chown and times of a FIFO, a socket, char/block devices; times of a symlink
#      itself (touch -h), its target untouched
#  10  O_EXCL create: atime and mtime are "now", not an exclusive-create verifier
#  11  NFSv4.1+: an open file removed, still readable, no .nfsXXXX silly rename
# Parameters (kernel command line words, read by nfs_params in /lib/loom-guest.sh):
#   SERVER_PORT   NFS port (required); MOUNT_PORT (NFSv3, default SERVER_PORT)
#   SERVER_KIND   loom-ds | loom-mds | ganesha | cmd (kernel-client-test.sh sets it)
#   NFS_VERSION   3, 4.1 or 4.2 (default: 4.2 for loom-mds, else 3)
#   SERVER_ADDR   default 10.0.2.2;  EXPORT_PATH  default /;  NFS_OPTS  extra mount options
# Prints "ITEM N: PASS|FAIL ..." per item, and for the host: "HOSTSTAT FMT WANT PATH" (what
# `stat -c FMT` must show for PATH in the export) and a "SUM" line for a data file.
. /lib/loom-guest.sh

nfs_params
M=/mnt/nfs
SUB=kcp-v$V
T=$M/$SUB
umask 022
cd /

as1000() { posixtool asuser 1000 1000,2000 -- "$@"; }
as1001() { posixtool asuser 1001 1001 -- "$@"; }

: >/tmp/item-fail
: >/tmp/expect
# bad ITEM TEXT: one failed check of an item; the test goes on with the next check.
bad() {
    local item=$1; shift
    echo "guest: ITEM $item CHECK FAILED: $*"
    echo "$item $*" >>/tmp/item-fail
}

# expect_op ITEM WHAT WANTED CMD...: CMD (a posixtool call, maybe through asuser) must print
# one of the words in WANTED (OK, EPERM, "EACCES EPERM", ...).
expect_op() {
    local item=$1 what=$2 want=$3 got w; shift 3
    got=$("$@" 2>&1 | tail -n 1)
    for w in $want; do
        [ "$got" = "$w" ] && { log "item $item: $what: $got"; return 0; }
    done
    bad "$item" "$what: got '$got', want $(echo $want | sed 's/ / or /g')"
    return 1
}

# check_stat ITEM FMT WANT PATH [WHEN]: `stat -c FMT` of $T/PATH must be WANT.
check_stat() {
    local got
    got=$(stat -c "$2" "$T/$4" 2>&1)
    if [ "$got" = "$3" ]; then log "item $1: $4: $2 = $got${5:+ ($5)}"; return 0; fi
    bad "$1" "$4: stat $2 is '$got', want '$3'${5:+ ($5)}"
}

# remember ITEM FMT WANT PATH: an expectation for the remount and the host; it replaces an
# earlier one for the same attributes of the same path.
remember() {
    awk -v f="$2" -v p="$4" '!($2 == f && $4 == p)' /tmp/expect >/tmp/expect.new
    echo "$1 $2 $3 $4" >>/tmp/expect.new
    mv /tmp/expect.new /tmp/expect
}

# expect_stat ITEM FMT WANT PATH: check now (after dropping the caches) and again after the
# remount at the end; the host checks it in the export too.
expect_stat() {
    remember "$@"
    drop_caches
    check_stat "$@"
}

# check_recent ITEM FMT PATH [WHEN]: `stat -c FMT` (%X, %Y) of $T/PATH is within a day of
# the guest's clock; expect_recent ITEM FMT PATH also checks it after the remount.
check_recent() {
    local got now
    got=$(stat -c "$2" "$T/$3" 2>&1); now=$(date +%s)
    if [ "$got" -eq "$got" ] 2>/dev/null && [ $((got - now)) -lt 86400 ] && [ $((now - got)) -lt 86400 ]; then
        log "item $1: $3: $2 = $got, now $now${4:+ ($4)}"
        return 0
    fi
    bad "$1" "$3: stat $2 is '$got' ($(date -u -d "@$got" 2>/dev/null || echo '?')), now is $now: more than a day apart${4:+ ($4)}"
}
expect_recent() {
    remember "$1" "$2" RECENT "$3"
    drop_caches
    check_recent "$@"
}

# mkf NAME UID:GID MODE: a file made by root, then given away (chown before chmod: a chown
# may clear set-ID bits).
mkf() {
    echo "$1 made by root" >"$T/$1" || fail "cannot create $T/$1"
    chown "$2" "$T/$1" || fail "cannot chown $T/$1 to $2"
    chmod "$3" "$T/$1" || fail "cannot chmod $T/$1 to $3"
}

do_mount() {
    nfs_mount "$FSTYPE" "$OPTS" "$A:$EXP" "$M" || fail "mount -t $FSTYPE -o $OPTS $A:$EXP failed"
    [ "$(mount_opt "$M" vers)" = "$V" ] || fail "mounted, but not with vers=$V: $(grep " $M " /proc/mounts)"
}

log "POSIX semantics over NFSv$V (server ${SERVER_KIND:-?}); $(date -u)"
do_mount
[ -e "$T" ] && { log "removing $T left from an earlier run"; rm -rf "$T"; }
check "mkdir $T" mkdir "$T"
check "chmod 0777 $T" chmod 0777 "$T"
echo "loom posix-perms data $(date +%s)" >"$T/data.txt" || fail "cannot write data.txt"

# ---- 5: set-user-ID and set-group-ID cleared ------------------------------------------
mkf f5a 1000:1000 6755
check_stat 5 %a 6755 f5a "set up by root"
expect_op 5 "uid 1000 chowns its 06755 file to its own uid:gid" OK as1000 posixtool chown "$T/f5a" 1000 1000
expect_stat 5 %a:%u:%g 755:1000:1000 f5a

mkf f5b 1000:1000 6745
expect_op 5 "uid 1000 chgrps its 06745 file to group 2000 (its own)" OK as1000 posixtool chown "$T/f5b" -1 2000
# S_ISUID goes; S_ISGID without group-exec is not a set-group-ID bit, and stays.
expect_stat 5 %a:%u:%g 2745:1000:2000 f5b

mkdir "$T/d5" && chown 1000:1000 "$T/d5" && chmod 2775 "$T/d5" || fail "cannot set up d5"
expect_op 5 "uid 1000 chowns its 02775 directory to itself" OK as1000 posixtool chown "$T/d5" 1000 1000
expect_stat 5 %a:%u:%g 2775:1000:1000 d5   # directories keep S_ISGID (inheritance)

mkf f5c 1000:1000 6777
expect_op 5 "uid 1001 writes to uid 1000's 06777 file" OK as1001 posixtool write "$T/f5c" "written by 1001"
expect_stat 5 %a:%u:%s 777:1000:17 f5c
# A WRITE clears them whoever writes, the owner too; only root (CAP_FSETID) keeps them.
mkf f5g 1000:1000 6755
expect_op 5 "uid 1000 writes to its own 06755 file" OK as1000 posixtool write "$T/f5g" "written by 1000"
expect_stat 5 %a 755 f5g
mkf f5h 1000:1001 2775
expect_op 5 "uid 1001 (in the file's group) writes to a 02775 file" OK as1001 posixtool write "$T/f5h" "written by 1001"
expect_stat 5 %a 775 f5h
mkf f5i 1000:1001 2765
expect_op 5 "uid 1001 writes to a 02765 file (S_ISGID without group-exec)" OK as1001 posixtool write "$T/f5i" "written by 1001"
expect_stat 5 %a 2765 f5i
if [ "${ROOT_SQUASHED:-0}" != 1 ]; then
    mkf f5j 1000:1000 6755
    expect_op 5 "root writes to uid 1000's 06755 file" OK posixtool write "$T/f5j" "written by root"
    expect_stat 5 %a 6755 f5j
fi

mkf f5d 1000:3000 755
expect_op 5 "uid 1000 (not in group 3000) chmods its file 02755" OK as1000 posixtool chmod "$T/f5d" 2755
expect_stat 5 %a:%u:%g 755:1000:3000 f5d

mkf f5e 1000:3000 755
expect_op 5 "uid 1000 chmods its file 04755" OK as1000 posixtool chmod "$T/f5e" 4755
expect_stat 5 %a 4755 f5e

mkf f5f 1000:2000 755
expect_op 5 "uid 1000 (in group 2000) chmods its file 02755" OK as1000 posixtool chmod "$T/f5f" 2755
expect_stat 5 %a 2755 f5f

# ---- 6: chown by a non-owner --------------------------------------------------------------
mkf f6 1000:1000 644
expect_op 6 "uid 1001 chowns uid 1000's file to 1000:1000 (no change)" EPERM as1001 posixtool chown "$T/f6" 1000 1000
expect_op 6 "uid 1001 chgrps uid 1000's file to 1000 (no change)" EPERM as1001 posixtool chown "$T/f6" -1 1000
expect_op 6 "uid 1001 chowns uid 1000's file to 1001:1001" EPERM as1001 posixtool chown "$T/f6" 1001 1001
expect_stat 6 %a:%u:%g 644:1000:1000 f6

# ---- 7: OPEN for write when the owner bits deny it ---------------------------------------
mkf f7 1000:1000 444
expect_op 7 "uid 1000 opens its own 0444 file O_WRONLY" EACCES as1000 posixtool open "$T/f7" w
expect_op 7 "uid 1000 opens its own 0444 file O_RDWR" EACCES as1000 posixtool open "$T/f7" rw
expect_op 7 "uid 1000 opens its own 0444 file O_WRONLY|O_TRUNC" EACCES as1000 posixtool open "$T/f7" wt
expect_op 7 "uid 1000 opens its own existing 0444 file O_CREAT|O_WRONLY" EACCES as1000 posixtool open "$T/f7" c
expect_op 7 "uid 1000 opens its own 0444 file O_RDONLY" OK as1000 posixtool open "$T/f7" r
expect_stat 7 %a:%u:%s 444:1000:16 f7
# The owner override is for I/O on a descriptor already open: creating a file 0444 and
# writing through the new descriptor works (cp -p, tar, ...).
expect_op 7 "uid 1000 creates f7c 0444 and writes through that descriptor" OK \
    as1000 posixtool cwrite "$T/f7c" 444 "written at create"
expect_stat 7 %a:%u:%s 444:1000:17 f7c

# ---- 8: moving another user's directory to a new parent -----------------------------------
mkdir "$T/d8a" "$T/d8b" && chmod 0777 "$T/d8a" "$T/d8b" || fail "cannot set up d8a, d8b"
as1000 mkdir "$T/d8a/mine" || fail "uid 1000 cannot mkdir in a 0777 directory"
if ! expect_op 8 "uid 1001 moves uid 1000's 0755 directory to another parent" "EACCES EPERM" \
    as1001 posixtool rename "$T/d8a/mine" "$T/d8b/mine"; then
    mv "$T/d8b/mine" "$T/d8a/mine" || fail "cannot move d8b/mine back"  # for the checks below
fi
expect_op 8 "uid 1001 renames uid 1000's directory in the same parent (allowed)" OK \
    as1001 posixtool rename "$T/d8a/mine" "$T/d8a/renamed"
expect_op 8 "uid 1000 moves its own directory to another parent" OK \
    as1000 posixtool rename "$T/d8a/renamed" "$T/d8b/moved"
expect_stat 8 %F:%u directory:1000 d8b/moved
as1000 sh -c "echo mine >'$T/d8a/file'" || fail "uid 1000 cannot create d8a/file"
expect_op 8 "uid 1001 moves uid 1000's file to another parent (no '..' to change: allowed)" OK \
    as1001 posixtool rename "$T/d8a/file" "$T/d8b/file"
expect_stat 8 %u:%s 1000:5 d8b/file

# ---- 9: special files and symlinks --------------------------------------------------------
mknod "$T/f9fifo" p || bad 9 "mknod p (FIFO) failed"
mknod "$T/f9chr" c 1 3 || bad 9 "mknod c 1 3 failed"
mknod "$T/f9blk" b 7 0 || bad 9 "mknod b 7 0 failed"
expect_op 9 "bind(2) a unix socket" OK posixtool mksock "$T/f9sock"
for n in fifo sock chr blk; do
    f=f9$n
    [ -e "$T/$f" ] || continue
    expect_op 9 "chmod 0640 $f" OK posixtool chmod "$T/$f" 640
    expect_stat 9 %a 640 $f
    expect_op 9 "chown 1000:2000 $f" OK posixtool chown "$T/$f" 1000 2000
    expect_stat 9 %u:%g 1000:2000 $f
    # busybox touch -a / -m: utimensat with the other time omitted (guest TZ is UTC)
    touch -a -t 200109090146.40 "$T/$f" || bad 9 "touch -a $f failed"
    touch -m -t 200509181045.00 "$T/$f" || bad 9 "touch -m $f failed"
    expect_stat 9 %X:%Y 1000000000:1127040300 $f
done
echo target >"$T/f9target"
touch -t 201001010000.00 "$T/f9target"
ln -s f9target "$T/f9link" || bad 9 "symlink failed"
touch -h -t 200109090146.40 "$T/f9link" || bad 9 "touch -h f9link failed"
expect_stat 9 %X:%Y 1000000000:1000000000 f9link
expect_op 9 "utimensat(AT_SYMLINK_NOFOLLOW) atime only on f9link" OK posixtool utimes "$T/f9link" 1100000000 omit nofollow
expect_stat 9 %X:%Y 1100000000:1000000000 f9link
expect_stat 9 %X:%Y 1262304000:1262304000 f9target

# ---- 10: O_EXCL create leaves no verifier in the times ------------------------------------
expect_op 10 "root creates f10 with O_CREAT|O_EXCL" OK posixtool open "$T/f10" cx
expect_op 10 "O_EXCL again on the same name" EEXIST posixtool open "$T/f10" cx
expect_recent 10 %X f10
expect_recent 10 %Y f10
expect_op 10 "uid 1000 creates f10u with O_CREAT|O_EXCL" OK as1000 posixtool open "$T/f10u" cx
expect_stat 10 %u 1000 f10u
expect_recent 10 %X f10u
( set -C; : >"$T/f10s" ) || bad 10 "noclobber (O_EXCL) create of f10s failed"
expect_recent 10 %X f10s

# ---- 11: an open, removed file stays readable, without a silly rename ---------------------
if [ "$FSTYPE" = nfs4 ]; then
    n11=$(grep -c '^11 ' /tmp/item-fail)
    echo "preserved unlinked" >"$T/f11"
    exec 3<"$T/f11" 4<"$T/f11"
    rm "$T/f11" || bad 11 "rm of an open file failed"
    silly=$(ls -a "$T" | grep '^\.nfs')
    [ -z "$silly" ] || bad 11 "the client silly-renamed the open file: $(echo $silly) (no OPEN4_RESULT_PRESERVE_UNLINKED)"
    [ -e "$T/f11" ] && bad 11 "f11 still exists after rm"
    got=$(cat <&3)
    [ "$got" = "preserved unlinked" ] || bad 11 "reading the removed file gave '$got'"
    drop_caches
    got=$(cat <&4)
    [ "$got" = "preserved unlinked" ] || bad 11 "reading the removed file after drop_caches gave '$got'"
    exec 3<&- 4<&-
    sleep 1
    silly=$(ls -a "$T" | grep '^\.nfs')
    [ -z "$silly" ] || bad 11 "after close: $(echo $silly) in the directory"
    [ "$(grep -c '^11 ' /tmp/item-fail)" = "$n11" ] && log "item 11: open file removed, read back twice, no .nfs file"
else
    log "item 11: not applicable to NFSv$V (silly rename is how NFSv3 keeps open files)"
fi

# ---- the same results after a remount -----------------------------------------------------
show_nfs_state
cd /
nfs_umount "$M" || fail "umount $M failed"
drop_caches
do_mount
while read -r item fmt want path; do
    if [ "$want" = RECENT ]; then check_recent "$item" "$fmt" "$path" "after remount"
    else check_stat "$item" "$fmt" "$want" "$path" "after remount"; fi
done </tmp/expect

# ---- what the host checks, and the verdict ------------------------------------------------
while read -r item fmt want path; do
    [ "$want" = RECENT ] || echo "HOSTSTAT $fmt $want $SUB/$path"
done </tmp/expect
echo "SUM $(sha256sum <"$T/data.txt" | cut -d' ' -f1) $SUB/data.txt"
nfs_umount "$M"

failed=
for item in 5 6 7 8 9 10 11; do
    n=$(grep -c "^$item " /tmp/item-fail)
    if [ "$item" = 11 ] && [ "$FSTYPE" != nfs4 ]; then
        echo "ITEM 11: N/A (NFSv$V)"
    elif [ "$n" -eq 0 ]; then
        echo "ITEM $item: PASS"
    else
        echo "ITEM $item: FAIL ($n checks): $(grep "^$item " /tmp/item-fail | head -n 1 | cut -d' ' -f2-)"
        failed="$failed $item"
    fi
done
[ -z "$failed" ] || fail "POSIX semantics over NFSv$V: items failed:$failed (see ITEM lines)"
log "all POSIX checks passed over NFSv$V"
