#!/usr/bin/env bash
# cli-test.sh -- process test of the `loom` CLI against a real cluster: three loom-ds and one
# loom-mds (--mirrors 2) started by scripts/loom-cluster.sh on a free loopback port.
#
# Checks (each old bug of the CLI has one that failed before):
#   * --help of loom and of every command, --version, unknown commands/flags (exit 2);
#   * the default metadata server is 127.0.0.1:20490, as scripts/loom-up.sh starts it, and a
#     bare host gets port 20490; host names work in --mds;
#   * put to "/" puts into the root, put to "" is a usage error, get of "/" and put of a
#     directory without -r are errors (none of them crashes);
#   * no silent overwrite (local and remote, exit 4) and -f; an existing local file survives
#     a refused get untouched;
#   * a failed get (missing file; the only data server of a file SIGKILLed mid-copy; SIGTERM
#     mid-copy) leaves no partial file and no temporary file;
#   * cp -r of a tree of 1,000 small files and one large one (LOOM_CLI_TEST_BIG_MIB, default
#     256) with --progress (percent and bytes in the output) and --checksum, and back;
#   * a data server SIGKILLed in the middle of a get and of a put of a mirrored file: the
#     copy succeeds with the right bytes;
#   * after a metadata server restart (SIGKILL, same state dir) commands work at once, and a
#     put held across the restart completes;
#   * ls/stat/cat/mkdir/rm/mv/du/df/status/layout, and the exit status of each error class;
#   * `loom bench train` over record files (several samples per file) on loom and locally.
# Mid-copy moments come from the CLI's test seam LOOM_CLI_TEST_HOLD=BYTES:FIFO (the copy
# blocks reading FIFO once BYTES are written, so the test acts while it is known to be
# halfway), never from sleeps.
#
# usage: tests/cli/cli-test.sh [--bin BUILD/apps] [--keep]
#   env LOOM_BIN (default build/apps), LOOM_CLI_TEST_BIG_MIB (default 256),
#   LOOM_CLI_TEST_LEASE (loom-mds --lease and --grace, seconds; default 10: short, so a copy
#   that outlasts it checks that libloom renews its lease)
# Exit: 0 all passed, 1 a check failed (each failure is printed), 77 binaries missing (skip).
set -u
here=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${LOOM_BIN:-$here/build/apps}
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN=$(cd "$2" && pwd); shift 2 ;;
    --keep) KEEP=1; shift ;;
    *) echo "usage: $0 [--bin BUILD/apps] [--keep]" >&2; exit 2 ;;
  esac
done
LOOM=$BIN/loom/loom
BIG_MIB=${LOOM_CLI_TEST_BIG_MIB:-256}
LEASE=${LOOM_CLI_TEST_LEASE:-10}
for b in "$LOOM" "$BIN/loom-mds/loom-mds" "$BIN/loom-ds/loom-ds"; do
  [ -x "$b" ] || { echo "SKIP: no $b (ninja loom loom-mds loom-ds)"; exit 77; }
done

W=$(mktemp -d /tmp/loom-cli-test-XXXXXX)
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
CL=$W/cluster
cluster_pid=
cleanup() {
  exec 9>&- 2>/dev/null
  if [ -n "$cluster_pid" ]; then
    kill "$cluster_pid" 2>/dev/null
    wait "$cluster_pid" 2>/dev/null
  fi
  if [ $KEEP = 1 ]; then echo "kept $W"; else rm -rf "$W"; fi
}
trap cleanup EXIT

pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   $*"; }
bad() { fail=$((fail + 1)); echo "FAIL $*"; }
# expect RC NAME CMD...: runs CMD (output in $W/out), checks its exit status.
expect() {
  local want=$1 name=$2 rc
  shift 2
  "$@" >"$W/out" 2>&1
  rc=$?
  if [ "$rc" = "$want" ]; then ok "$name (exit $rc)"; else bad "$name: exit $rc, want $want: $(head -c 600 "$W/out")"; fi
}
# has NAME TEXT: the last command's output contains TEXT.
has() {
  if grep -qF -- "$2" "$W/out"; then ok "$1"; else bad "$1: no '$2' in: $(head -c 600 "$W/out")"; fi
}
ctl() { "$here/scripts/loom-cluster.sh" --dir "$CL" --ctl "$@"; }
# ds_index_of PORT: the cluster's index (dsI) of the data server on PORT.
ds_index_of() { ctl status | awk -v p="$1" '$1 ~ /^ds/ && $3 == p { print substr($1, 3) }'; }
# holder_port PATH [N]: the port of the Nth (default 1st) data server the metadata server
# records for PATH (admin layout: "stripe 0  ds 2 (127.0.0.1:PORT, up)").
holder_port() {
  "$LOOM" admin layout "$1" | sed -n 's/.*stripe [0-9]*  ds [0-9]* ([^:]*:\([0-9]*\),.*/\1/p' | sed -n "${2:-1}p"
}
# no_temps DIR: no ".NAME.loom-tmp-XXXXXX" left in DIR.
no_temps() { ! ls -a "$1" | grep -q '\.loom-tmp-'; }

# ---- the cluster ------------------------------------------------------------------------
"$here/scripts/loom-cluster.sh" --dir "$CL" --port "$PORT" --ds 3 --bin "$BIN" --lease "$LEASE" --grace "$LEASE" \
  --mds-args "--mirrors 2" >"$W/cluster.log" 2>&1 &
cluster_pid=$!
python3 - "$W/cluster.log" "$cluster_pid" <<'PY' || { echo "the cluster did not start:"; cat "$W/cluster.log"; exit 1; }
import os, sys, time
log, pid = sys.argv[1], int(sys.argv[2])
end = time.time() + 60
while time.time() < end:
    if "loom-mds ready" in open(log, errors="replace").read():
        sys.exit(0)
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit(1)
    time.sleep(0.05)
sys.exit(1)
PY
export LOOM_MDS=127.0.0.1:$PORT
L=$W/local
mkdir -p "$L"
cd "$L" || exit 1
echo "cluster on port $PORT, work dir $W"

# ---- df's numbers (first, while nothing else changes the namespace: later, killed clients'
# unlinked files are released as their leases end) -------------------------------------------
# The bytes are the data servers' (three on one filesystem here: three times its size); the
# used files are the namespace's inodes, one more after a put, one less after rm (loom-mds
# refreshes them every second).
df_field() { "$LOOM" df / | awk -v f="$1" 'NR == 2 { print $f }'; }
# wait_df FIELD WANT: polls df's FIELD (2: bytes, 7: used files) for up to 5 s; prints the
# last value when it never became WANT.
wait_df() {
  local i got
  for i in $(seq 50); do
    got=$(df_field "$1")
    [ "$got" = "$2" ] && return 0
    sleep 0.1
  done
  echo "$got"
  return 1
}
want_bytes=$((3 * $(stat -f -c '%b * %S' "$CL/ds1")))
got=$(wait_df 2 "$want_bytes") && ok "df: the data servers' bytes" || bad "df bytes $got, want $want_bytes"
fused0=$(df_field 7)
[ "$fused0" = 1 ] && ok "df: a new file system has one file, its root" || bad "df used files: '$fused0'"
echo x >"$W/one.txt"
expect 0 "put one file" "$LOOM" put "$W/one.txt" /df-one.txt
got=$(wait_df 7 $((fused0 + 1))) && ok "df: one more file after a put" || bad "df used files $got after a put, want $((fused0 + 1))"
expect 0 "rm that file" "$LOOM" rm /df-one.txt
got=$(wait_df 7 "$fused0") && ok "df: one file less after rm" || bad "df used files $got after rm, want $fused0"

# ---- help, version, usage -----------------------------------------------------------------
expect 0 "loom --help" "$LOOM" --help
has "--help lists the exit statuses" "exit status:"
expect 0 "loom --version" "$LOOM" --version
has "--version names libloom" "libloom"
for c in ls stat cat cp put get mv rm mkdir du df layout status admin ds policy mv-data fence; do
  expect 0 "loom $c --help" "$LOOM" "$c" --help
  has "loom $c --help is its usage" "usage: loom $c"
done
expect 0 "loom bench --help" "$LOOM" bench --help
expect 0 "loom help cp" "$LOOM" help cp
has "loom help cp is cp's usage" "usage: loom cp"
expect 2 "loom (no command)" "$LOOM"
expect 2 "unknown command" "$LOOM" frobnicate
expect 2 "unknown flag" "$LOOM" ls --frobnicate /
expect 2 "cp without a loom: side" "$LOOM" cp a b
expect 2 "cp -j 0" "$LOOM" cp -j 0 a loom:/a
expect 2 "--mds without a value" "$LOOM" --mds

