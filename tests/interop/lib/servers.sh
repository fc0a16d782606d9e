# shellcheck shell=bash
# shellcheck disable=SC2034  # SRV_* are read by the scripts that source this
# Shared helpers for tests/interop/*.sh and bench/ds-bench.sh:
# start/stop loom-ds or nfs-ganesha (FSAL VFS) on free loopback ports,
# build libnfs URLs for them, install missing Debian packages.
#
# Source it, then:
#   srv_start loom|ganesha ROOTDIR WORKDIR   -> sets SRV_* below, returns !=0 on failure
#   srv_stop                                  -> stops the server started last
#   srv_cleanup_all                           -> stops servers + rpcbind we started
# After srv_start:
#   SRV_KIND     loom | ganesha
#   SRV_PID      server pid (for /proc/PID/{stat,status})
#   SRV_NFS_PORT, SRV_MNT_PORT
#   SRV_EXPORT   path to MOUNT ("/" for loom-ds, ROOTDIR for ganesha)
#   SRV_LOG      server log file
#
# Every process is started by us and stopped by its pid; nothing is killed
# by name.

SRV_KIND="" SRV_PID="" SRV_NFS_PORT="" SRV_MNT_PORT="" SRV_EXPORT="" SRV_LOG=""
_SRV_RPCBIND_PID=""          # rpcbind we started ourselves (if any)
_SRV_PIDS=()                 # all servers we started, for cleanup
SRV_HOST=127.0.0.1
SRV_READY_TIMEOUT=${SRV_READY_TIMEOUT:-30}
GANESHA_PLUGINS_DIR=${GANESHA_PLUGINS_DIR:-/usr/lib/x86_64-linux-gnu/ganesha}

