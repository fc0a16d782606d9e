#!/usr/bin/env bash
# libnfs-roundtrip.sh -- interop test of an NFSv3 server with a real client
# nobody here wrote: the libnfs command-line tools from Debian's libnfs-utils
# (nfs-cp, nfs-cat, nfs-ls, libnfs 4.0).
#
# Starts the server on a free loopback port with a fresh temp root dir, then
#   * nfs-cp's files of size 0, 1, 4095, 4096, 4097, 1 MiB+3 and ~64 MiB
#     (random data) into the export,
#   * checks sha256 of the file the server wrote on disk == the original,
#   * reads each back with nfs-cp and with nfs-cat, sha256 == the original,
#   * nfs-ls's the export root and checks every name and size,
#   * nfs-cp's into a subdirectory created on disk (libnfs MOUNTs "/sub"),
#     reads back; nfs-ls -R checks "sub/NAME" and its size (if the server
#     refuses MNT of a subdirectory: a warning, and sub/ is filled on disk),
#   * checks that nfs-cp onto an existing file is refused (libnfs uses a
#     GUARDED/EXCLUSIVE CREATE) and leaves that file untouched.
#
# usage: tests/interop/libnfs-roundtrip.sh [--server loom|ganesha] [--big-mb N]
#                                          [--url-style natural|explicit] [--keep]
#   --server loom     (default) binary from $LOOM_DS, default
#                     build/apps/loom-ds/loom-ds (relative to the repo root),
#                     run as: loom-ds --root DIR --listen 127.0.0.1:PORT
#                     (NFS + MOUNT on that one port, export "/")
#   --server ganesha  nfs-ganesha FSAL VFS (to validate this test itself)
#   --big-mb N        size of the big random file in MiB (default 64)
#   --url-style S     explicit (default): root files as nfs://127.0.0.1//NAME?...
#                     so that libnfs sends MNT "/" (plain nfs://127.0.0.1/NAME
#                     makes libnfs 4.0 send MNT "" and then fail the mount on
#                     its own: "Export is empty");  natural: nfs://127.0.0.1/NAME
#                     ?...&auto-traverse-mounts=0, i.e. MNT "" (server must
#                     take "" as the export root).  See lib/servers.sh.
#   --no-subdir       skip the subdirectory part
#   --require-subdir-mount
#                     fail (instead of warn) when the server refuses MNT of
#                     "/sub": nfs-cp/nfs-cat reach sub/NAME only through it
#   --keep            keep the temp dir (server root, logs) for inspection
#
# Exit: 0 all good, 1 a mismatch / failure (message says which),
#       77 tools or the loom-ds binary missing (skip).
set -u
set -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
# shellcheck source=SCRIPTDIR/lib/servers.sh
source "$HERE/lib/servers.sh"

SERVER=loom BIG_MB=${ROUNDTRIP_BIG_MB:-64} URL_STYLE=explicit KEEP=0 SUBDIR=1
REQUIRE_SUBDIR_MOUNT=${ROUNDTRIP_REQUIRE_SUBDIR_MOUNT:-0}
while (($#)); do
    case $1 in
        --server) SERVER=$2; shift 2 ;;
        --server=*) SERVER=${1#*=}; shift ;;
        --big-mb) BIG_MB=$2; shift 2 ;;
        --url-style) URL_STYLE=$2; shift 2 ;;
        --no-subdir) SUBDIR=0; shift ;;
        --require-subdir-mount) REQUIRE_SUBDIR_MOUNT=1; shift ;;
        --keep) KEEP=1; shift ;;
        -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
case $SERVER in loom|loom-ds) SERVER=loom ;; ganesha) ;; *) echo "--server loom|ganesha" >&2; exit 2 ;; esac
case $URL_STYLE in natural|explicit) ;; *) echo "--url-style natural|explicit" >&2; exit 2 ;; esac

