#!/bin/bash
# kernel-client-test.sh: the Linux kernel NFS client (in a qemu guest) against a
# server running on this host. For ctest.
#
# usage: kernel-client-test.sh [options] [LOOM_DS [KERNEL]] [-- KEY=VALUE ...]
#        kernel-client-test.sh --suite [--only ID,ID...] [--long] [options] [-- KEY=VALUE ...]
#        kernel-client-test.sh --spec ID [--long] [options] [-- KEY=VALUE ...]
#   --suite          one guest boot runs the tests of tests.list one after the other (all, or
#                    those --only names; env LOOM_KC_SUITE=1, LOOM_KC_ONLY): before each, the
#                    guest asks for host action "start-test ID" and this script starts that
#                    test's server (its own directory, port, cluster shape and export rules);
#                    after each, "end-test ID" runs the test's host checks and stops the server.
#                    Each test's verdict is printed on its own ("==== [I/N] ID: PASS|FAIL ...")
#                    with a summary at the end; the suite fails if any test fails. Servers are
#                    loom-ds / loom-mds as tests.list says; words after -- go to every test.
#                    The whole boot's timeout: --suite-timeout S (env LOOM_KC_SUITE_TIMEOUT, 2400)
#   --spec ID        one test of tests.list in a boot of its own, with that line's server, data
#                    servers, export rules, timeout and parameters (what ctest runs with
#                    -DLOOM_KERNEL_CLIENT_SEPARATE=ON); words after -- override its parameters
#   --long           keep the large transfers: the "short:" parameters of tests.list (smaller
#                    BIG_MB, MOVE_MB ...) are not passed (env LOOM_KC_LONG=1)
#   (env LOOM_KC_TESTS_LIST: a list to use instead of tests.list, same format)
#   --server loom-ds|loom-mds|ganesha|cmd  server to test (env LOOM_KC_SERVER, default loom-ds)
#       loom-ds: "$LOOM_DS" --root DIR --listen 127.0.0.1:PORT, waits for "ready" on stdout
#       loom-mds: scripts/loom-cluster.sh (a loom-ds and a loom-mds from LOOM_DS's build,
#                --lease 10 --grace 5); NFSv4.1/4.2 only
#       ganesha: nfs-ganesha (FSAL VFS) as a reference peer, NFS and MOUNT on one port
#       cmd:     the command in --server-cmd / LOOM_KC_SERVER_CMD, with @ROOT@ and @PORT@
#                replaced; it must print a line containing "ready" once it listens
#   --loom-ds PATH   loom-ds binary (env LOOM_DS, default build/apps/loom-ds/loom-ds)
#   --kernel 6.1|7   guest kernel (env LOOM_KERNEL, default 6.1)
#   --test NAME      guest script in guest/ (env LOOM_KC_TEST, default nfs3-basic)
#   --timeout S      guest boot timeout (env LOOM_GUEST_TIMEOUT, default 300)
#   --netns auto|yes|no  run server and qemu in a private network namespace (env
#                    LOOM_KC_NETNS, default auto = when `unshare` works). It isolates
#                    the test's ports, and ganesha's rpcbind, from everything else.
#   --exports RULES  export rules for loom-ds / loom-mds (env LOOM_KC_EXPORTS, default
#                    "*(rw,no_root_squash)": the guest acts as root). Written to a file
#                    given with --exports when the server has that option (loom-mds through
#                    scripts/loom-cluster.sh --mds-exports); RULES that squash root make the export
#                    root 1777 (loom-ds) and tell the guest ROOT_SQUASHED=1; loom-mds starts
#                    unsquashed and gets RULES at the guest's "apply-exports" host action
#                    (EXPORTS_STAGED=1). Non-default RULES on a server without export
#                    rules: skip (77).
#   --ds-count N     loom-mds: data servers in the cluster (env LOOM_KC_DS, default 1)
#   --mds-args ARGS  loom-mds: extra loom-mds arguments (env LOOM_KC_MDS_ARGS), e.g.
#                    "--pnfs off" or "--mirrors 2"; loom-cluster.sh --mds-args
#   --advertise HOST loom-mds: the data-server host told to clients (env LOOM_KC_ADVERTISE,
#                    default 10.0.2.2: the guest reaches this host's 127.0.0.1 there, in the
#                    private network namespace too; "none": not passed). Passed only when
#                    loom-mds --help lists --advertise.
#   --setup CMD      run CMD (bash) on the host once the server is up, before the guest boots;
#                    @PORT@, @MDS@ (127.0.0.1:PORT), @DIR@ (the export / cluster dir) and @LOOM@
#                    (the loom CLI) are replaced, LOOM_MDS is set; the test fails if CMD does
#                    (env LOOM_KC_SETUP). E.g. '@LOOM@ mkdir /s && @LOOM@ admin policy set /s --stripes 3'
#   --save DIR       copy guest.log, server.log, marks and the stats files to DIR at the end
#                    (env LOOM_KC_SAVE; for bench/pnfs-bench.sh)
#   --keep           keep the temp dir (export, logs) even on success
#   -v               stream the guest console
#   KEY=VALUE words after -- go to the guest (e.g. BIG_MB=4, NFS_OPTS=rsize=65536).
#
# After the guest passes, every "SUM <sha256> <path>" line it printed is checked
# against the server's export directory on the host (loom-mds: against the data files of
# its loom-ds). "HOSTSTAT FMT WANT PATH" lines are checked whether it passed or not: `stat -c
# FMT` of the export's PATH (loom-mds: the loom CLI's stat, %a %u %g %s %Y) must be WANT.
# The guest gets SERVER_KIND=<server> and ROOT_SQUASHED=0|1.
# Host actions: while the guest runs, its console is watched for "LOOM-HOST-ACTION: NAME
# [ARGS...] [@TAG]" lines. "restart-mds" (loom-mds only) crashes loom-mds (SIGKILL) and starts
# it again on the same port and state (SIGUSR1 to loom-cluster.sh); "apply-exports" does the
# same after putting the --exports rules in place; the test fails unless every request
# led to a restart. nfs4-mds gets MDS_RESTART=1 by default with --server loom-mds.
# More, loom-mds only: "kill-ds I" (SIGKILL data server I, 0-based; "kill-ds holding:PATH
# [except:I]" kills one that holds a data file of PATH, found in `loom admin layout PATH`;
# the answer's last line is "killed dsI pid P port N"), "start-ds I"
# (start it again on its port), "admin ARGS..." (`loom --mds 127.0.0.1:PORT admin ARGS...`);
# "data-files INO" (inode INO's data files on every data server, one line each: "dsI port P
# NAME SIZE"), "break-data-file INO remove|replace" (every data file of INO is removed, or
# replaced by a copy under the same name, owner and mode: a new inode, so the handles that
# loom-mds and its clients hold turn NFS3ERR_STALE), "counter METRIC [KEY [FIELD]]" (the value
# of a numeric HOSTCHECK metric now, lib/hostcheck.sh, e.g. "counter ds-io-errors": a guest
# compares two readings to see what one step did);
# any server: "mark LABEL" (note the servers' CPU seconds, utime+stime from /proc/PID/stat,
# in the file "marks": "LABEL UNIXTIME mds=S ds0=S ..." or "LABEL UNIXTIME server=S").
# A request with @TAG is answered on the guest's second serial port (host_do in
# initramfs/loom-guest.sh: the action's output and exit status) and the guest decides; an
# untagged request that fails fails the test.
# HOSTCHECK lines (loom-mds): checked after the guest finished, against the cluster's
# counters and data files: see lib/hostcheck.sh (e.g. "HOSTCHECK mds-op READ calls == 0",
# "HOSTCHECK ds-bytes-written >= 268435456", "HOSTCHECK stripes INO SIZE UNIT 3 SHA256").
# If the server dies during the test, the guest is stopped at once.
# Exit: 0 pass, 1 fail, 77 skip (no qemu, no kernel, no server binary; a suite: every test
# skipped).
set -euo pipefail

