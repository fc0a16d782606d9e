# shellcheck shell=bash
# Host-side checks that a guest asks for with "HOSTCHECK ..." lines on its console, evaluated
# by kernel-client-test.sh (--server loom-mds) after the guest has finished, against the
# directory of scripts/loom-cluster.sh (the counters its servers write every second, and the
# data files of its data servers). Sourced, not run.
#
# One check per line; N is a decimal integer, CMP one of == != < <= > >=:
#   HOSTCHECK mds-op OP [FIELD] CMP N    loom-mds counter "nfs4.op.OP" or "nfs4.op.OP_OP" (e.g.
#                                        READ, LAYOUTGET: counted inside every COMPOUND)
#   HOSTCHECK mds KEY [FIELD] CMP N      any loom-mds counter (e.g. nfs4.COMPOUND)
#   HOSTCHECK ds KEY [FIELD] CMP N       a loom-ds counter (e.g. nfs3.WRITE), summed over all
#                                        data servers
#   HOSTCHECK dsI KEY [FIELD] CMP N      the same for data server I only
#       FIELD: calls (default), errors, bytes_in, bytes_out. A missing counter is 0. Data
#       servers count over all their runs (loom-cluster.sh keeps the counters of a killed one
#       as dsI.stats.json.K); loom-mds counts since its last start.
#   HOSTCHECK ds-bytes-read CMP N        bytes of NFSv3 READ replies of all data servers
#   HOSTCHECK ds-bytes-written CMP N     bytes of NFSv3 WRITE calls to all data servers
#   HOSTCHECK ds-bytes-total CMP N       both (RPC message bytes: a little more than the data)
#   HOSTCHECK ds-copies SHA256 CMP N     how many data servers hold a data file with exactly
#                                        these bytes (mirrors: every copy the same)
#   HOSTCHECK ds-io-errors CMP N         errors (any NFSv3 status but OK) of READ, WRITE and
#                                        COMMIT on all data servers (fencing: ACCES)
#   HOSTCHECK data-files INO CMP N       data files of inode INO on all data servers (moves:
#                                        the old ones removed)
#   HOSTCHECK stripes INO SIZE UNIT COUNT SHA256
#       file INO (the guest's stat -c %i) is striped over COUNT data servers: its data files
#       (loom/<fs>/<INO as 16 hex digits>*) are on COUNT data servers, one each; each holds
#       SIZE/COUNT bytes give or take UNIT; put back together stripe unit by stripe unit,
#       round robin, they are the file (SHA256). The data-server order and where a stripe
#       unit sits in its data file (at its file offset: sparse; or packed: dense) are found
#       by trying them.
# Prints one line per check ("host check: PASS|FAIL ...") on stderr; returns the number of
# failures (capped at 100).

# hc_stat FILE KEY FIELD: the value of one counter in a stats file (0 if missing).
hc_stat() {
    local v
    v=$(grep -o "\"${2//./\\.}\":{[^}]*}" "$1" 2>/dev/null | grep -o "\"$3\":[0-9]*" | head -n 1 | cut -d: -f2 || true)
    echo "${v:-0}"
}

# hc_ds_files I: the stats files of data server I, every run.
hc_ds_files() { ls "$HC_DIR/ds$1.stats.json" "$HC_DIR/ds$1.stats.json".* 2>/dev/null || true; }

# hc_ds_sum WHICH KEY FIELD: WHICH is "ds" (all) or "dsI".
hc_ds_sum() {
    local i f total=0 list
    if [ "$1" = ds ]; then list=$(seq 0 $((HC_NDS - 1))); else list=${1#ds}; fi
    for i in $list; do
        for f in $(hc_ds_files "$i"); do total=$((total + $(hc_stat "$f" "$2" "$3"))); done
    done
    echo "$total"
}

hc_cmp() {
    awk -v a="$1" -v op="$2" -v b="$3" 'BEGIN {
        a += 0; b += 0; r = -1
        if (op == "==") r = (a == b); else if (op == "!=") r = (a != b)
        else if (op == "<") r = (a < b); else if (op == "<=") r = (a <= b)
        else if (op == ">") r = (a > b); else if (op == ">=") r = (a >= b)
        exit (r == 1) ? 0 : 1 }'
}