# ---- the default address ----------------------------------------------------------------------
upport=$(sed -n 's/^PORT=\${LOOM_PORT:-\([0-9]*\)}.*/\1/p' "$here/scripts/loom-up.sh")
[ "$upport" = 20490 ] && ok "scripts/loom-up.sh starts loom-mds on 20490" || bad "loom-up.sh port is '$upport'"
expect 0 "--help without LOOM_MDS" env -u LOOM_MDS "$LOOM" --help
has "--help names the default server" "127.0.0.1:$upport"
env -u LOOM_MDS "$LOOM" --retry-for 1 status >"$W/out" 2>&1
has "the default server is loom-up's" "metadata server: 127.0.0.1:$upport"
LOOM_MDS=localhost "$LOOM" --retry-for 1 status >"$W/out" 2>&1
has "a bare LOOM_MDS host gets port 20490" "metadata server: localhost:20490"
expect 0 "host names in --mds" "$LOOM" --mds "localhost:$PORT" ls /

# ---- the old crashes: put to / and "", get of /, put of a directory ------------------------------
echo "hello loom" >hello.txt
expect 0 "put FILE / puts into the root" "$LOOM" put hello.txt /
expect 0 "cat /hello.txt" "$LOOM" cat /hello.txt
has "cat shows what put wrote" "hello loom"
expect 2 'put FILE ""' "$LOOM" put hello.txt ""
has 'put to "" says why' "empty path"
expect 8 "get / without -r" "$LOOM" get / out-root
has "get / says it is a directory" "is a directory"
[ ! -e out-root ] && ok "get / made no local file" || bad "get / left out-root"
mkdir -p adir && echo x >adir/x
expect 8 "put of a directory without -r" "$LOOM" put adir /adir
has "put of a directory says -r" "use -r"
expect 3 "stat of what a directory put did not make" "$LOOM" stat /adir

# ---- no silent overwrite -----------------------------------------------------------------------
echo "keep me" >existing.txt
before=$(sha256sum existing.txt)
expect 4 "get into an existing local file" "$LOOM" get /hello.txt existing.txt
has "the refusal says -f" "use -f"
[ "$(sha256sum existing.txt)" = "$before" ] && ok "the existing local file is untouched" || bad "existing.txt changed"
no_temps . && ok "a refused get leaves no temporary file" || bad "temporary files left: $(ls -a)"
expect 0 "get -f replaces" "$LOOM" get -f /hello.txt existing.txt
cmp -s existing.txt hello.txt && ok "get -f wrote the file" || bad "get -f content differs"
echo "other" >other.txt
expect 4 "put onto an existing remote file" "$LOOM" put other.txt /hello.txt
"$LOOM" cat /hello.txt >"$W/out" 2>&1
has "the remote file is untouched" "hello loom"
expect 0 "put -f replaces" "$LOOM" put -f other.txt /hello.txt
"$LOOM" cat /hello.txt >"$W/out" 2>&1
has "put -f wrote the file" "other"
expect 0 "get into a directory" "$LOOM" get /hello.txt adir/
cmp -s adir/hello.txt other.txt && ok "get DIR/ puts NAME inside" || bad "adir/hello.txt differs"

# ---- failed gets leave nothing ----------------------------------------------------------------
expect 3 "get of a missing file" "$LOOM" get /no/such/file got-missing
[ ! -e got-missing ] && ok "a failed get made no file" || bad "got-missing exists"
has "the error is in words with the path" "loom: get: loom:/no/such/file: no such file or directory"