KC_PROG=kernel-client-test
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
. "$HERE/lib/host-common.sh"
trap 'kc_log "unexpected failure (status $?) at line $LINENO: $BASH_COMMAND"' ERR

SERVER=${LOOM_KC_SERVER:-loom-ds}
SERVER_CMD=${LOOM_KC_SERVER_CMD:-}
LOOM_DS=${LOOM_DS:-}
KERNEL=${LOOM_KERNEL:-6.1}
TEST=${LOOM_KC_TEST:-nfs3-basic}
TIMEOUT=${LOOM_GUEST_TIMEOUT:-300}
NETNS=${LOOM_KC_NETNS:-auto}
EXPORTS_RULES=${LOOM_KC_EXPORTS:-}
DS_COUNT=${LOOM_KC_DS:-1}
MDS_ARGS=${LOOM_KC_MDS_ARGS:-}
ADVERTISE=${LOOM_KC_ADVERTISE:-10.0.2.2}
SETUP_CMD=${LOOM_KC_SETUP:-}
SAVE_DIR=${LOOM_KC_SAVE:-}
SUITE=${LOOM_KC_SUITE:-0}
ONLY=${LOOM_KC_ONLY:-}
SPEC=${LOOM_KC_SPEC:-}
LONG=${LOOM_KC_LONG:-0}
SUITE_TIMEOUT=${LOOM_KC_SUITE_TIMEOUT:-2400}
KEEP=0
VERBOSE=${LOOM_VERBOSE:-0}
INNER=0
positional=()
guest_params=()
while [ $# -gt 0 ]; do
    case "$1" in
    --server) SERVER=$2; shift 2 ;;
    --server-cmd) SERVER=cmd; SERVER_CMD=$2; shift 2 ;;
    --loom-ds) LOOM_DS=$2; shift 2 ;;
    --kernel) KERNEL=$2; shift 2 ;;
    --test) TEST=$2; shift 2 ;;
    --timeout) TIMEOUT=$2; shift 2 ;;
    --netns) NETNS=$2; shift 2 ;;
    --exports) EXPORTS_RULES=$2; shift 2 ;;
    --ds-count) DS_COUNT=$2; shift 2 ;;
    --mds-args) MDS_ARGS=$2; shift 2 ;;
    --advertise) ADVERTISE=$2; shift 2 ;;
    --setup) SETUP_CMD=$2; shift 2 ;;
    --save) SAVE_DIR=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --suite) SUITE=1; shift ;;
    --only) ONLY=$2; shift 2 ;;
    --spec) SPEC=$2; shift 2 ;;
    --long) LONG=1; shift ;;
    --suite-timeout) SUITE_TIMEOUT=$2; shift 2 ;;
    -v) VERBOSE=1; shift ;;
    --inner) INNER=1; shift ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    --) shift; guest_params+=("$@"); break ;;
    *=*) guest_params+=("$1"); shift ;;
    -*) kc_die "unknown option $1" ;;
    *) positional+=("$1"); shift ;;
    esac
