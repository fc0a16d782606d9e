#!/bin/bash
# run-guest.sh: boot a stock Debian kernel under qemu (TCG) and run one guest test script.
#
# usage: run-guest.sh [-k 6.1|7] [-s SCRIPT] [-a FILE]... [-t SECONDS] [-l LOGFILE] [-c CHANNEL] [-v] [KEY=VALUE ...]
#   -k  kernel flavor (env LOOM_KERNEL, default 6.1)
#   -s  guest test script, run by /init as /test.sh (env LOOM_GUEST_SCRIPT,
#       default guest/nfs3-basic.sh); a bare name is looked up in guest/
#   -a  also put FILE into the guest as /tests/NAME (repeatable; a bare name is looked up in
#       guest/): the scripts that the suite driver (lib/guest-suite.sh as -s) runs in one boot
#   -t  host-side timeout for the whole boot (env LOOM_GUEST_TIMEOUT, default 300);
#       the guest's own watchdog fires 20 s earlier with a readable FAIL line
#   -l  serial log file (env LOOM_GUEST_LOG, default a new /tmp/loom-kc-*.log)
#   -c  back channel to the guest (env LOOM_GUEST_CHANNEL): CHANNEL.in and CHANNEL.out are
#       FIFOs (made when missing) that qemu connects to the guest's second serial port
#       (/dev/ttyS1): what is written to CHANNEL.in, the guest reads there. The guest gets
#       HOST_CHANNEL=1 (see host_do in initramfs/loom-guest.sh)
#   -v  also stream the serial console to stdout (env LOOM_VERBOSE=1)
#   KEY=VALUE words go on the kernel command line and reach /init and the test
#   as environment variables, e.g. SERVER_PORT=2049 NFSVERS=3. Keys must not
#   contain dots: MODULE.param=VALUE words are module parameters, which /init
#   passes to insmod (e.g. nfsv4.directory_delegations=0 on the 7.x kernel).
# Env: LOOM_GUEST_MEM (MiB, 1024), LOOM_GUEST_SMP (2; the 7.x kernel runs TCG
#   single-threaded regardless), LOOM_KCACHE (see prepare.sh).
#
# Exit: 0 when the guest printed "LOOM-GUEST-RESULT: PASS", 77 when no kernel or
# qemu is available (skip), 1 otherwise (the log's tail is printed).
set -euo pipefail

KC_PROG=run-guest
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib/host-common.sh"
trap 'kc_log "unexpected failure (status $?) at line $LINENO: $BASH_COMMAND"' ERR

FLAVOR=${LOOM_KERNEL:-6.1}
SCRIPT=${LOOM_GUEST_SCRIPT:-nfs3-basic.sh}
TIMEOUT=${LOOM_GUEST_TIMEOUT:-300}
LOG=${LOOM_GUEST_LOG:-}
VERBOSE=${LOOM_VERBOSE:-0}
CHANNEL=${LOOM_GUEST_CHANNEL:-}
extra_files=()
while getopts "k:s:a:t:l:c:vh" opt; do
    case "$opt" in
    k) FLAVOR=$OPTARG ;;
    s) SCRIPT=$OPTARG ;;
    a) extra_files+=("$OPTARG") ;;
    t) TIMEOUT=$OPTARG ;;
    l) LOG=$OPTARG ;;
    c) CHANNEL=$OPTARG ;;
    v) VERBOSE=1 ;;
    h) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
params=()
for kv in "$@"; do
    [[ "$kv" =~ ^[A-Za-z_][A-Za-z0-9_]*=[^[:space:]]*$ ]] ||    # for /init and the test
        [[ "$kv" =~ ^[a-z0-9_]+\.[a-z0-9_]+=[^[:space:]]*$ ]] || # MODULE.param=value
        kc_die "not a KEY=VALUE or MODULE.param=VALUE word (no spaces): '$kv'"
    params+=("$kv")
done
if [ ! -f "$SCRIPT" ] && [ -f "$HERE/guest/$SCRIPT" ]; then SCRIPT=$HERE/guest/$SCRIPT; fi
[ -f "$SCRIPT" ] || kc_die "no guest script '$SCRIPT'"
for i in "${!extra_files[@]}"; do
    f=${extra_files[$i]}
    if [ ! -f "$f" ] && [ -f "$HERE/guest/$f" ]; then f=$HERE/guest/$f; fi
    [ -f "$f" ] || kc_die "no guest file '$f' (-a)"
    extra_files[$i]=$f
done
[[ "$TIMEOUT" =~ ^[0-9]+$ ]] && [ "$TIMEOUT" -ge 30 ] || kc_die "timeout must be a number of seconds >= 30"

rc=0
"$HERE/prepare.sh" "$FLAVOR" || rc=$?
[ $rc -eq 0 ] || exit $rc
case "$FLAVOR" in 6 | 6.1) FLAVOR=6.1 ;; 7 | 7.x) FLAVOR=7 ;; esac
. "${LOOM_KCACHE:-/var/cache/loom-kernel}/$FLAVOR/guest.env"

