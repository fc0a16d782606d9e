# Guest-side helper library, installed as /lib/loom-guest.sh and sourced by
# /init and by the test scripts. busybox sh (ash) syntax only.

guest_uptime() { cut -d' ' -f1 /proc/uptime; }

log() { echo "guest: $*"; }

# fail REASON: record why the test failed and stop it. /init prints the reason
# in the LOOM-GUEST-RESULT line.
fail() {
    echo "guest: FAIL: $*"
    echo "$*" >>/tmp/loom-fail-reason
    exit 1
}

# check DESCRIPTION CMD...: run CMD; fail with DESCRIPTION if it fails.
check() {
    local what="$1"; shift
    "$@" || fail "$what (command: $*)"
}

# nfs_mount TYPE OPTIONS SOURCE TARGET: mount with text options, no userspace
# NFS machinery involved (no rpcbind, no mount.nfs).
nfs_mount() {
    local t0; t0=$(guest_uptime)
    mkdir -p "$4"
    nfsmount -t "$1" -o "$2" "$3" "$4" || return 1
    log "mounted $3 on $4 (-t $1 -o $2) in $(awk -v a="$t0" -v b="$(guest_uptime)" 'BEGIN{printf "%.2f", b-a}')s"
    grep " $4 " /proc/mounts | sed 's/^/guest: mount: /'
}

# nfs_params: read the mount parameters from the kernel command line words and set
#   P       SERVER_PORT, the NFS port (required)
#   A       SERVER_ADDR (default 10.0.2.2);  EXP  EXPORT_PATH (default /)
#   V       NFS_VERSION: 3, 4.1 or 4.2 (default: 4.2 when SERVER_KIND is loom-mds, else 3)
#   FSTYPE  nfs or nfs4
#   OPTS    text mount options for nfs_mount: NFSv3 asks MOUNT_PORT (default SERVER_PORT)
#           itself, no rpcbind; NFS_OPTS is appended.
nfs_params() {
    [ -n "$SERVER_PORT" ] || fail "SERVER_PORT is not set"
    P=$SERVER_PORT
    A=${SERVER_ADDR:-10.0.2.2}
    EXP=${EXPORT_PATH:-/}
    V=${NFS_VERSION:-}
    [ -n "$V" ] || case "${SERVER_KIND:-}" in loom-mds) V=4.2 ;; *) V=3 ;; esac
    case "$V" in
    3) FSTYPE=nfs
       OPTS="vers=3,proto=tcp,port=$P,mountport=${MOUNT_PORT:-$P},mountproto=tcp,nolock,addr=$A,mountaddr=$A" ;;
    4.1 | 4.2) FSTYPE=nfs4; OPTS="vers=$V,proto=tcp,port=$P,addr=$A" ;;
    *) fail "NFS_VERSION must be 3, 4.1 or 4.2, not '$V'" ;;
    esac
    OPTS="$OPTS${NFS_OPTS:+,$NFS_OPTS}"
}

nfs_umount() {
    umount "$1" || { sleep 1; umount "$1"; }
}

# mount_opt MOUNTPOINT OPTION: print the value of OPTION (e.g. vers) from /proc/mounts.
mount_opt() {
    grep " $1 " /proc/mounts | head -n 1 | awk '{ print $4 }' | tr ',' '\n' | sed -n "s/^$2=//p" | head -n 1
}

# manifest DIR: one sorted line per entry below DIR: "d PATH MODE" or
# "f PATH MODE SIZE SHA256". Used to compare trees.
manifest() {
    (
        cd "$1" || exit 1
        find . -mindepth 1 | sort | while read -r p; do
            if [ -d "$p" ]; then
                echo "d ${p#./} $(stat -c %a "$p")"
            elif [ -f "$p" ]; then
                echo "f ${p#./} $(stat -c '%a %s' "$p") $(sha256sum <"$p" | cut -d' ' -f1)"
            else
                echo "? ${p#./}"
            fi
        done
    )
}

# emit_sums DIR PREFIX: print "SUM <sha256> <PREFIX/path>" and "DIR <PREFIX/path>"
# lines, which the host compares with what landed in the server's export.
emit_sums() {
    manifest "$1" | while read -r kind path mode size sum; do
        case "$kind" in
        f) echo "SUM $sum $2/$path" ;;
        d) echo "DIR $2/$path" ;;
        esac
    done
}

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# timed DESCRIPTION CMD...: run CMD and log how long it took.
timed() {
    local what="$1" t0 rc; shift
    t0=$(guest_uptime)
    "$@"; rc=$?
    log "$what: $(awk -v a="$t0" -v b="$(guest_uptime)" 'BEGIN{printf "%.2f", b-a}')s"
    return $rc
}