done
[ ${#positional[@]} -ge 1 ] && LOOM_DS=${positional[0]}
[ ${#positional[@]} -ge 2 ] && KERNEL=${positional[1]}
[ ${#positional[@]} -le 2 ] || kc_die "too many arguments"
[ -n "$LOOM_DS" ] || LOOM_DS=$REPO/build/apps/loom-ds/loom-ds
user_params=("${guest_params[@]}")  # the words after --; a suite gives them to every test

# ---- tests.list: the tests of the suite, and of --spec -------------------------------------
SPECS=${LOOM_KC_TESTS_LIST:-$HERE/tests.list}  # another list: for trying the harness itself
# spec_ids: the IDs of tests.list, in order.
spec_ids() { awk '!/^[[:space:]]*(#|$)/ { print $1 }' "$SPECS"; }
# spec_apply ID: take the test's line of tests.list: SERVER, TEST, DS_COUNT, TIMEOUT,
# EXPORTS_RULES and guest_params (its parameters, "short:" ones unless LONG=1, then the user's
# words, which win over a parameter of the same key). Returns 1 for an unknown ID.
spec_apply() {
    local w=() p key u skip
    read -r -a w < <(awk -v id="$1" '!/^[[:space:]]*#/ && $1 == id' "$SPECS") || true
    [ ${#w[@]} -ge 6 ] || { kc_log "no test '$1' in $SPECS"; return 1; }
    TEST=${w[1]} SERVER=${w[2]} DS_COUNT=${w[3]} TIMEOUT=${w[4]} EXPORTS_RULES=${w[5]}
    [ "$EXPORTS_RULES" != - ] || EXPORTS_RULES=
    guest_params=()
    for p in "${w[@]:6}"; do
        case "$p" in short:*) [ "$LONG" = 1 ] && continue; p=${p#short:} ;; esac
        key=${p%%=*} skip=0
        for u in "${user_params[@]}"; do [ "${u%%=*}" = "$key" ] && skip=1; done
        [ $skip = 1 ] || guest_params+=("$p")
    done
    guest_params+=("${user_params[@]}")
}
if [ "$SUITE" = 1 ]; then
    [ -z "$SPEC" ] || kc_die "--suite and --spec exclude each other"
    [ -z "$SAVE_DIR" ] || kc_die "--save is for one test, not a suite"
    [[ "$SUITE_TIMEOUT" =~ ^[0-9]+$ ]] && [ "$SUITE_TIMEOUT" -ge 60 ] || kc_die "--suite-timeout must be a number of seconds >= 60"
    if [ -n "$ONLY" ]; then
        for id in ${ONLY//,/ }; do spec_apply "$id" || kc_die "--only: no test '$id' in $SPECS"; done
    fi
    for u in "${user_params[@]}"; do
        # They reach each test through the host channel, not the kernel command line.
        [[ "$u" =~ ^[A-Za-z_][A-Za-z0-9_]*=[^[:space:]]*$ ]] ||
            kc_die "a suite takes KEY=VALUE words for the guest, no module parameters: '$u'"
    done
    SERVER=loom-mds TEST=nfs4-smoke  # the outer phase checks for loom-ds and loom-mds
elif [ -n "$SPEC" ]; then
    spec_apply "$SPEC" || kc_die "--spec: no test '$SPEC' in $SPECS"
fi
TEST=${TEST%.sh}
SCRIPT=$HERE/guest/$TEST.sh
[ -f "$SCRIPT" ] || kc_die "no guest script $SCRIPT"
[[ "$DS_COUNT" =~ ^[1-9][0-9]*$ ]] || kc_die "--ds-count must be a number >= 1"
[ -z "$SAVE_DIR" ] || SAVE_DIR=$(mkdir -p "$SAVE_DIR" && realpath "$SAVE_DIR")
export LOOM_VERBOSE=$VERBOSE
export KC_KERNEL=$KERNEL  # for kc_skip (LOOM_REQUIRE_KERNEL)

# ---- outer phase: everything that needs the network or the host as it is -------------
if [ $INNER = 0 ]; then
    case "$SERVER" in
    loom-ds)
        [ -x "$LOOM_DS" ] || kc_skip "no loom-ds binary at $LOOM_DS (build it, or pass its path / set LOOM_DS)"
        LOOM_DS=$(realpath "$LOOM_DS") ;;
    ganesha)
        kc_ensure_packages nfs-ganesha nfs-ganesha-vfs rpcbind || kc_skip "nfs-ganesha is not available" ;;
    loom-mds)
        # A loom-ds and a loom-mds (scripts/loom-cluster.sh) from the same build as LOOM_DS.
        [ -x "$LOOM_DS" ] || kc_skip "no loom-ds binary at $LOOM_DS"
        LOOM_DS=$(realpath "$LOOM_DS")
        mds_bin=$(dirname "$(dirname "$LOOM_DS")")/loom-mds/loom-mds
        [ -x "$mds_bin" ] || kc_skip "no loom-mds binary at $mds_bin (build it: ninja -C build loom-mds)" ;;
    cmd)
        [ -n "$SERVER_CMD" ] || kc_die "--server cmd needs --server-cmd or LOOM_KC_SERVER_CMD" ;;
    *) kc_die "unknown server '$SERVER' (loom-ds, loom-mds, ganesha, cmd)" ;;
    esac
    if ! command -v qemu-system-x86_64 >/dev/null; then
        kc_ensure_packages qemu-system-x86 || kc_skip "qemu-system-x86_64 is not available"
    fi
    # Fetch/build the guest now: the namespace below has no network.
    rc=0
    "$HERE/prepare.sh" "$KERNEL" || rc=$?
    [ $rc -eq 0 ] || exit $rc

    export LOOM_KC_SERVER=$SERVER LOOM_KC_SERVER_CMD=$SERVER_CMD LOOM_DS LOOM_KERNEL=$KERNEL \
        LOOM_KC_TEST=$TEST LOOM_GUEST_TIMEOUT=$TIMEOUT LOOM_KC_EXPORTS=$EXPORTS_RULES \
        LOOM_KC_DS=$DS_COUNT LOOM_KC_MDS_ARGS=$MDS_ARGS LOOM_KC_ADVERTISE=$ADVERTISE \
        LOOM_KC_SETUP=$SETUP_CMD LOOM_KC_SAVE=$SAVE_DIR LOOM_KC_SUITE=$SUITE LOOM_KC_ONLY=$ONLY \
        LOOM_KC_LONG=$LONG LOOM_KC_SUITE_TIMEOUT=$SUITE_TIMEOUT
    # (--spec is applied: the inner phase gets its values as plain options.)
    unset LOOM_KC_SPEC
    args=(--inner)
    [ $KEEP = 1 ] && args+=(--keep)
    args+=(-- "${guest_params[@]}")
    if [ "$NETNS" != no ] && unshare -n -m --propagation private true 2>/dev/null; then
        export LOOM_KC_IN_NETNS=1
        exec unshare -n -m --propagation private "$HERE/$(basename "$0")" "${args[@]}"
    fi
    [ "$NETNS" = yes ] && kc_die "--netns yes, but unshare -n -m does not work here"
    [ "$NETNS" = no ] || kc_log "no private network namespace: using the host's loopback"
    export LOOM_KC_IN_NETNS=0
    exec "$HERE/$(basename "$0")" "${args[@]}"
fi

# ---- inner phase: start the server, boot the guest, check the export -----------------
IN_NETNS=${LOOM_KC_IN_NETNS:-0}
if [ $IN_NETNS = 1 ]; then
    # Fresh namespace: bring up loopback (slirp connects to 127.0.0.1 in here).
    if command -v ip >/dev/null; then ip link set lo up; else ifconfig lo 127.0.0.1 up; fi
fi

t_start=$(kc_now)
# TOP: this run's directory. One test: W=TOP (export/, guest.log, server.log ...); a suite:
# TOP has the whole guest.log and the host channel, and each test gets W=TOP/NN-ID.
if [ "$SUITE" = 1 ]; then
    TOP=$(mktemp -d /tmp/loom-kc-suite.XXXXXX)
else
    TOP=$(mktemp -d /tmp/loom-kc-test.XXXXXX)
fi
W=$TOP
EXPORT=$W/export
server_pid=
rpcbind_pid=
guest_pid=
cleanup() {
    local rc=$?
    if [ -n "$guest_pid" ]; then kill "$guest_pid" 2>/dev/null || true; wait "$guest_pid" 2>/dev/null || true; fi
    stop_server
    if [ -n "$rpcbind_pid" ]; then kill "$rpcbind_pid" 2>/dev/null || true; wait "$rpcbind_pid" 2>/dev/null || true; fi
    if [ -n "$SAVE_DIR" ]; then
        cp "$W/guest.log" "$W/server.log" "$SAVE_DIR/" 2>/dev/null || true
        cp "$W/marks" "$EXPORT"/*.stats.json* "$SAVE_DIR/" 2>/dev/null || true
    fi
    if { [ $rc -eq 0 ] || [ $rc -eq 77 ]; } && [ $KEEP = 0 ]; then
        rm -rf "$TOP"
    else
        kc_log "kept $TOP (export/, guest.log, server.log$([ "$SUITE" = 1 ] && echo '; per test in NN-ID/' || true))"
    fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

trap 'exit 1' INT TERM

# stop_server: SIGTERM (then SIGKILL after 10 s); sets server_status to its exit status.
server_status=
stop_server() {
    [ -n "$server_pid" ] || return 0
    kill -TERM "$server_pid" 2>/dev/null || true
    local i
    for i in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$server_pid" 2>/dev/null; then
        kc_log "server did not exit after SIGTERM; killing it"
        kill -KILL "$server_pid" 2>/dev/null || true
    fi
    server_status=0
    wait "$server_pid" 2>/dev/null || server_status=$?
    server_pid=
}

# free_port: a TCP port nobody listens on (in a private namespace, any is free).
free_port() {
    local p i
    for i in $(seq 100); do
        p=$((20000 + RANDOM % 40000))
        ss -Hltn "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return 0; }
    done
    return 1
}

# wait_for LOGFILE PATTERN SECONDS: wait until PATTERN appears, or the server dies.
wait_for() {
    local i
    for i in $(seq $(($3 * 10))); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        kill -0 "$server_pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

start_ganesha() {
    local bind=""
    if [ -n "$rpcbind_pid" ]; then
        :   # started by an earlier attempt
    elif [ $IN_NETNS = 1 ]; then
        # Private /run: our own rpcbind socket, no clash with the host's rpcbind.
        mount -t tmpfs tmpfs /run
        mkdir -p /run/rpcbind
        rpcbind -f -w &
        rpcbind_pid=$!
    elif ! rpcinfo -p 127.0.0.1 >/dev/null 2>&1; then
        rpcbind -f -w &
        rpcbind_pid=$!
    else
        kc_log "using the host's running rpcbind (ganesha NFSv3 registers with it)"
    fi
    # Only bind 127.0.0.1 explicitly in the host namespace: in a namespace that has
    # only loopback, ganesha fails to resolve it (getaddrinfo AI_ADDRCONFIG).
    [ $IN_NETNS = 1 ] || bind="Bind_Addr = 127.0.0.1;"
    mkdir -p "$W/recovery"
    cat >"$W/ganesha.conf" <<EOF
NFS_CORE_PARAM {
    NFS_Port = $PORT;
    # ganesha cannot share one port between NFS and MOUNT: it registers both, but
    # answers MOUNT calls on the NFS socket with PROG_UNAVAIL.
    MNT_Port = $MOUNT_PORT;
    $bind
    Protocols = 3, 4;
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Enable_UDP = false;
    Mount_Path_Pseudo = true;  # NFSv3 clients mount "/" as NFSv4 ones do
    Plugins_Dir = "/usr/lib/x86_64-linux-gnu/ganesha";
}
NFSV4 { Graceless = true; RecoveryRoot = "$W/recovery"; }
EXPORT {
    Export_Id = 1;
    Path = "$EXPORT";
    Pseudo = "/";
    Protocols = 3, 4;
    Transports = TCP;
    Access_Type = RW;
    Squash = No_Root_Squash;
    SecType = sys;
    FSAL { Name = VFS; }
}
LOG { Default_Log_Level = ${LOOM_KC_GANESHA_LOG_LEVEL:-EVENT}; }
EOF
    sleep 0.3
    ganesha.nfsd -F -f "$W/ganesha.conf" -p "$W/ganesha.pid" -L "$W/server.log" >>"$W/server.log" 2>&1 &
    server_pid=$!
    wait_for "$W/server.log" "NFS SERVER INITIALIZED" 60
}

start_cmd_server() {
    local cmd=$1
    cmd=${cmd//@ROOT@/$EXPORT}
    cmd=${cmd//@PORT@/$PORT}
    kc_log "starting: $cmd"
    bash -c "exec $cmd" >"$W/server.log" 2>&1 &
    server_pid=$!
    wait_for "$W/server.log" ready 30
}

# ---- one test's server ---------------------------------------------------------------------
# test_start: start SERVER (with EXPORTS_RULES, DS_COUNT, MDS_ARGS, SETUP_CMD) for TEST in the
# directory W, and set PORT, MOUNT_PORT, EXPORT and defaults (the guest's variables). Returns
# 0, 1 (the server did not start: FAIL) or 77 (this build cannot run the test: SKIP_WHY).
given() { printf '%s\n' "${guest_params[@]}" | grep -q "^$1="; }
test_start() {
    EXPORT=$W/export
    mkdir -p "$EXPORT"
    rm -f "$W/exports.later"
    host_actions=0 mds_restart_requests=0 untagged_failures=0 restarts=0 SKIP_WHY=
    # Export rules (issue 9): loom-ds and loom-mds squash root unless told otherwise; the guest
    # tests act as root, so by default they get "*(rw,no_root_squash)". Older builds have no
    # rules (everyone is trusted), which the default matches.
    exports_opt=
    root_squashed=0
    if [ "$SERVER" = loom-ds ] || [ "$SERVER" = loom-mds ]; then
        rules=${EXPORTS_RULES:-'*(rw,no_root_squash)'}
        printf '%s\n' "$rules" >"$W/exports"
        case "$SERVER" in
        loom-ds) grep -q -- '--exports' <<<"$("$LOOM_DS" --help 2>&1 || true)" && exports_opt="--exports \"$W/exports\"" ;;
        loom-mds) grep -q -- '--mds-exports)' "$REPO/scripts/loom-cluster.sh" && exports_opt="--mds-exports \"$W/exports\"" ;;
        esac
        if [ -z "$exports_opt" ] && [ -n "$EXPORTS_RULES" ]; then
            SKIP_WHY="$SERVER in this build takes no --exports (export rules, issue 9 item 3): cannot test '$EXPORTS_RULES'"
            return 77
        fi
        case "$rules" in
        *no_root_squash*) ;;
        *) root_squashed=1
           if [ "$SERVER" = loom-ds ]; then
               chmod 1777 "$EXPORT"  # somewhere for a squashed root to write
           else
               # loom-mds: the namespace root is root's 0755. Start without squashing; the guest
               # makes a directory to work in and then asks for "apply-exports" (these rules,
               # loom-mds restarted with them).
               printf '%s\n' "$rules" >"$W/exports.later"
               printf '%s\n' '*(rw,no_root_squash)' >"$W/exports"
           fi ;;
        esac
        [ -n "$exports_opt" ] && kc_log "export rules: $rules"
    fi

    # loom-mds: the cluster's shape (data servers, advertised host, extra loom-mds arguments).
    cluster_opts=
    CLI=$(dirname "$(dirname "$LOOM_DS")")/loom/loom
    if [ "$SERVER" = loom-mds ]; then
        cluster_opts="--ds $DS_COUNT"
        # (Not "--help | grep -q": with pipefail, grep's early exit can fail the pipeline.)
        mds_help=$("$(dirname "$(dirname "$LOOM_DS")")/loom-mds/loom-mds" --help 2>&1 || true)
        if [ "$ADVERTISE" != none ] && [ -n "$ADVERTISE" ] && grep -q -- '--advertise' <<<"$mds_help"; then
            cluster_opts="$cluster_opts --advertise $(printf '%q' "$ADVERTISE")"
        fi
        [ -n "$MDS_ARGS" ] && cluster_opts="$cluster_opts --mds-args $(printf '%q' "$MDS_ARGS")"
        kc_log "cluster: $cluster_opts"
    fi

    started=0
    MOUNT_PORT=
    for attempt in 1 2 3; do
        PORT=$(free_port) || kc_die "no free port"
        : >"$W/server.log"
        case "$SERVER" in
        loom-ds) start_cmd_server "\"$LOOM_DS\" --root \"@ROOT@\" --listen 127.0.0.1:@PORT@ $exports_opt" && started=1 ;;
        loom-mds) start_cmd_server "\"$REPO/scripts/loom-cluster.sh\" --dir \"@ROOT@\" --port @PORT@ --lease 10 --grace 5 --bin \"$(dirname "$(dirname "$LOOM_DS")")\" $exports_opt $cluster_opts" && started=1 ;;
        cmd) start_cmd_server "$SERVER_CMD" && started=1 ;;
        ganesha)
            MOUNT_PORT=$(free_port) || kc_die "no free port"
            [ "$MOUNT_PORT" != "$PORT" ] || MOUNT_PORT=$((PORT + 1))
            start_ganesha && started=1 ;;
        esac
        [ $started = 1 ] && break
        kc_log "server did not come up on port $PORT (attempt $attempt); its log:"
        tail -n 20 "$W/server.log" >&2 || true
        stop_server
    done
    [ $started = 1 ] || { kc_log "FAIL: could not start $SERVER"; return 1; }
    # A server that reports its port in the ready line ("... port N ...") wins: it may
    # have been told port 0 by a custom command.
    ready_port=$(grep -m1 ready "$W/server.log" | sed -n 's/.*[ :]port \([0-9][0-9]*\).*/\1/p' || true)
    if [ "$SERVER" != ganesha ] && [ -n "$ready_port" ] && [ "$ready_port" != "$PORT" ]; then
        kc_log "server reports port $ready_port (asked for $PORT)"
        PORT=$ready_port
    fi
    kc_log "$SERVER is serving $EXPORT on 127.0.0.1:$PORT${MOUNT_PORT:+ (MOUNT on $MOUNT_PORT)} ($(kc_elapsed "$t_start")s)"

    defaults=()
    [ -n "$MOUNT_PORT" ] && defaults+=(MOUNT_PORT="$MOUNT_PORT")
    given SERVER_KIND || defaults+=(SERVER_KIND="$SERVER")  # e.g. posix-perms picks its NFS version
    given ROOT_SQUASHED || defaults+=(ROOT_SQUASHED="$root_squashed")
    [ "$SERVER" = loom-mds ] && ! given DS_COUNT && defaults+=(DS_COUNT="$DS_COUNT")
    [ -f "$W/exports.later" ] && defaults+=(EXPORTS_STAGED=1)
    if [ "$SERVER" = loom-mds ] && [ "$TEST" = nfs4-mds ] && ! given MDS_RESTART; then
        defaults+=(MDS_RESTART=1)  # crash + restart loom-mds under the guest's mount
    fi
    if [ "$SERVER" = ganesha ] && [ "$KERNEL" = 7 ]; then
        # Two nfs-ganesha 4.3 bugs that the 7.x client trips over (not Loom's concern):
        # - it answers GET_DIR_DELEGATION with NFS4ERR_OP_ILLEGAL instead of
        #   NFS4ERR_NOTSUPP; the client then fails GETATTR with EREMOTEIO.
        # - its READ_PLUS replies are wrong; the client (READ_PLUS on 4.2) gets EIO or
        #   wrong data.
        if ! given nfsv4.directory_delegations; then
            kc_log "ganesha + 7.x kernel: directory delegations off (ganesha answers GET_DIR_DELEGATION with OP_ILLEGAL)"
            defaults+=(nfsv4.directory_delegations=0)
        fi
        if [ "$TEST" = nfs4-smoke ] && ! given NFS4_VERSIONS; then
            kc_log "ganesha + 7.x kernel: testing NFSv4.1 only (ganesha's READ_PLUS is broken)"
            defaults+=(NFS4_VERSIONS=4.1)
        fi
    fi

    # ---- setup hook (--setup): a host command once the server is up, before the guest boots ----
    if [ -n "$SETUP_CMD" ]; then
        cmd=${SETUP_CMD//@PORT@/$PORT}
        cmd=${cmd//@MDS@/127.0.0.1:$PORT}
        cmd=${cmd//@DIR@/$EXPORT}
        cmd=${cmd//@LOOM@/$CLI}
        kc_log "setup: $cmd"
        if ! LOOM_MDS=127.0.0.1:$PORT bash -c "$cmd" >"$W/setup.log" 2>&1; then
            sed 's/^/  setup: /' "$W/setup.log" >&2
            kc_log "FAIL: the setup command failed: $cmd"
            return 1
        fi
        sed 's/^/  setup: /' "$W/setup.log" >&2
    fi
    return 0
}

# ---- host actions ------------------------------------------------------------------------
# A guest line "LOOM-HOST-ACTION: NAME [ARGS...] [@TAG]" asks for something on this side (see
# the header). Tagged requests are answered on the guest's second serial port (run-guest.sh
# -c): "LOOM-HOST-OUT TAG LINE"... then "LOOM-HOST-REPLY TAG STATUS".

cluster_ctl() { "$REPO/scripts/loom-cluster.sh" --dir "$EXPORT" --ctl "$@"; }
run_admin() {
    [ -x "$CLI" ] || { echo "no loom CLI at $CLI (ninja loom)"; return 127; }
    LOOM_MDS=127.0.0.1:$PORT "$CLI" --mds "127.0.0.1:$PORT" admin "$@"
}
# cpu_of PID: utime+stime of a process (all threads) in seconds, or "-" when it is gone.
cpu_of() {
    awk -v t="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f\n", ($12 + $13) / t }' "/proc/$1/stat" 2>/dev/null || echo -
}
act_mark() {
    local line="$1 $(date +%s.%N)" name pid _
    if [ "$SERVER" = loom-mds ]; then
        while read -r name pid _; do
            line="$line $name=$( [ "$pid" = - ] && echo - || cpu_of "$pid")"
        done < <(cluster_ctl status)
    else
        line="$line server=$(cpu_of "$server_pid")"
    fi
    echo "$line" >>"$W/marks"
    echo "$line"
}
# act_kill_ds I | holding:PATH [except:I]
act_kill_ds() {
    local which=${1:-} except=${2:-} idx= layout name pid port
    except=${except#except:}
    if [[ "$which" == holding:* ]]; then
        layout=$(run_admin layout "${which#holding:}" 2>&1) || { echo "$layout"; echo "admin layout ${which#holding:} failed"; return 1; }
        echo "$layout"
        # The first running data server whose port the layout names (HOST:PORT, "port N", or
        # a universal address h1.h2.h3.h4.p1.p2).
        while read -r name pid port; do
            [ "$name" = mds ] || [ "$pid" = - ] || [ "$name" = "ds$except" ] && continue
            if grep -qE "(:|port |port=)$port([^0-9]|\$)" <<<"$layout" ||
                grep -qE "\.$((port / 256))\.$((port % 256))([^0-9]|\$)" <<<"$layout"; then
                idx=${name#ds}; break
            fi
        done < <(cluster_ctl status)
        [ -n "$idx" ] || { echo "no running data server's port appears in the layout of ${which#holding:}"; return 1; }
    else
        idx=$which
    fi
    cluster_ctl kill-ds "$idx"
}
# act_data_files INO: inode INO's data files on every data server ("dsI port P NAME SIZE").
act_data_files() {
    local ino=${1:-} name pid port f
    [[ "$ino" =~ ^[0-9]+$ ]] || { echo "usage: data-files INO"; return 2; }
    declare -F hc_data_files >/dev/null || . "$HERE/lib/hostcheck.sh"
    HC_DIR=$EXPORT HC_NDS=$DS_COUNT
    while read -r name pid port; do
        [[ "$name" == ds[0-9]* ]] || continue
        for f in $(hc_data_files "$ino" "${name#ds}"); do
            echo "$name port $port $(basename "$f") $(stat -c %s "$f" 2>/dev/null || echo gone)"
        done
    done < <(cluster_ctl status)
}
# act_break_data_file INO remove|replace: take the data files of INO away from under their
# handles (a bad data-server handle, issue 11 "Errors").
act_break_data_file() {
    local ino=${1:-} how=${2:-} i f n=0 tmp=$EXPORT/.break-data-file.tmp
    [[ "$ino" =~ ^[0-9]+$ ]] && [[ "$how" =~ ^(remove|replace)$ ]] || { echo "usage: break-data-file INO remove|replace"; return 2; }
    declare -F hc_data_files >/dev/null || . "$HERE/lib/hostcheck.sh"
    HC_DIR=$EXPORT HC_NDS=$DS_COUNT
    for i in $(seq 0 $((DS_COUNT - 1))); do
        for f in $(hc_data_files "$ino" "$i"); do
            if [ "$how" = remove ]; then
                rm -f "$f" || return 1
            else
                cp -p "$f" "$tmp" && mv -f "$tmp" "$f" || return 1
            fi
            echo "ds$i: ${how}d $f ($(stat -c 'inode %i, %s bytes, owner %u:%g' "$f" 2>/dev/null || echo gone))"
            n=$((n + 1))
        done
    done
    [ $n -gt 0 ] || { echo "no data file of inode $ino on any data server"; return 1; }
}
# act_counter METRIC [KEY [FIELD]]: a HOSTCHECK metric's value now (the servers rewrite their
# counter files every second: wait for the next).
act_counter() {
    declare -F hc_metric >/dev/null || . "$HERE/lib/hostcheck.sh"
    HC_DIR=$EXPORT HC_NDS=$DS_COUNT
    sleep 1.2
    hc_metric "$@" || { echo "unknown metric '$*'"; return 2; }
}
# reply TAG STATUS FILE: answer a tagged request on the back channel.
reply() {
    { sed "s/^/LOOM-HOST-OUT $1 /" "$3"; echo "LOOM-HOST-REPLY $1 $2"; } >&8
}
host_action() {
    local line=$1 tag= name args st=0 out
    if [[ "$line" =~ ^(.*[^[:space:]])[[:space:]]+@([A-Za-z0-9_.-]+)$ ]]; then
        line=${BASH_REMATCH[1]} tag=${BASH_REMATCH[2]}
    elif [[ "$line" =~ ^@([A-Za-z0-9_.-]+)$ ]]; then
        line= tag=${BASH_REMATCH[1]}
    fi
    read -r name args <<<"$line"
    if [ "$SUITE" = 1 ] && [ -z "$suite_cur" ]; then
        # Between two tests of a suite there is no server to act on.
        kc_log "guest asks for host action '$line' while no test runs: refused"
        [ -z "$tag" ] || { echo "no test is running" >"$TOP/refused.out"; reply "$tag" 1 "$TOP/refused.out"; }
        return 0
    fi
    host_actions=$((host_actions + 1))
    out=$W/action.$host_actions.out
    kc_log "guest asks for host action #$host_actions: $line${tag:+ (@$tag)}"
    {
        case "$SERVER:$name" in
        loom-mds:restart-mds)
            mds_restart_requests=$((mds_restart_requests + 1))
            echo "crashing loom-mds (SIGUSR1 to loom-cluster.sh)"
            kill -USR1 "$server_pid" 2>/dev/null || { echo "could not signal the cluster script (pid $server_pid)"; false; } ;;
        loom-mds:apply-exports)
            # The export rules under test (--exports), loaded by a restarted loom-mds.
            if [ -f "$W/exports.later" ]; then
                mds_restart_requests=$((mds_restart_requests + 1))
                cp "$W/exports.later" "$W/exports"
                echo "loom-mds restarts with $(cat "$W/exports")"
                kill -USR1 "$server_pid" 2>/dev/null || { echo "could not signal the cluster script (pid $server_pid)"; false; }
            else
                echo "apply-exports, but no staged rules: ignored"
            fi ;;
        loom-mds:kill-ds) act_kill_ds $args ;;
        loom-mds:start-ds) cluster_ctl start-ds $args ;;
        loom-mds:admin) run_admin $args ;;
        loom-mds:data-files) act_data_files $args ;;
        loom-mds:break-data-file) act_break_data_file $args ;;
        loom-mds:counter) act_counter $args ;;
        *:mark) act_mark $args ;;
        *) echo "host action '$name' is not supported with server $SERVER"; false ;;
        esac
    } >"$out" 2>&1 || st=$?
    sed "s/^/  #$host_actions: /" "$out" >&2
    kc_log "host action #$host_actions ($name): status $st"
    if [ -n "$tag" ]; then
        reply "$tag" "$st" "$out"
    elif [ $st -ne 0 ]; then
        untagged_failures=$((untagged_failures + 1))
    fi
}