srv_log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# ensure_pkgs "cmd:package" ... ; installs (as root, via apt-get) the
# packages whose command is missing.  apt-get update only when something is
# missing.  Returns 1 if something is still missing afterwards.
ensure_pkgs() {
    local pair cmd pkg missing=()
    for pair in "$@"; do
        cmd=${pair%%:*}; pkg=${pair#*:}
        if [[ $cmd == /* ]]; then [[ -e $cmd ]] && continue
        else command -v "$cmd" >/dev/null 2>&1 && continue; fi
        missing+=("$pkg")
    done
    ((${#missing[@]} == 0)) && return 0
    # de-duplicate
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
        srv_log "missing packages (${missing[*]}) and cannot apt-get install (not root / no apt)"
        return 1
    fi
    srv_log "installing missing packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
        apt-get update -qq >/dev/null 2>&1 || true
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || true
    fi
    for pair in "$@"; do
        cmd=${pair%%:*}
        if [[ $cmd == /* ]]; then [[ -e $cmd ]] || { srv_log "still missing: $cmd"; return 1; }
        else command -v "$cmd" >/dev/null 2>&1 || { srv_log "still missing: $cmd"; return 1; }; fi
    done
    return 0
}

# is TCP port $1 used by any socket (any state) on this host?
port_in_use() {
    local hex
    hex=$(printf ':%04X' "$1")
    awk -v h="$hex" 'FNR>1 && substr($2, length($2)-4) == h {f=1} END{exit !f}' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# free_port: sets FREE_PORT to a free port below the ephemeral range
# (20000..31999), never one handed out before in this shell.
_SRV_PORTS_TAKEN=""
free_port() {
    local p i
    for ((i = 0; i < 500; i++)); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 12000))
        [[ " $_SRV_PORTS_TAKEN " == *" $p "* ]] && continue
        if ! port_in_use "$p"; then
            _SRV_PORTS_TAKEN="$_SRV_PORTS_TAKEN $p"
            FREE_PORT=$p; return 0
        fi
    done
    return 1
}

tcp_connectable() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# URL of a directory (what to MOUNT): nfs://127.0.0.1/EXPORT?...
# shellcheck disable=SC2120  # optional argument
srv_url_dir() {
    local sub=${1:-}
    local p="${SRV_EXPORT%/}${sub:+/$sub}"
    [[ -z $p ]] && p="/"
    echo "nfs://$SRV_HOST$p?nfsport=$SRV_NFS_PORT&mountport=$SRV_MNT_PORT&version=3"
}

# URL of a file relative to the export root.
# libnfs-utils 4.0 (nfs-cp/nfs-cat) splits a file URL at its LAST slash:
# it MOUNTs the part before it and opens the basename.  Hence:
#   explicit (default): nfs://127.0.0.1/EXPORT//file  -> MNT "EXPORT/" ("/"
#       for loom-ds).  For "sub/file": nfs://127.0.0.1/EXPORT/sub/file ->
#       MNT "EXPORT/sub", i.e. a subdirectory of the export.
#   natural: nfs://127.0.0.1/EXPORT/file -> for export "/" that is MNT ""
#       (empty dirpath).  libnfs 4.0 itself then fails such a mount ("Export
#       is empty", after MOUNTPROC3_EXPORT) unless auto-traverse-mounts=0,
#       which this style therefore adds.  Tests that the server takes MNT "".
# In both styles, after MNT libnfs calls MOUNTPROC3_EXPORT (unless
# auto-traverse-mounts=0) and MNTs every listed export below the mounted
# path ("nested mounts"); a failing EXPORT call fails the whole mount.
srv_url_file() {
    local rel=$1 style=${2:-explicit}
    local q="nfsport=$SRV_NFS_PORT&mountport=$SRV_MNT_PORT&version=3"
    if [[ $style == natural ]]; then
        echo "nfs://$SRV_HOST${SRV_EXPORT%/}/$rel?$q&auto-traverse-mounts=0"
    elif [[ $rel != */* ]]; then
        echo "nfs://$SRV_HOST${SRV_EXPORT%/}//$rel?$q"
    else
        echo "nfs://$SRV_HOST${SRV_EXPORT%/}/$rel?$q"
    fi
}

_srv_wait_dead() {  # pid timeout_tenths
    local pid=$1 n=${2:-150} i
    for ((i = 0; i < n; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
}

_srv_rpcbind_up() {
    # rpcbind answering in THIS network namespace, on both the local socket
    # (what ganesha registers through) and 127.0.0.1:111.  (pgrep is no
    # proof: an rpcbind of another network namespace shows up in ps.)
    command -v rpcinfo >/dev/null 2>&1 || { tcp_connectable 127.0.0.1 111; return; }
    timeout 5 rpcinfo >/dev/null 2>&1 && timeout 5 rpcinfo -p 127.0.0.1 >/dev/null 2>&1
}

_srv_start_rpcbind() {
    # ganesha refuses to start NFSv3 without rpcbind; start one if none runs.
    _srv_rpcbind_up && return 0
    mkdir -p /run/rpcbind
    # -f: stay in the foreground so that we own (and later stop) this pid;
    # no -w: do not restore stale registrations from an earlier run.
    rpcbind -f >/dev/null 2>&1 &
    _SRV_RPCBIND_PID=$!
    local i
    for ((i = 0; i < 50; i++)); do
        sleep 0.1
        _srv_rpcbind_up && { srv_log "started rpcbind pid $_SRV_RPCBIND_PID"; return 0; }
        kill -0 "$_SRV_RPCBIND_PID" 2>/dev/null || break
    done
    srv_log "rpcbind did not come up"
    return 1
}

_srv_start_loom() {
    local root=$1 work=$2 bin=${LOOM_DS:-}
    if [[ ! -x $bin ]]; then
        srv_log "loom-ds binary not found/executable: '$bin'"
        return 77
    fi
    free_port || { srv_log "no free port"; return 1; }
    local port=$FREE_PORT
    SRV_LOG="$work/loom-ds.log"
    # The libnfs tools and the benchmark run as root on this host: the export must keep
    # loopback's root (the default squashes it, docs/security.md). The handle secret lives in
    # $work; a fresh $work over an export that already holds files (the benchmark reuses one,
    # and nobody keeps its old handles) starts with a new secret, which loom-ds refuses
    # without --new-secret.
    printf '127.0.0.0/8(rw,no_root_squash)\n' >"$work/loom-ds.exports"
    local secret_flag=()
    [[ -e $work/loom-ds-state/secret ]] || secret_flag=(--new-secret)
    "$bin" --root "$root" --listen "$SRV_HOST:$port" --exports "$work/loom-ds.exports" \
        --state-dir "$work/loom-ds-state" "${secret_flag[@]}" ${LOOM_DS_ARGS:-} >"$SRV_LOG" 2>&1 &
    SRV_PID=$!
    _SRV_PIDS+=("$SRV_PID")
    SRV_KIND=loom SRV_NFS_PORT=$port SRV_MNT_PORT=$port SRV_EXPORT=/
    local i
    for ((i = 0; i < SRV_READY_TIMEOUT * 10; i++)); do
        if grep -q "loom-ds ready" "$SRV_LOG" 2>/dev/null; then
            srv_log "loom-ds pid $SRV_PID ready on $SRV_HOST:$port (root $root)"
            return 0
        fi
        if ! kill -0 "$SRV_PID" 2>/dev/null; then
            srv_log "loom-ds exited before 'ready'; log tail:"; tail -n 20 "$SRV_LOG" >&2
            return 1
        fi
        sleep 0.1
    done
    srv_log "loom-ds did not print 'ready' within ${SRV_READY_TIMEOUT}s; log tail:"
    tail -n 20 "$SRV_LOG" >&2
    return 1
}

_srv_start_ganesha() {
    local root=$1 work=$2
    root=$(cd "$root" && pwd -P)
    _srv_start_rpcbind || return 1
    mkdir -p /var/run/ganesha /var/lib/nfs/ganesha
    local nport mport
    free_port || { srv_log "no free port"; return 1; }
    nport=$FREE_PORT
    free_port || { srv_log "no free port"; return 1; }
    mport=$FREE_PORT
    local conf="$work/ganesha.conf"
    SRV_LOG="$work/ganesha.log"
    cat >"$conf" <<EOF
NFS_CORE_PARAM {
    NFS_Port = $nport;
    MNT_Port = $mport;
    Protocols = 3, 4;
    Enable_NLM = false;
    Enable_RQUOTA = false;
    Plugins_Dir = "$GANESHA_PLUGINS_DIR";
}
NFSV4 { Graceless = true; }
EXPORT_DEFAULTS { Access_Type = RW; Squash = No_Root_Squash; }
EXPORT {
    Export_Id = 77;
    Path = "$root";
    Pseudo = "/loombench";
    Protocols = 3, 4;
    Transports = TCP;
    Access_Type = RW;
    Squash = No_Root_Squash;
    SecType = sys;
    FSAL { Name = VFS; }
}
LOG { Default_Log_Level = EVENT; }
EOF
    : >"$SRV_LOG"
    ganesha.nfsd -F -f "$conf" -p "$work/ganesha.pid" -L "$SRV_LOG" >"$work/ganesha.stdout" 2>&1 &
    SRV_PID=$!
    _SRV_PIDS+=("$SRV_PID")
    SRV_KIND=ganesha SRV_NFS_PORT=$nport SRV_MNT_PORT=$mport SRV_EXPORT=$root
    local i
    for ((i = 0; i < SRV_READY_TIMEOUT * 10; i++)); do
        if grep -q "NFS SERVER INITIALIZED" "$SRV_LOG" 2>/dev/null &&
            tcp_connectable "$SRV_HOST" "$nport" && tcp_connectable "$SRV_HOST" "$mport"; then
            srv_log "ganesha pid $SRV_PID ready: nfs $nport mount $mport export $root"
            return 0
        fi
        if ! kill -0 "$SRV_PID" 2>/dev/null; then
            srv_log "ganesha exited during startup; log tail:"
            tail -n 20 "$SRV_LOG" "$work/ganesha.stdout" >&2
            return 1
        fi
        sleep 0.1
    done
    srv_log "ganesha not ready within ${SRV_READY_TIMEOUT}s; log tail:"
    tail -n 20 "$SRV_LOG" >&2
    return 1
}

# srv_start loom|ganesha ROOT WORKDIR ; returns 0, 1 (failed) or 77 (missing binary)
srv_start() {
    local kind=$1 root=$2 work=$3
    mkdir -p "$work"
    SRV_KIND="" SRV_PID="" SRV_NFS_PORT="" SRV_MNT_PORT="" SRV_EXPORT="" SRV_LOG=""
    case $kind in
        loom) _srv_start_loom "$root" "$work" ;;
        ganesha) _srv_start_ganesha "$root" "$work" ;;
        *) srv_log "unknown server kind '$kind'"; return 1 ;;
    esac
}