head -c $((BIG_MIB << 20)) /dev/urandom >big.bin
HOLD_AT=$(((BIG_MIB << 20) / 4))
# hold_start NAME CMD...: runs CMD in the background with the hold seam at HOLD_AT bytes;
# returns 0 once the copy is blocked there, 1 if it ended first (its exit status goes to
# $W/NAME.rc, its pid to $W/NAME.pid).
hold_start() {
  local name=$1 i
  shift
  rm -f "$W/hold" "$W/hold.held" "$W/$name.rc" "$W/$name.pid"
  mkfifo "$W/hold"
  (
    LOOM_CLI_TEST_HOLD=$HOLD_AT:$W/hold "$@" >"$W/$name.out" 2>&1 &
    echo $! >"$W/$name.pid"
    wait $!
    echo $? >"$W/$name.rc"
  ) &
  hold_pid=$!
  # The copy creates hold.held, then opens the FIFO; a copy that fails first writes .rc.
  for i in $(seq 6000); do
    [ -e "$W/hold.held" ] && break
    [ -e "$W/$name.rc" ] && { bad "$name ended before it was halfway: exit $(cat "$W/$name.rc"): $(head -c 400 "$W/$name.out")"; return 1; }
    sleep 0.05
  done
  [ -e "$W/hold.held" ] || { bad "$name did not get halfway in 300 s"; return 1; }
  exec 9>"$W/hold"  # opens once the copy opens the FIFO for reading
}
hold_release() {
  exec 9>&- 2>/dev/null
  wait "$hold_pid"
}
hold_rc() { cat "$W/$1.rc"; }

expect 0 "mkdir /single" "$LOOM" mkdir /single
expect 0 "one mirror under /single" "$LOOM" policy set /single --mirrors 1
expect 0 "put a file with one copy" "$LOOM" put big.bin /single/big.bin
idx=$(ds_index_of "$(holder_port /single/big.bin)")
if [ -z "$idx" ]; then
  bad "no data server holds /single/big.bin: $("$LOOM" admin layout /single/big.bin 2>&1 | head -c 300)"
elif hold_start getfail "$LOOM" --retry-for 3 get /single/big.bin got-fail; then
  ctl kill-ds "$idx" >/dev/null
  hold_release
  rc=$(hold_rc getfail)
  [ "$rc" = 7 ] && ok "a get whose only data server died fails (exit 7)" || bad "get with its data server gone: exit $rc: $(cat "$W/getfail.out")"
  [ ! -e got-fail ] && no_temps . && ok "the failed get left no partial file" || bad "partial left: $(ls -a)"
  ctl start-ds "$idx" >/dev/null
fi

# SIGTERM (Ctrl-C is SIGINT, handled the same) in the middle of a get.
if hold_start getterm "$LOOM" get /single/big.bin got-term; then
  kill -TERM "$(cat "$W/getterm.pid")"
  hold_release
  rc=$(hold_rc getterm)
  [ "$rc" = 130 ] && ok "an interrupted get exits 130" || bad "interrupted get: exit $rc: $(cat "$W/getterm.out")"
  [ ! -e got-term ] && no_temps . && ok "the interrupted get left no partial file" || bad "partial left: $(ls -a)"
fi

# ---- a tree: 1,000 files and a big one, progress, checksum ---------------------------------------
mkdir -p tree/a tree/b/c
for i in $(seq 1 1000); do echo "small file $i" >"tree/$(( i % 2 == 0 ? 1 : 0 )).$i" ; done
mv tree/0.* tree/a/ 2>/dev/null; mv tree/1.* tree/b/c/ 2>/dev/null
cp big.bin tree/big.bin
expect 0 "cp -r -j 8 --progress --checksum TREE loom:/" "$LOOM" cp -r -j 8 --progress --checksum tree loom:/
tr '\r' '\n' <"$W/out" >"$W/progress"
grep -qE '^ *100\.0% [0-9.]+ [KMGT]?i?B / [0-9.]+ [KMGT]?i?B .*/s .*files 1001/1001' "$W/progress" &&
  ok "--progress shows percent, bytes, rate and files" || bad "no progress line: $(tail -c 400 "$W/progress")"
has "--checksum verified every file" "checksum: 1001 files verified (SHA-256)"
"$LOOM" du -s /tree >"$W/out" 2>&1
has "du -s counts the tree's bytes" "$(( (BIG_MIB << 20) + $(cat tree/a/* tree/b/c/* | wc -c) ))"
"$LOOM" ls -R /tree >"$W/out" 2>&1
[ "$(grep -c '^[01]\.' "$W/out")" = 1000 ] && ok "ls -R lists 1,000 small files" || bad "ls -R: $(grep -c '^[01]\.' "$W/out") names"
expect 0 "cp -r --checksum loom:/tree back" "$LOOM" cp -r -j 4 --checksum loom:/tree back
diff -r tree back >/dev/null && ok "the tree came back identical" || bad "tree and back differ"
expect 4 "cp -r onto existing files without -f" "$LOOM" cp -r loom:/tree/a back/
expect 0 "cp -r -f onto existing files" "$LOOM" cp -r -f loom:/tree/a back/