# ---- host-side attribute check: "HOSTSTAT FMT WANT PATH" lines of the guest -------------
# loom-ds: `stat -c FMT` of the export's file (a symlink's own attributes). loom-mds: the
# namespace is in RocksDB, so the loom CLI's stat is asked (%a %u %g %s %Y only).
hoststat_checks() {
    local fmt want path got n=0 bad=0 cli= line mode owner group size mtime
    if [ "$SERVER" = loom-mds ]; then
        cli=$(dirname "$(dirname "$LOOM_DS")")/loom/loom
        [ -x "$cli" ] || { kc_log "host check: no loom CLI at $cli (ninja loom): HOSTSTAT lines not checked"; return 0; }
    elif [ "$SERVER" != loom-ds ] && [ "$SERVER" != ganesha ]; then
        return 0
    fi
    while read -r _ fmt want path; do
        if [ -n "$cli" ]; then
            line=$("$cli" --mds "127.0.0.1:$PORT" stat "$path" 2>&1) || { got="(loom stat: $line)"; line=; }
            if [ -n "$line" ]; then
                read -r mode owner group size mtime < <(sed -n 's/.* mode \([0-7]*\) .* owner \([^ ]*\) group \([^ ]*\) size \([0-9]*\) mtime \([0-9]*\).*/\1 \2 \3 \4 \5/p' <<<"$line")
                got=${fmt//%a/$(printf '%o' "$((8#${mode:-0}))")}
                got=${got//%u/$owner}; got=${got//%g/$group}; got=${got//%s/$size}; got=${got//%Y/$mtime}
                [[ "$got" == *%* ]] && continue  # an attribute the CLI does not show
            fi
        else
            got=$(stat -c "$fmt" "$EXPORT/$path" 2>&1 || true)
        fi
        n=$((n + 1))
        if [ "$got" != "$want" ]; then
            kc_log "host check: $path: $fmt is '$got', want '$want'"
            bad=$((bad + 1))
        fi
    done < <(tr -d '\r' <"$W/guest.log" | grep -a '^HOSTSTAT ')
    [ $n -eq 0 ] && return 0
    kc_log "host check: $((n - bad)) of $n HOSTSTAT attributes as the guest expects ($SERVER)"
    [ $bad -eq 0 ]
}

# ---- after the guest: one test's checks ------------------------------------------------------
# test_check GUEST_STATUS: the host-side checks of the test whose guest output is W/guest.log
# (restart requests, untagged host actions, HOSTCHECK, HOSTSTAT, the server still alive, SUM /
# DIR lines against the export); stops the server. Returns 0 (PASS), 1 (FAIL) or 77 (skip).
test_check() {
    local rc=$1 sums dirs bad ds_sums tag a b hc_bad st
    if [ "$mds_restart_requests" -gt 0 ] && [ "$SERVER" = loom-mds ]; then
        # SIGUSR1 is handled asynchronously by loom-cluster.sh: give the last one a moment.
        for _ in $(seq 50); do
            restarts=$(grep -c '^loom-cluster: restarted loom-mds' "$W/server.log" || true)
            [ "$restarts" -ge "$mds_restart_requests" ] && break
            sleep 0.2
        done
        kc_log "loom-mds restart requests: $mds_restart_requests; restarts: $restarts"
        if [ "$restarts" -ne "$mds_restart_requests" ] && [ $rc -eq 0 ]; then
            kc_log "FAIL: the guest asked for $mds_restart_requests loom-mds restarts, $restarts happened"
            rc=1
        fi
    fi
    if [ "$untagged_failures" -gt 0 ] && [ $rc -eq 0 ]; then
        kc_log "FAIL: $untagged_failures host action(s) without a tag failed (see above)"
        rc=1
    fi
    # ---- HOSTCHECK lines (loom-mds): counters and data files, see lib/hostcheck.sh -----------
    if [ "$SERVER" = loom-mds ] && grep -aq '^HOSTCHECK ' "$W/guest.log"; then
        sleep 1.2  # the servers write their counters every second
        . "$HERE/lib/hostcheck.sh"
        hc_bad=0
        hostcheck_run "$W/guest.log" "$EXPORT" "$DS_COUNT" || hc_bad=$?
        if [ "$hc_bad" -ne 0 ] && [ $rc -eq 0 ]; then
            kc_log "FAIL: $hc_bad HOSTCHECK line(s) do not hold"
            rc=1
        fi
    fi
    if ! hoststat_checks && [ $rc -eq 0 ]; then
        kc_log "FAIL: the server's files do not have the attributes the guest saw"
        rc=1
    fi

    if ! kill -0 "$server_pid" 2>/dev/null; then
        st=0; wait "$server_pid" 2>/dev/null || st=$?
        server_pid=
        kc_log "the server exited during the test (status $st)"
        [ $rc -eq 0 ] && rc=1
    fi
    if [ $rc -ne 0 ]; then
        kc_log "server log tail ($W/server.log):"
        tail -n 15 "$W/server.log" >&2 || true
        stop_server
        [ $rc -eq 77 ] && return 77
        kc_log "FAIL: guest test $TEST against $SERVER on kernel $KERNEL"
        return 1
    fi

    # ---- host-side check: the guest's files are in the export, byte for byte ----------
    sums=0 dirs=0 bad=0
    # With loom-mds the export is not a tree: the bytes live in data-server files named by inode.
    # Then every file the guest wrote must exist, byte for byte, as a data file on a loom-ds.
    ds_sums=
    if [ "$SERVER" = loom-mds ]; then
        # (A data file may vanish under find: loom-mds removes deleted files' data in the background.)
        ds_sums=$(find "$EXPORT"/ds*/loom -type f -exec sha256sum {} + 2>/dev/null | cut -d' ' -f1 | sort -u || true)
    fi
    while read -r tag a b; do
        if [ "$SERVER" = loom-mds ]; then
            case "$tag" in
            SUM)
                sums=$((sums + 1))
                [ "$a" = e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 ] || grep -qx "$a" <<<"$ds_sums" ||
                    { kc_log "host check: no data file holds $b"; bad=$((bad + 1)); } ;;
            esac
            continue
        fi
        case "$tag" in
        SUM)
            sums=$((sums + 1))
            if [ ! -f "$EXPORT/$b" ]; then
                kc_log "host check: $b is missing from the export"; bad=$((bad + 1))
            elif [ "$(sha256sum <"$EXPORT/$b" | cut -d' ' -f1)" != "$a" ]; then
                kc_log "host check: $b differs from what the guest wrote"; bad=$((bad + 1))
            fi ;;
        DIR)
            dirs=$((dirs + 1))
            [ -d "$EXPORT/$a" ] || { kc_log "host check: directory $a is missing from the export"; bad=$((bad + 1)); } ;;
        esac
    done < <(tr -d '\r' <"$W/guest.log" | grep -aE '^(SUM [0-9a-f]{64} |DIR )')
    if [ $sums -eq 0 ]; then
        kc_log "FAIL: the guest printed no SUM lines to check"
        stop_server
        return 1
    fi
    if [ $bad -ne 0 ]; then
        kc_log "FAIL: $bad of $((sums + dirs)) files/directories in $EXPORT do not match the guest"
        stop_server
        return 1
    fi
    kc_log "host check: $sums files and $dirs directories in the export match the guest"
    stop_server
    if [ "$SERVER" = loom-ds ] && [ "$server_status" != 0 ]; then
        kc_log "server log tail ($W/server.log):"
        tail -n 15 "$W/server.log" >&2 || true
        kc_log "FAIL: loom-ds exited with status $server_status after SIGTERM"
        return 1
    fi
    kc_log "PASS: $TEST, kernel $KERNEL, server $SERVER ($(kc_elapsed "$test_t0")s)"
    return 0
}