if ! command -v qemu-system-x86_64 >/dev/null; then
    kc_ensure_packages qemu-system-x86 || kc_skip "qemu-system-x86_64 is not available"
fi

work=$(mktemp -d /tmp/loom-kc-run.XXXXXX)
trap 'rm -rf "$work"' EXIT
[ -n "$LOG" ] || LOG=$(mktemp /tmp/loom-kc-XXXXXX.log)
: >"$LOG"

# The initrd for this run: the cached base archive, zero-padded to a 4-byte
# boundary (the kernel looks for the next archive there), then a small
# uncompressed cpio with /test.sh (and /tests/*, -a). The kernel unpacks both into one rootfs.
mkdir "$work/extra"
install -m 755 "$SCRIPT" "$work/extra/test.sh"
extra_names=()
if [ ${#extra_files[@]} -gt 0 ]; then
    mkdir "$work/extra/tests"
    extra_names+=(tests)
    for f in "${extra_files[@]}"; do
        install -m 755 "$f" "$work/extra/tests/$(basename "$f")"
        extra_names+=("tests/$(basename "$f")")
    done
fi
cp "$INITRD" "$work/initrd"
pad=$(((4 - $(stat -c %s "$work/initrd") % 4) % 4))
head -c "$pad" /dev/zero >>"$work/initrd"
(cd "$work/extra" && printf '%s\n' test.sh "${extra_names[@]}" | cpio -o -H newc -R 0:0 --quiet) >>"$work/initrd"

guest_timeout=$((TIMEOUT - 20))
hostname_word="GUEST_HOSTNAME=loomkc-$(hostname -s | tr -cd 'a-zA-Z0-9' | head -c 12)-$$-$RANDOM"
append="console=ttyS0 quiet panic=-1 GUEST_TIMEOUT=$guest_timeout $hostname_word ${params[*]:-}"
[ -n "$CHANNEL" ] && append="$append HOST_CHANNEL=1"
qemu=(qemu-system-x86_64 -accel "$QEMU_ACCEL" -m "${LOOM_GUEST_MEM:-1024}" -smp "${LOOM_GUEST_SMP:-2}"
    -nodefaults -display none -vga none -monitor none -serial stdio -no-reboot
    -netdev user,id=n0 -device virtio-net-pci,netdev=n0,romfile=
    -kernel "$VMLINUZ" -initrd "$work/initrd" -append "$append")
if [ -n "$CHANNEL" ]; then
    # A second serial port (ttyS1) on two FIFOs; qemu opens them read-write, so neither side
    # blocks on open.
    for f in "$CHANNEL.in" "$CHANNEL.out"; do [ -p "$f" ] || mkfifo "$f"; done
    qemu+=(-chardev "pipe,id=hostch,path=$CHANNEL" -serial chardev:hostch)
fi

kc_log "booting $KVER ($QEMU_ACCEL) with $(basename "$SCRIPT"); ${params[*]:-no parameters}; timeout ${TIMEOUT}s; log $LOG"
t0=$(kc_now)
qrc=0
# In the background, so that a SIGTERM/SIGINT to this script (e.g. from
# kernel-client-test.sh, which runs us in the background) stops qemu too.
if [ "$VERBOSE" = 1 ]; then
    timeout -k 10 "$TIMEOUT" "${qemu[@]}" </dev/null > >(tee -a "$LOG") 2>&1 &
else
    timeout -k 10 "$TIMEOUT" "${qemu[@]}" </dev/null >>"$LOG" 2>&1 &
fi
qemu_pid=$!
trap 'kill -TERM "$qemu_pid" 2>/dev/null || true; exit 1' TERM INT
wait "$qemu_pid" || qrc=$?
trap - TERM INT
[ "$VERBOSE" = 1 ] && sleep 0.3  # let tee write the last lines
secs=$(kc_elapsed "$t0")

result=$(tr -d '\r' <"$LOG" | grep -a '^LOOM-GUEST-RESULT:' | tail -n 1 || true)
if [ "$result" = "LOOM-GUEST-RESULT: PASS" ]; then
    kc_log "PASS: $(basename "$SCRIPT") on $KVER in ${secs}s"
    exit 0
fi
if [ $qrc -eq 124 ] || [ $qrc -eq 137 ]; then
    why="host timeout: qemu killed after ${TIMEOUT}s"
elif [ -n "$result" ]; then
    why=${result#LOOM-GUEST-RESULT: }
else
    why="no result line from the guest (qemu exit status $qrc)"
fi
if [ "$VERBOSE" != 1 ]; then
    echo "---- last 80 lines of $LOG ----" >&2
    tr -d '\r' <"$LOG" | tail -n 80 >&2
    echo "---- end of log ----" >&2
fi
kc_log "FAIL: $(basename "$SCRIPT") on $KVER after ${secs}s: $why (full log: $LOG)"
exit 1