# ---- a data server dies in the middle of a mirrored copy ------------------------------------------
expect 0 "put a mirrored file" "$LOOM" put big.bin /mirrored.bin
"$LOOM" admin layout /mirrored.bin >"$W/out" 2>&1
has "the file has two mirrors" "mirrors 2"
idx=$(ds_index_of "$(holder_port /mirrored.bin 1)")
if [ -z "$idx" ]; then
  bad "no data server holds /mirrored.bin"
elif hold_start getkill "$LOOM" get --checksum /mirrored.bin got-mirrored; then
  ctl kill-ds "$idx" >/dev/null
  hold_release
  rc=$(hold_rc getkill)
  [ "$rc" = 0 ] && ok "get survives a mirror's data server SIGKILLed mid-copy" || bad "get with a mirror killed: exit $rc: $(cat "$W/getkill.out")"
  cmp -s got-mirrored big.bin && ok "and its bytes are right" || bad "got-mirrored differs"
  ctl start-ds "$idx" >/dev/null
fi

expect 0 "mkdir /pk" "$LOOM" mkdir /pk
if hold_start putkill "$LOOM" put --checksum big.bin /pk/big.bin; then
  tmp=$("$LOOM" ls -a /pk | grep 'loom-tmp' | head -n 1)
  [ -n "$tmp" ] && ok "a put in progress writes .NAME.loom-tmp-XXXXXX ($tmp)" || bad "no temporary name in /pk"
  idx=$(ds_index_of "$(holder_port "/pk/$tmp" 1)")
  [ -n "$idx" ] && ctl kill-ds "$idx" >/dev/null || bad "no data server holds /pk/$tmp"
  hold_release
  rc=$(hold_rc putkill)
  [ "$rc" = 0 ] && ok "put survives a mirror's data server SIGKILLed mid-copy" || bad "put with a mirror killed: exit $rc: $(cat "$W/putkill.out")"
  rm -f got-pk
  "$LOOM" get /pk/big.bin got-pk >/dev/null 2>&1
  cmp -s got-pk big.bin && ok "and the file reads back right" || bad "/pk/big.bin differs"
  "$LOOM" ls -a /pk >"$W/out" 2>&1
  grep -q 'loom-tmp' "$W/out" && bad "put left a temporary file: $(cat "$W/out")" || ok "no temporary file left in /pk"
  [ -n "$idx" ] && ctl start-ds "$idx" >/dev/null
fi

# ---- metadata server restart -----------------------------------------------------------------
expect 0 "restart loom-mds (SIGKILL, same state)" ctl restart-mds
expect 0 "ls right after the restart" "$LOOM" ls /
expect 0 "put right after the restart" "$LOOM" put hello.txt /after-restart.txt
expect 0 "get right after the restart" "$LOOM" get /after-restart.txt after-restart.txt
cmp -s after-restart.txt hello.txt && ok "the file put after the restart reads back" || bad "after-restart.txt differs"
if hold_start putrestart "$LOOM" put --checksum big.bin /across-restart.bin; then
  ctl restart-mds >/dev/null
  hold_release
  rc=$(hold_rc putrestart)
  [ "$rc" = 0 ] && ok "a put held across a metadata server restart completes" || bad "put across restart: exit $rc: $(cat "$W/putrestart.out")"
  "$LOOM" get /across-restart.bin across.bin >/dev/null 2>&1
  cmp -s across.bin big.bin && ok "and its bytes are right" || bad "across-restart.bin differs"
fi

