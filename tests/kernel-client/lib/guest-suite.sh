# Suite driver: runs IN THE GUEST as /test.sh when kernel-client-test.sh --suite boots one
# guest for several guest scripts (busybox sh). The scripts are in /tests/ (run-guest.sh -a).
#
# SUITE_TESTS (kernel command line) names the tests, comma-separated, in order. For each ID:
#   LOOM-SUITE-BEGIN ID
#   host action "start-test ID": the host stops nothing (the previous test's server is gone
#       already), starts this test's server and answers "SCRIPT NAME", "TIMEOUT S" and one
#       "ENV KEY=VALUE" line per variable (SERVER_PORT, SERVER_KIND, DS_COUNT, ... and the
#       test's parameters), or fails (a line "SKIP reason" when the test cannot run here);
#   /tests/NAME.sh runs in a session of its own with those variables, under a watchdog that
#       fires at S - 20 s (the same as the guest watchdog of a boot of its own);
#   whatever it left running is killed, the kernel log is cleared, every NFS mount is
#       unmounted (lazily when that does not end), the NFS client modules are unloaded and
#       loaded again and /tmp is emptied, so the next script starts as in a fresh boot (it
#       also gets a host name of its own);
#   LOOM-SUITE-END ID PASS   or   LOOM-SUITE-END ID FAIL reason   (or SKIP reason)
#   host action "end-test ID": the host runs its checks of this test (SUM, HOSTSTAT,
#       HOSTCHECK ...) while the server still runs, then stops it.
# The host's verdict is the one that counts (kernel-client-test.sh prints it per test); this
# script exits non-zero when any script failed here.
. /lib/loom-guest.sh

[ -n "${SUITE_TESTS:-}" ] || fail "SUITE_TESTS is not set"
[ "${HOST_CHANNEL:-0}" = 1 ] || fail "a suite needs the host channel (run-guest.sh -c)"
mkdir -p /run/suite

nfs_mounts() { awk '$3 ~ /^nfs/ { print $2 }' /proc/mounts | sort -r; }

# unmount_nfs: every NFS mount, deepest first. A server that is gone (a failed test) must not
# hang us: a umount that has not ended after 20 s is replaced by a lazy one.
unmount_nfs() {
    local m i
    for m in $(nfs_mounts); do
        umount "$m" 2>/dev/null &
        i=0
        while [ $i -lt 100 ] && grep -q " $m nfs" /proc/mounts; do sleep 0.2; i=$((i + 1)); done
        if grep -q " $m nfs" /proc/mounts; then
            echo "guest-suite: umount $m did not end: lazy unmount"
            umount -l "$m" 2>/dev/null
        fi
    done
    [ -z "$(nfs_mounts)" ]
}

# reload_nfs: unload the NFS client's modules and load them again (as /init does, with the
# MODULE.param words of the kernel command line), so that the next test's client starts with
# none of the last one's state: nfs_client list, device ID cache, data-server connections.
# Each fresh loom-mds hands out the same client IDs and device IDs, and a kernel object the
# last test left behind (freed memory reused at the same address, a cache entry not purged)
# could otherwise point this test's layouts at data servers that are gone (seen once: NXIO
# from the first layout on, on 6.1, right after pnfs-mirror killed a data server).
reload_nfs() {
    local m name params bad= out=0
    for m in $(sed -n '1!G;h;$p' /etc/loom-modules); do
        name=$(basename "$m" .ko)
        case "$name" in nfs* | lockd | grace | sunrpc | dns_resolver) ;; *) continue ;; esac
        grep -q "^$name " /proc/modules || continue
        if rmmod "$name" 2>/dev/null; then
            out=$((out + 1))
        else
            echo "guest-suite: rmmod $name failed: $(grep "^$name " /proc/modules)"
        fi
    done
    for m in $(cat /etc/loom-modules); do
        name=$(basename "$m" .ko)
        grep -q "^$name " /proc/modules && continue
        params=$(tr ' ' '\n' </proc/cmdline | sed -n "s/^$name\.//p")
        insmod "$m" $params || bad="$bad $name"
    done
    [ -z "$bad" ] || { echo "guest-suite: insmod failed:$bad"; return 1; }
    log "suite: NFS client modules reloaded ($out unloaded)"
}