# ---- watching the guest ------------------------------------------------------------------
# poll_actions LOG: dispatch the LOOM-HOST-ACTION lines that LOG got since the last call
# (complete lines only). They are read first and dispatched after, so that an action never
# reads the rest of the list as its stdin.
log_lines=0
poll_actions() {
    local n line acts=()
    n=$(wc -l <"$1")
    [ "$n" -gt "$log_lines" ] || return 0
    while IFS= read -r line; do
        line=${line%$'\r'}
        [[ "$line" == "LOOM-HOST-ACTION: "* ]] && acts+=("$(sed 's/^LOOM-HOST-ACTION: *//' <<<"$line")")
    done < <(sed -n "$((log_lines + 1)),${n}p;${n}q" "$1")
    log_lines=$n
    for line in "${acts[@]}"; do dispatch "$line"; done
}

# ---- one test in a boot of its own ----------------------------------------------------------
single_main() {
    local rc=0 st=0
    test_t0=$t_start
    test_start || st=$?
    if [ $st = 77 ]; then kc_skip "$SKIP_WHY"; fi
    [ $st = 0 ] || exit 1
    CHAN=$W/hostch
    mkfifo "$CHAN.in" "$CHAN.out"
    exec 8<>"$CHAN.in"   # read-write: writing never blocks on open, even after qemu is gone
    dispatch() { host_action "$1"; }
    : >"$W/guest.log"
    "$HERE/run-guest.sh" -k "$KERNEL" -s "$SCRIPT" -t "$TIMEOUT" -l "$W/guest.log" -c "$CHAN" \
        SERVER_PORT="$PORT" "${defaults[@]}" "${guest_params[@]}" &
    guest_pid=$!
    while kill -0 "$guest_pid" 2>/dev/null; do
        if ! kill -0 "$server_pid" 2>/dev/null; then
            # A hard NFS mount would wait for it until the guest's watchdog fires: stop now.
            kc_log "the server exited during the test; stopping the guest"
            kill -TERM "$guest_pid" 2>/dev/null || true
            break
        fi
        poll_actions "$W/guest.log"
        sleep 0.2
    done
    wait "$guest_pid" || rc=$?
    guest_pid=
    st=0
    test_check "$rc" || st=$?
    exit $st
}