# ---- namespace commands and exit statuses -----------------------------------------------------------
expect 0 "mkdir -p /x/y/z" "$LOOM" mkdir -p /x/y/z
expect 4 "mkdir of an existing directory" "$LOOM" mkdir /x
expect 0 "mkdir -p of an existing directory" "$LOOM" mkdir -p /x/y
expect 3 "stat of a missing path" "$LOOM" stat /x/nope
has "errors are in words, with the NFS name" "no such file or directory (NFS4ERR_NOENT)"
expect 0 "stat /hello.txt" "$LOOM" stat /hello.txt
grep -qE '^/hello.txt: type - mode 0[0-7]{3} links 1 owner [^ ]+ group [^ ]+ size 6 mtime [0-9]+' "$W/out" &&
  ok "stat keeps the line scripts parse" || bad "stat line: $(cat "$W/out")"
expect 0 "ls -l /" "$LOOM" ls -l /
grep -qE '^-rw.* 6 .* hello.txt$' "$W/out" && ok "ls -l shows mode, size, name" || bad "ls -l: $(cat "$W/out")"
expect 0 "mv a file" "$LOOM" mv /after-restart.txt /x/moved.txt
expect 3 "the old name is gone" "$LOOM" stat /after-restart.txt
expect 4 "mv onto an existing file" "$LOOM" mv /x/moved.txt /hello.txt
expect 0 "mv -f onto an existing file" "$LOOM" mv -f /x/moved.txt /hello.txt
expect 8 "rm of a directory without -r" "$LOOM" rm /x
expect 0 "rm -r" "$LOOM" rm -r /x
expect 3 "rm of a missing file" "$LOOM" rm /x
expect 0 "rm -f of a missing file" "$LOOM" rm -f /x
expect 2 "rm /" "$LOOM" rm -r /
expect 8 "cat of a directory" "$LOOM" cat /tree
expect 0 "df -h" "$LOOM" df -h
has "df names the file system" "loom:127.0.0.1:$PORT"
expect 0 "status" "$LOOM" status
has "status: healthy" "health: ok"
has "status lists the data servers" "data servers: 3 (3 up"
ctl kill-ds 2 >/dev/null
expect 10 "status with a data server down" "$LOOM" status
has "status says degraded" "health: degraded"
ctl start-ds 2 >/dev/null
expect 7 "an unreachable metadata server" "$LOOM" --mds 127.0.0.1:1 --retry-for 1 ls /
expect 0 "layout of a file" "$LOOM" layout /mirrored.bin
has "layout: the server's record" "mirrors 2"
has "layout: this client's layout" "client layout:"
if command -v setpriv >/dev/null && [ "$(id -u)" = 0 ]; then
  chmod 755 "$W" "$L"
  expect 5 "a write where the caller may not (uid 65534)" setpriv --reuid=65534 --regid=65534 --clear-groups \
    "$LOOM" mkdir /denied
fi

# ---- bench train: samples packed in record files ------------------------------------------------
# Two files of 250 resnet50 samples: a batch of 400 reads all of one file and the first 150
# samples of the other (ranges at offsets inside files), on Loom and on a local directory.
expect 0 "bench train --prepare, 250 samples per file" "$LOOM" bench train --prepare --workload resnet50 \
  --files 2 --samples-per-file 250 --dir /bt --json
has "prepare reports the samples per file" '"samples_per_file":250'
expect 0 "bench train on loom reads ranges of record files" "$LOOM" bench train --workload resnet50 \
  --files 2 --samples-per-file 250 --dir /bt --accelerators 1 --epochs 2 --json
has "bench train: two epochs, one batch each" '"batches":2'
has "bench train: no error" '"error":null'
expect 1 "bench train: files of another size are refused" "$LOOM" bench train --workload resnet50 \
  --files 2 --samples-per-file 251 --dir /bt --accelerators 1 --epochs 1
has "bench train: the wrong size is named" "holds 28675000 bytes"
expect 2 "bench train: fewer samples than a batch" "$LOOM" bench train --workload resnet50 \
  --files 1 --samples-per-file 250 --dir /bt
expect 0 "bench train --prepare on a local directory" "$LOOM" bench train --prepare --backend local \
  --workload resnet50 --files 2 --samples-per-file 250 --dir "$W/bt"
expect 0 "bench train on a local directory" "$LOOM" bench train --backend local --workload resnet50 \
  --files 2 --samples-per-file 250 --dir "$W/bt" --accelerators 2 --epochs 2 --json
has "bench train local: no error" '"error":null'

echo "cli-test: $pass passed, $fail failed"
[ $fail -eq 0 ]