# hc_data_files INO I: the data files of INO on data server I.
hc_data_files() {
    local hex
    hex=$(printf '%016x' "$1")
    find "$HC_DIR/ds$2/loom" -mindepth 2 -maxdepth 2 -type f -name "$hex*" 2>/dev/null | grep -v '/lost+found/' || true
}

# hc_perms N: every permutation of 0..N-1, one per line ("0 1 2").
hc_perms() {
    local n=$1
    _hc_perm() {
        local prefix=$1 rest=$2 x
        if [ -z "$rest" ]; then echo "${prefix# }"; return; fi
        for x in $rest; do _hc_perm "$prefix $x" "$(echo " $rest " | sed "s/ $x / /" | xargs)"; done
    }
    _hc_perm "" "$(seq -s ' ' 0 $((n - 1)))"
}

# hc_stripes INO SIZE UNIT COUNT SHA256 -> 0 when the data files hold the file as stripes.
hc_stripes() {
    local ino=$1 size=$2 unit=$3 count=$4 want=$5 i f files=() holders=0 held expect per perm k n
    local packing order sum
    for i in $(seq 0 $((HC_NDS - 1))); do
        mapfile -t f < <(hc_data_files "$ino" "$i")
        [ ${#f[@]} -eq 0 ] && continue
        if [ ${#f[@]} -gt 1 ]; then HC_WHY="data server $i holds ${#f[@]} data files of inode $ino: ${f[*]}"; return 1; fi
        files+=("${f[0]}")
        holders=$((holders + 1))
    done
    if [ "$holders" -ne "$count" ]; then
        HC_WHY="$holders data servers hold a data file of inode $ino ($(printf '%016x' "$ino")*), want $count: ${files[*]:-none}"
        return 1
    fi
    expect=$((size / count))
    per=""
    for f in "${files[@]}"; do
        # What the data file holds: its allocated bytes, at most its size (holes hold nothing).
        held=$(stat -c '%s %b %B' "$f" | awk '{ a = $2 * $3; print (a < $1) ? a : $1 }')
        per="$per $(basename "$(dirname "$(dirname "$(dirname "$f")")")")=$held"
        if [ $((held > expect ? held - expect : expect - held)) -gt $((unit + 65536)) ]; then
            HC_WHY="$f holds $held bytes, want $expect +- $unit (stripe unit);$per"
            return 1
        fi
    done
    n=$(((size + unit - 1) / unit))
    for packing in dense sparse; do
        while read -r perm; do
            read -r -a order <<<"$perm"
            sum=$(for ((k = 0; k < n; k++)); do
                f=${files[${order[$((k % count))]}]}
                if [ $packing = dense ]; then
                    dd if="$f" bs="$unit" skip=$((k / count)) count=1 2>/dev/null
                else
                    dd if="$f" bs="$unit" skip="$k" count=1 2>/dev/null
                fi
            done | head -c "$size" | sha256sum | cut -d' ' -f1 || true)
            if [ "$sum" = "$want" ]; then
                HC_WHY="inode $ino: $count data files, $packing stripes of $unit bytes, data-server order $perm;$per"
                return 0
            fi
        done < <(hc_perms "$count")
    done
    HC_WHY="the data files of inode $ino put back together (dense or sparse, any order) are not the file (sha256 $want);$per"
    return 1
}

# hc_copies SHA256: the number of data servers holding a data file with these bytes.
hc_copies() {
    local i n=0 sums
    for i in $(seq 0 $((HC_NDS - 1))); do
        # (A file may vanish under find: loom-mds removes deleted files' data in the background.)
        sums=$(find "$HC_DIR/ds$i/loom" -mindepth 2 -maxdepth 2 -type f 2>/dev/null | grep -v '/lost+found/' |
            xargs -r sha256sum 2>/dev/null | cut -d' ' -f1 || true)
        grep -qx "$1" <<<"$sums" && n=$((n + 1))
    done
    echo $n
}

# hc_metric METRIC [KEY [FIELD]]: the value of a numeric HOSTCHECK metric now (HC_DIR, HC_NDS
# set); status 1 for an unknown metric. Also the host action "counter" (kernel-client-test.sh).
hc_metric() {
    local field=${3:-calls} key=${2:-} k got
    case "${1:-}" in
    mds-op)
        # "nfs4.op.READ" (docs) or "nfs4.op.OP_READ" (the RFC's enum name), whichever is there.
        if grep -q "\"nfs4\.op\.OP_$key\":" "$HC_DIR/mds.stats.json" 2>/dev/null; then key=OP_$key; fi
        got=$(hc_stat "$HC_DIR/mds.stats.json" "nfs4.op.$key" "$field") ;;
    mds) got=$(hc_stat "$HC_DIR/mds.stats.json" "$key" "$field") ;;
    ds | ds[0-9]*) got=$(hc_ds_sum "$1" "$key" "$field") ;;
    ds-bytes-read) got=$(hc_ds_sum ds nfs3.READ bytes_out) ;;
    ds-bytes-written) got=$(hc_ds_sum ds nfs3.WRITE bytes_in) ;;
    ds-bytes-total) got=$(($(hc_ds_sum ds nfs3.READ bytes_out) + $(hc_ds_sum ds nfs3.WRITE bytes_in))) ;;
    ds-copies) got=$(hc_copies "$key") ;;
    ds-io-errors) got=$(($(hc_ds_sum ds nfs3.READ errors) + $(hc_ds_sum ds nfs3.WRITE errors) + $(hc_ds_sum ds nfs3.COMMIT errors))) ;;
    data-files)
        got=0
        for ((k = 0; k < HC_NDS; k++)); do got=$((got + $(hc_data_files "$key" "$k" | grep -c . || true))); done ;;
    *) return 1 ;;
    esac
    echo "$got"
}