# ---- a suite: every test in one boot ----------------------------------------------------------
# The guest (lib/guest-suite.sh) asks for "start-test ID" and "end-test ID" around each test;
# between them the test runs exactly as in a boot of its own, host actions included.
suite_cur=        # the test that runs now (between start-test and end-test)
suite_ids=()      # the suite's tests, in order
declare -A suite_result=() suite_why=() suite_secs=() suite_dir=()

# suite_verdict ID STATUS WHY: record and print a test's verdict; on a failure, the test's guest
# output (its part of the console) and the server log's tail, so that ctest shows why.
suite_verdict() {
    local id=$1 st=$2 why=$3 res i=0 x
    for x in "${suite_ids[@]}"; do i=$((i + 1)); [ "$x" = "$id" ] && break; done
    case $st in 0) res=PASS ;; 77) res=SKIP ;; *) res=FAIL ;; esac
    suite_result[$id]=$res suite_why[$id]=$why suite_secs[$id]=$(kc_elapsed "$test_t0")
    if [ $res = FAIL ]; then
        if [ -s "$W/guest.log" ]; then
            echo "---- $id: last 80 lines of its guest output ($W/guest.log) ----" >&2
            tail -n 80 "$W/guest.log" >&2
            echo "---- end of $id's guest output ----" >&2
        fi
    fi
    kc_log "==== [$i/${#suite_ids[@]}] $id: $res${why:+: $why} (${suite_secs[$id]}s) ===="
}