LOOM_DS=${LOOM_DS:-$REPO/build/apps/loom-ds/loom-ds}
[[ $LOOM_DS == /* ]] || LOOM_DS="$REPO/$LOOM_DS"
export LOOM_DS

TOOL_TIMEOUT=${ROUNDTRIP_TOOL_TIMEOUT:-180}
FAILS=0
TMP=""

cleanup() {
    local rc=$?
    srv_cleanup_all
    if [[ -n $TMP && -d $TMP ]]; then
        if ((KEEP)); then echo "kept: $TMP" >&2; else rm -rf "$TMP"; fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 1' INT TERM HUP

log() { echo "roundtrip[$SERVER]: $*"; }
fail() { echo "roundtrip[$SERVER]: FAIL: $*" >&2; FAILS=$((FAILS + 1)); }
warn() { echo "roundtrip[$SERVER]: WARNING: $*" >&2; }
# LOOM_REQUIRE_INTEROP=1 (CI) turns a skip into a failure: there every test must really run.
skip() {
    if [ "${LOOM_REQUIRE_INTEROP:-0}" = 1 ]; then echo "roundtrip[$SERVER]: FAIL (required): $*" >&2; exit 1; fi
    echo "roundtrip[$SERVER]: SKIP: $*" >&2; exit 77
}

# ---- tools -------------------------------------------------------------
need=(nfs-cp:libnfs-utils nfs-cat:libnfs-utils nfs-ls:libnfs-utils
      sha256sum:coreutils timeout:coreutils awk:mawk)
[[ $SERVER == ganesha ]] && need+=(ganesha.nfsd:nfs-ganesha
    "$GANESHA_PLUGINS_DIR/libfsalvfs.so:nfs-ganesha-vfs" rpcbind:rpcbind)
ensure_pkgs "${need[@]}" || skip "required tools missing and could not be installed"
if [[ $SERVER == loom && ! -x $LOOM_DS ]]; then
    skip "loom-ds binary not found at $LOOM_DS (build it, or set LOOM_DS=...)"
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/loom-roundtrip.XXXXXX")
ROOT="$TMP/root" SRC="$TMP/src" OUT="$TMP/out"
mkdir -p "$ROOT" "$SRC" "$OUT"

# ---- server ------------------------------------------------------------
srv_start "$SERVER" "$ROOT" "$TMP/server"
rc=$?
if ((rc == 77)); then skip "server binary missing"; fi
if ((rc != 0)); then fail "server failed to start"; exit 1; fi
log "server pid $SRV_PID, nfs port $SRV_NFS_PORT, mount port $SRV_MNT_PORT, export $SRV_EXPORT"

# ---- test files --------------------------------------------------------
declare -A SIZE=(
    [empty.bin]=0 [one.bin]=1 [b4095.bin]=4095 [b4096.bin]=4096 [b4097.bin]=4097
    [m1p3.bin]=$((1024 * 1024 + 3)) [big.bin]=$((BIG_MB * 1024 * 1024 + 1))
)
NAMES=(empty.bin one.bin b4095.bin b4096.bin b4097.bin m1p3.bin big.bin)
for n in "${NAMES[@]}"; do
    head -c "${SIZE[$n]}" /dev/urandom >"$SRC/$n"
done
sha() { sha256sum <"$1" | awk '{print $1}'; }
declare -A SUM
for n in "${NAMES[@]}"; do SUM[$n]=$(sha "$SRC/$n"); done

run_tool() {  # run a libnfs tool with a timeout, output to $TMP/tool.err
    timeout "$TOOL_TIMEOUT" "$@" 2>"$TMP/tool.err"
}
tool_err() { tr '\n' ' ' <"$TMP/tool.err" | cut -c1-300; }

check_file() {  # name(rel) expected-sum what-file label
    local got
    if [[ ! -f $3 ]]; then fail "$4: $3 does not exist"; return 1; fi
    got=$(sha "$3")
    if [[ $got != "$2" ]]; then
        fail "$4: sha256 mismatch for $1 (got $got, want $2, size $(stat -c %s "$3"))"
        return 1
    fi
    return 0
}

# URL of a file at the export root, in the chosen style
root_url() { srv_url_file "$1" "$URL_STYLE"; }

# ---- write + read back -------------------------------------------------
for n in "${NAMES[@]}"; do
    url=$(root_url "$n")
    if ! run_tool nfs-cp "$SRC/$n" "$url" >/dev/null; then
        msg="nfs-cp upload of $n failed: $(tool_err)"
        if grep -qi "mount" "$TMP/tool.err"; then
            if [[ $URL_STYLE == natural ]]; then
                msg+=" -- note: this URL makes libnfs send MNT with an EMPTY dirpath;"
                msg+=" the server must treat MNT \"\" as the export root"
            else
                msg+=" -- note: libnfs sent MNT \"${SRV_EXPORT%/}/\", then MOUNTPROC3_EXPORT (must be implemented),"
                msg+=" then MNT of each listed export below it"
            fi
        fi
        fail "$msg"
        continue
    fi
    check_file "$n" "${SUM[$n]}" "$ROOT/$n" "on-disk copy written via nfs-cp" || continue
    if run_tool nfs-cp "$url" "$OUT/$n.cp" >/dev/null; then
        check_file "$n" "${SUM[$n]}" "$OUT/$n.cp" "nfs-cp download"
    else
        fail "nfs-cp download of $n failed: $(tool_err)"
    fi
    if run_tool nfs-cat "$url" >"$OUT/$n.cat"; then
        check_file "$n" "${SUM[$n]}" "$OUT/$n.cat" "nfs-cat"
    else
        fail "nfs-cat of $n failed: $(tool_err)"
    fi
    log "ok $n (${SIZE[$n]} bytes): upload, on-disk, nfs-cp back, nfs-cat back"
done

# ---- listing -----------------------------------------------------------
# nfs-ls line: MODE NLINK UID GID SIZE NAME
check_listing() {  # listing-file prefix(for -R names) names...
    local f=$1 prefix=$2; shift 2
    local n want got
    for n in "$@"; do
        want=${SIZE[$n]}
        got=$(awk -v n="$prefix$n" '$NF == n {print $5; exit}' "$f")
        if [[ -z $got ]]; then fail "nfs-ls: '$prefix$n' not listed"; continue; fi
        [[ $got == "$want" ]] || fail "nfs-ls: '$prefix$n' size $got, want $want"
    done
}
if run_tool nfs-ls "$(srv_url_dir)" >"$TMP/ls.out"; then
    check_listing "$TMP/ls.out" "" "${NAMES[@]}"
    extra=$(awk '{print $NF}' "$TMP/ls.out" | grep -vxF -e . -e .. "${NAMES[@]/#/-e}" || true)
    [[ -z $extra ]] || fail "nfs-ls lists unexpected entries: $extra"
    log "ok nfs-ls root: $(wc -l <"$TMP/ls.out") entries, names and sizes match"
else
    fail "nfs-ls $(srv_url_dir) failed: $(tool_err)"
fi

# ---- create onto an existing file must be refused, file untouched -----
url=$(root_url b4097.bin)
if run_tool nfs-cp "$SRC/one.bin" "$url" >/dev/null; then
    fail "nfs-cp onto existing b4097.bin succeeded (libnfs creates GUARDED/EXCLUSIVE: server should say EXIST)"
else
    if grep -q "EXIST" "$TMP/tool.err"; then
        log "ok nfs-cp onto an existing file refused with EXIST"
    else
        fail "nfs-cp onto existing file failed, but not with NFS3ERR_EXIST: $(tool_err)"
    fi
fi
check_file b4097.bin "${SUM[b4097.bin]}" "$ROOT/b4097.bin" "existing file after refused create"

# ---- subdirectory ------------------------------------------------------
# libnfs 4.0's nfs-cp can only reach sub/NAME by MOUNTing "EXPORT/sub".  A
# server that refuses MNT of subdirectories gets a warning (or a failure with
# --require-subdir-mount) and sub/ is then checked with files placed on disk
# and nfs-ls -R from the root.  Data mismatches always fail.
if ((SUBDIR)); then
    mkdir -p "$ROOT/sub"
    SUBNAMES=(b4097.bin m1p3.bin)
    sub_ok=1 sub_refused=0
    for n in "${SUBNAMES[@]}"; do
        url=$(srv_url_file "sub/$n")
        if ! run_tool nfs-cp "$SRC/$n" "$url" >/dev/null; then
            if grep -q -e "Mount failed" -e "MNT3ERR" "$TMP/tool.err"; then
                sub_refused=1; break
            fi
            fail "nfs-cp into subdirectory sub/$n failed: $(tool_err)"
            sub_ok=0; continue
        fi
        check_file "sub/$n" "${SUM[$n]}" "$ROOT/sub/$n" "on-disk copy in subdirectory" || { sub_ok=0; continue; }
        if run_tool nfs-cat "$url" >"$OUT/sub.$n.cat"; then
            check_file "sub/$n" "${SUM[$n]}" "$OUT/sub.$n.cat" "nfs-cat from subdirectory" || sub_ok=0
        else
            fail "nfs-cat sub/$n failed: $(tool_err)"; sub_ok=0
        fi
    done
    if ((sub_refused)); then
        msg="server refuses MNT of a subdirectory (\"${SRV_EXPORT%/}/sub\"): $(tool_err)"
        if ((REQUIRE_SUBDIR_MOUNT)); then
            fail "$msg"
        else
            msg+=" -- libnfs 4.0 nfs-cp/nfs-cat MOUNT the URL's directory, so they cannot reach sub/;"
            msg+=" checking sub/ with files placed on disk + nfs-ls -R instead (--require-subdir-mount makes this a failure)"
            warn "$msg"
        fi
        sub_ok=0
        for n in "${SUBNAMES[@]}"; do cp "$SRC/$n" "$ROOT/sub/$n"; done
    fi
    # recursive listing from the export root (MNT of the root only)
    if run_tool nfs-ls -R "$(srv_url_dir)" >"$TMP/lsR.out"; then
        check_listing "$TMP/lsR.out" "sub/" "${SUBNAMES[@]}"
        check_listing "$TMP/lsR.out" "" "${NAMES[@]}"
        awk '$NF == "sub" {print $1}' "$TMP/lsR.out" | grep -q '^d' || fail "nfs-ls -R: 'sub' not listed as a directory"
        log "ok nfs-ls -R: sub/ and its files listed with the right sizes"
    else
        fail "nfs-ls -R failed: $(tool_err)"
    fi
    ((sub_ok)) && log "ok subdirectory: nfs-cp into sub/ (MNT of sub), on-disk, nfs-cat back"
fi

# ---- server still alive? -----------------------------------------------
kill -0 "$SRV_PID" 2>/dev/null || fail "server process $SRV_PID died during the test (log: $SRV_LOG)"

if ((FAILS)); then
    echo "roundtrip[$SERVER]: $FAILS check(s) FAILED" >&2
    [[ -n ${SRV_LOG:-} && -f $SRV_LOG ]] && { echo "--- server log tail ---" >&2; tail -n 20 "$SRV_LOG" >&2; }
    exit 1
fi
echo "roundtrip[$SERVER]: all checks passed"
exit 0