# Show what the client negotiated (informative).
show_nfs_state() {
    echo "---- /proc/fs/nfsfs/servers ----"; cat /proc/fs/nfsfs/servers 2>/dev/null
    echo "---- /proc/fs/nfsfs/volumes ----"; cat /proc/fs/nfsfs/volumes 2>/dev/null
    echo "---- mountstats (pnfs / ops with calls) ----"
    awk '/^device/ { nfs = / with fstype nfs/; ops = 0; if (nfs) print; next }
         !nfs { next }
         /pnfs=/ { print; next }
         /per-op statistics/ { ops = 1; next }
         ops && $2 + 0 > 0 { print "  " $1, $2 }' /proc/self/mountstats 2>/dev/null
}

# ---- host actions with answers (kernel-client-test.sh) ------------------------------------
# A guest line "LOOM-HOST-ACTION: NAME ARGS... @TAG" asks the host to do something (see
# kernel-client-test.sh: restart-mds, kill-ds I, start-ds I, admin ARGS..., mark LABEL ...).
# The host answers a tagged request on the second serial port (/dev/ttyS1, which /init opens
# as fd 7 when the harness gives HOST_CHANNEL=1): lines "LOOM-HOST-OUT TAG TEXT" and then
# "LOOM-HOST-REPLY TAG STATUS". The tty must stay open from boot on, or the answers are lost.

# host_do ACTION ARGS...: ask, wait (HOST_TIMEOUT, default 300 s) for the answer, print the
# host's output lines, return the host's status (124: no answer in time, 125: no back channel).
host_do() {
    local tag line st=124 rest
    [ "${HOST_CHANNEL:-0}" = 1 ] && [ -e /proc/self/fd/7 ] || { echo "guest: host_do $*: no back channel" >&2; return 125; }
    tag="q$(head -c 8 /proc/sys/kernel/random/uuid)"
    # To the console itself: callers often capture our stdout.
    echo "LOOM-HOST-ACTION: $* @$tag" >/dev/console
    while read -t "${HOST_TIMEOUT:-300}" -r line <&7; do
        case "$line" in
        "LOOM-HOST-OUT $tag "*) echo "${line#LOOM-HOST-OUT $tag }" ;;
        "LOOM-HOST-OUT $tag") echo ;;
        "LOOM-HOST-REPLY $tag "*) rest=${line#LOOM-HOST-REPLY $tag }; st=${rest%% *}; break ;;
        esac
    done
    return "$st"
}

# host_must ACTION ARGS...: host_do that fails the test when the host's action failed.
host_must() {
    local out st=0
    out=$(host_do "$@") || st=$?
    [ -n "$out" ] && echo "$out" | sed 's/^/guest: host: /'
    [ $st = 0 ] || fail "host action '$*' failed (status $st): $(echo "$out" | tail -n 1)"
}

# kernel_at_least MAJOR MINOR: the running kernel is MAJOR.MINOR or newer.
kernel_at_least() {
    local r maj min
    r=$(uname -r); maj=${r%%.*}; r=${r#*.}; min=${r%%[!0-9]*}
    [ "$maj" -gt "$1" ] || { [ "$maj" -eq "$1" ] && [ "${min:-0}" -ge "$2" ]; }
}

# mountstat_op MOUNTPOINT OP: the number of OP calls in /proc/self/mountstats for the mount.
mountstat_op() {
    awk -v m="$1" -v op="$2:" '/^device / { on = ($5 == m) } on && $1 == op { print $2; found = 1; exit }
        END { if (!found) print 0 }' /proc/self/mountstats
}

# ---- helpers shared by the pNFS tests (guest/pnfs-*.sh) --------------------------------------
# now: seconds since boot (/proc/uptime). since START: seconds from START (a `now`) until now,
# one decimal. over START [SECONDS]: true once more than SECONDS (default WAIT_S) have passed
# since START. sum_of FILE: FILE's sha256, hex.
now() { guest_uptime; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
over() { awk -v a="$1" -v b="$(now)" -v w="${2:-$WAIT_S}" 'BEGIN { exit !(b - a > w) }'; }
sum_of() { sha256sum <"$1" | cut -d' ' -f1; }

# pnfs_dir NAME: mounts A:EXP (after nfs_params) with NFSv4 on M=/mnt/pnfs and makes this
# guest's own directory there, NAME-TAG (TAG from the hostname, so guests sharing a server do
# not collide). Sets M, TAG, SUB (NAME-TAG), D (M/SUB), F (D/f) and SP (the directory as
# loom-mds names it, for host actions); umask 022.
pnfs_dir() {
    M=/mnt/pnfs
    TAG=$(hostname | tr -cd 'a-zA-Z0-9' | tail -c 8)
    SUB=$1-$TAG
    D=$M/$SUB
    F=$D/f
    SP="${EXP%/}/$SUB"
    umask 022
    nfs_mount nfs4 "$OPTS" "$A:$EXP" "$M" || fail "NFSv$V mount of $A:$EXP (port $P) failed"
    check "mkdir $D" mkdir "$D"
}