# suite_start ID TAG: start the test's server, answer with its script, timeout and variables.
suite_start() {
    local id=$1 tag=$2 st=0 i=0 x kv
    [ -z "$suite_cur" ] || suite_end "$suite_cur" "" "the guest went on to $id before ending it"
    for x in "${suite_ids[@]}"; do i=$((i + 1)); [ "$x" = "$id" ] && break; done
    W=$TOP/$(printf '%02d' "$i")-$id
    mkdir -p "$W"
    suite_dir[$id]=$W
    test_t0=$(kc_now)
    : >"$W/start.out"
    if ! spec_apply "$id" 2>>"$W/start.out"; then
        suite_verdict "$id" 1 "not in tests.list"
        reply "$tag" 1 "$W/start.out"
        return 0
    fi
    SCRIPT=$HERE/guest/$TEST.sh
    kc_log "==== [$i/${#suite_ids[@]}] $id: guest/$TEST.sh against $SERVER$([ "$SERVER" = loom-mds ] && echo " with $DS_COUNT data server(s)" || true)${EXPORTS_RULES:+, exports $EXPORTS_RULES}${guest_params[*]:+, ${guest_params[*]}} ===="
    test_start || st=$?
    if [ $st -ne 0 ]; then
        stop_server
        if [ $st = 77 ]; then
            # As kc_skip: a skip of a kernel that LOOM_REQUIRE_KERNEL names is a failure.
            case " ${LOOM_REQUIRE_KERNEL:-} " in *" $KERNEL "*) st=1 SKIP_WHY="$SKIP_WHY (required kernel $KERNEL)" ;; esac
            [ $st = 77 ] && echo "SKIP $SKIP_WHY" >"$W/start.out"
        fi
        suite_verdict "$id" "$st" "${SKIP_WHY:-the server did not start}"
        reply "$tag" "$st" "$W/start.out"
        return 0
    fi
    suite_cur=$id
    {
        echo "SCRIPT $TEST"
        echo "TIMEOUT $TIMEOUT"
        for kv in SERVER_PORT="$PORT" "${defaults[@]}" "${guest_params[@]}"; do echo "ENV $kv"; done
    } >"$W/start.out"
    reply "$tag" 0 "$W/start.out"
}