_srv_kill() {
    local pid=$1
    [[ -n $pid ]] || return 0
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    kill -TERM "$pid" 2>/dev/null
    if ! _srv_wait_dead "$pid" 150; then
        srv_log "pid $pid ignored SIGTERM for 15s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null
        _srv_wait_dead "$pid" 50
    fi
    wait "$pid" 2>/dev/null
    return 0
}

srv_stop() {
    [[ -n $SRV_PID ]] || return 0
    _srv_kill "$SRV_PID"
    local p keep=()
    for p in "${_SRV_PIDS[@]}"; do [[ $p != "$SRV_PID" ]] && keep+=("$p"); done
    _SRV_PIDS=("${keep[@]}")
    SRV_PID=""
}

srv_cleanup_all() {
    local p
    for p in "${_SRV_PIDS[@]}"; do _srv_kill "$p"; done
    _SRV_PIDS=()
    SRV_PID=""
    if [[ -n $_SRV_RPCBIND_PID ]]; then
        _srv_kill "$_SRV_RPCBIND_PID"
        _SRV_RPCBIND_PID=""
    fi
}

# /proc helpers ---------------------------------------------------------
# cpu seconds (utime+stime, all threads) of pid
proc_cpu_s() {
    local pid=$1 stat rest
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || { echo 0; return; }
    rest=${stat##*) }        # fields from 3 (state) on; comm may hold spaces
    # utime = field 14, stime = field 15  -> positions 12, 13 in rest
    awk -v tck="$(getconf CLK_TCK)" '{ printf "%.3f\n", ($12 + $13) / tck }' <<<"$rest"
}
# VmHWM / VmRSS in KiB
proc_mem_kb() {  # pid field(VmHWM|VmRSS|RssAnon|...)
    awk -v f="$2:" '$1 == f {print $2; found=1} END{if(!found) print 0}' "/proc/$1/status" 2>/dev/null || echo 0
}