# run_one ID: one test, start to end; returns 0 (PASS), 1 (FAIL) or 77 (SKIP).
run_one() {
    local id=$1 script= to=300 wd_s rc=0 pid= wd reason= verdict
    echo "LOOM-SUITE-BEGIN $id"
    if ! host_do start-test "$id" >/run/suite/start 2>&1; then
        sed 's/^/guest-suite: host: /' /run/suite/start
        if grep -q '^SKIP ' /run/suite/start; then
            echo "LOOM-SUITE-END $id SKIP $(sed -n 's/^SKIP //p' /run/suite/start | head -n 1)"
            return 77
        fi
        echo "LOOM-SUITE-END $id FAIL the host could not start the test's server"
        return 1
    fi
    : >/run/suite/env
    while read -r kind val; do
        case "$kind" in
        SCRIPT) script=$val ;;
        TIMEOUT) to=$val ;;
        ENV) echo "$val" >>/run/suite/env ;;
        esac
    done </run/suite/start
    if [ ! -f "/tests/$script.sh" ]; then
        reason="no /tests/$script.sh in the initramfs"
    else
        # A host name of its own, as a boot of its own would have: the NFSv4 client owner
        # string is made from it. Every loom-mds starts afresh and hands out the same client
        # IDs, and (RFC 8881 §2.10.5) a client that finds the same server owner, scope and
        # client ID behind a new address takes it for the server it already knows (trunking),
        # so an owner string that an earlier test's client still used could tie this test's
        # mount to that client's state (its device IDs: data servers that are gone).
        hostname "$GUEST_HOSTNAME-t$n"
        log "suite: $id: /tests/$script.sh as $(hostname) with $(tr '\n' ' ' </run/suite/env)"
        rm -f /tmp/loom-fail-reason /run/suite/timedout
        (
            while read -r kv; do export "$kv"; done </run/suite/env
            GUEST_HOSTNAME=$(hostname)
            # Its own session: the watchdog and the clean-up kill the whole process group,
            # the loops a script leaves in the background included.
            exec setsid sh "/tests/$script.sh"
        ) &
        pid=$!
        wd_s=$((to - 20))
        (
            sleep "$wd_s"
            echo "loom-guest: watchdog fired after ${wd_s}s ($id); user processes:"
            ps | grep -v ' \[.*\]$'
            echo w >/proc/sysrq-trigger  # blocked tasks' kernel stacks, into dmesg
            : >/run/suite/timedout
            kill -9 -"$pid" 2>/dev/null
        ) &
        wd=$!
        wait "$pid" || rc=$?
        kill "$wd" 2>/dev/null
        wait "$wd" 2>/dev/null
        log "suite: $id: $script.sh exited with $rc at $(guest_uptime)s"
        if [ -f /run/suite/timedout ]; then
            reason="guest watchdog: test did not finish within ${wd_s}s"
        elif [ $rc -ne 0 ]; then
            if [ -s /tmp/loom-fail-reason ]; then
                reason=$(head -n 1 /tmp/loom-fail-reason)
            else
                reason="$script.sh exited with status $rc"
            fi
        fi
    fi
    [ -z "$pid" ] || kill -9 -"$pid" 2>/dev/null
    if [ -n "$reason" ]; then
        echo "---- guest dmesg (tail) ----"
        dmesg | tail -n "$([ -f /run/suite/timedout ] && echo 80 || echo 40)"
        echo "---- end of dmesg ----"
    fi
    # The next script reads dmesg as if the boot were its own (nfs4-mds looks for client
    # recovery complaints after its restart; a full ring buffer would shift its line count).
    dmesg -c >/dev/null 2>&1
    echo 0 >/proc/sys/sunrpc/nfs_debug 2>/dev/null
    echo 0 >/proc/sys/sunrpc/rpc_debug 2>/dev/null
    if ! unmount_nfs; then
        [ -n "$reason" ] || reason="cannot unmount $(nfs_mounts | tr '\n' ' ')"
    fi
    cd /
    if ! reload_nfs; then
        [ -n "$reason" ] || reason="the NFS client modules did not load again"
    fi
    rm -rf /tmp/* /tmp/.[!.]* 2>/dev/null
    # No sync (drop_caches in loom-guest.sh syncs): a lazily unmounted mount of a dead server
    # would hang it. Clean pages only.
    echo 3 >/proc/sys/vm/drop_caches
    if [ -z "$reason" ]; then
        echo "LOOM-SUITE-END $id PASS"
    else
        echo "LOOM-SUITE-END $id FAIL $reason"
    fi
    verdict=0
    host_do end-test "$id" >/run/suite/end 2>&1 || verdict=$?
    sed 's/^/guest-suite: host: /' /run/suite/end
    [ -z "$reason" ] && [ $verdict = 0 ]
}

n=0 failed= skipped=
for id in $(echo "$SUITE_TESTS" | tr ',' ' '); do
    n=$((n + 1))
    st=0
    run_one "$id" || st=$?
    case $st in
    0) ;;
    77) skipped="$skipped $id" ;;
    *) failed="$failed $id" ;;
    esac
done
log "suite: $n tests; failed:${failed:- none}; skipped:${skipped:- none}"
[ -z "$failed" ] || fail "$(echo $failed | wc -w) of $n tests failed:$failed"