# suite_end ID TAG [WHY]: the test's part of the console becomes W/guest.log; its checks run
# (test_check) and its server stops. WHY: the guest never ended the test (it died, or moved on).
suite_end() {
    local id=$1 tag=$2 why=${3:-} grc=0 st=0 end
    if [ "$id" != "$suite_cur" ]; then
        kc_log "guest ends test '$id', but '${suite_cur:-none}' runs"
        [ -z "$tag" ] || { echo "not the running test" >"$TOP/refused.out"; reply "$tag" 1 "$TOP/refused.out"; }
        return 0
    fi
    tr -d '\r' <"$TOP/guest.log" | awk -v id="$id" '
        $0 == "LOOM-SUITE-BEGIN " id { on = 1 }
        on { print }
        on && index($0, "LOOM-SUITE-END " id " ") == 1 { exit }' >"$W/guest.log"
    end=$(grep -a "^LOOM-SUITE-END $id " "$W/guest.log" | tail -n 1 || true)
    if [ -z "$why" ] && [ "$end" != "LOOM-SUITE-END $id PASS" ]; then
        why=${end#LOOM-SUITE-END $id FAIL }
        [ -n "$why" ] || why="no result from the guest"
    fi
    [ -z "$why" ] || { grc=1; kc_log "FAIL: $id in the guest: $why"; }
    test_check "$grc" >"$W/check.out" 2>&1 || st=$?
    cat "$W/check.out" >&2
    stop_server
    if [ $st -ne 0 ] && [ -z "$why" ]; then
        why=$(grep -a 'FAIL' "$W/check.out" | tail -n 1 | sed 's/^[^:]*: //' || true)
        [ -n "$why" ] || why="host checks failed"
    fi
    suite_cur=
    suite_verdict "$id" "$st" "$why"
    [ -z "$tag" ] || { echo "${suite_result[$id]}${why:+: $why}" >"$W/end.out"; reply "$tag" "$st" "$W/end.out"; }
}

suite_main() {
    local rc=0 id scripts=() f failed=0 skipped=0 passed=0
    if [ -n "$ONLY" ]; then
        read -r -a suite_ids <<<"${ONLY//,/ }"
    else
        mapfile -t suite_ids < <(spec_ids)
    fi
    [ ${#suite_ids[@]} -gt 0 ] || kc_die "no tests in $SPECS"
    for id in "${suite_ids[@]}"; do
        spec_apply "$id" || kc_die "no test '$id' in $SPECS"
        f=$HERE/guest/$TEST.sh
        [[ " ${scripts[*]} " == *" $f "* ]] || scripts+=("$f")
    done
    kc_log "suite, kernel $KERNEL: ${#suite_ids[@]} tests in one boot: ${suite_ids[*]}$([ "$LONG" = 1 ] && echo " (long: full-size transfers)" || true)"
    CHAN=$TOP/hostch
    mkfifo "$CHAN.in" "$CHAN.out"
    exec 8<>"$CHAN.in"
    dispatch() {
        local line=$1 tag= name args
        if [[ "$line" =~ ^(.*[^[:space:]])[[:space:]]+@([A-Za-z0-9_.-]+)$ ]]; then
            line=${BASH_REMATCH[1]} tag=${BASH_REMATCH[2]}
        fi
        read -r name args <<<"$line"
        case "$name" in
        start-test) suite_start "$args" "$tag" ;;
        end-test) suite_end "$args" "$tag" ;;
        *) host_action "$1" ;;
        esac
    }
    : >"$TOP/guest.log"
    local adds=()
    for f in "${scripts[@]}"; do adds+=(-a "$f"); done
    "$HERE/run-guest.sh" -k "$KERNEL" -s "$HERE/lib/guest-suite.sh" "${adds[@]}" -t "$SUITE_TIMEOUT" \
        -l "$TOP/guest.log" -c "$CHAN" SUITE_TESTS="$(IFS=,; echo "${suite_ids[*]}")" &
    guest_pid=$!
    while kill -0 "$guest_pid" 2>/dev/null; do
        if [ -n "$suite_cur" ] && ! kill -0 "$server_pid" 2>/dev/null; then
            # The guest's hard mounts would hang until the watchdog: this test fails, and the
            # boot ends here (the tests after it are not run).
            kc_log "the server of $suite_cur exited during the test; stopping the guest"
            kill -TERM "$guest_pid" 2>/dev/null || true
            break
        fi
        poll_actions "$TOP/guest.log"
        sleep 0.2
    done
    wait "$guest_pid" || rc=$?
    guest_pid=
    poll_actions "$TOP/guest.log"  # what came after the last look
    [ -z "$suite_cur" ] || suite_end "$suite_cur" "" "the guest ended during the test (run-guest.sh status $rc)"
    [ $rc -ne 77 ] || exit 77
    echo "---- suite, kernel $KERNEL ($(kc_elapsed "$t_start")s) ----" >&2
    for id in "${suite_ids[@]}"; do
        case "${suite_result[$id]:-}" in
        PASS) passed=$((passed + 1)) ;;
        SKIP) skipped=$((skipped + 1)) ;;
        FAIL) failed=$((failed + 1)) ;;
        *) failed=$((failed + 1)) suite_result[$id]="NOT RUN" suite_secs[$id]=- ;;
        esac
        printf '  %-8s %-24s %7ss  %s\n' "${suite_result[$id]}" "$id" "${suite_secs[$id]}" "${suite_why[$id]:-}" >&2
    done
    echo "---- $passed passed, $failed failed or not run, $skipped skipped ----" >&2
    if [ $failed -eq 0 ] && [ $rc -ne 0 ]; then
        kc_log "FAIL: every test passed, but the guest did not (status $rc; log $TOP/guest.log)"
        tail -n 40 "$TOP/guest.log" >&2
        exit 1
    fi
    if [ $failed -gt 0 ]; then
        kc_log "FAIL: suite on kernel $KERNEL: $failed of ${#suite_ids[@]} tests failed or did not run"
        exit 1
    fi
    if [ $passed -eq 0 ]; then kc_skip "every test of the suite was skipped"; fi
    kc_log "PASS: suite on kernel $KERNEL: $passed tests passed$([ $skipped -gt 0 ] && echo ", $skipped skipped" || true) ($(kc_elapsed "$t_start")s)"
    exit 0
}

if [ "$SUITE" = 1 ]; then suite_main; else single_main; fi