# hostcheck_run GUESTLOG CLUSTERDIR NDS: run every HOSTCHECK line of the guest's log.
hostcheck_run() {
    local log=$1 line w cmp want got what bad=0 n=0
    HC_DIR=$2 HC_NDS=$3
    while read -r line; do
        read -r -a w <<<"${line#HOSTCHECK }"
        n=$((n + 1))
        HC_WHY=
        if [ "${w[0]:-}" = stripes ]; then
            if [ ${#w[@]} -eq 6 ] && hc_stripes "${w[1]}" "${w[2]}" "${w[3]}" "${w[4]}" "${w[5]}"; then
                kc_log "host check: PASS stripes: $HC_WHY"
            else
                kc_log "host check: FAIL '$line': ${HC_WHY:-wrong number of words}"
                bad=$((bad + 1))
            fi
            continue
        fi
        # Numeric checks: METRIC... CMP N.
        if [ ${#w[@]} -lt 3 ]; then kc_log "host check: FAIL: cannot parse '$line'"; bad=$((bad + 1)); continue; fi
        cmp=${w[${#w[@]} - 2]} want=${w[${#w[@]} - 1]}
        what=("${w[@]:0:${#w[@]}-2}")
        got=$(hc_metric "${what[@]}") || { kc_log "host check: FAIL: unknown metric in '$line'"; bad=$((bad + 1)); continue; }
        if [[ "$want" =~ ^[0-9]+$ ]] && hc_cmp "$got" "$cmp" "$want"; then
            kc_log "host check: PASS ${what[*]} = $got ($cmp $want)"
        else
            kc_log "host check: FAIL ${what[*]} = $got, want $cmp $want"
            bad=$((bad + 1))
        fi
    done < <(tr -d '\r' <"$log" | grep -a '^HOSTCHECK ')
    [ $n -gt 0 ] && kc_log "host check: $((n - bad)) of $n HOSTCHECK lines hold"
    [ $bad -gt 100 ] && bad=100
    return $bad
}
