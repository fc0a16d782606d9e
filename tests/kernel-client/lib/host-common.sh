# Shared helpers for the kernel-client harness scripts (host side). Sourced, not run.
# Everything here must work on a fresh Debian 12 machine where we are root.

kc_log() { printf '%s: %s\n' "${KC_PROG:-kernel-client}" "$*" >&2; }
kc_die() { kc_log "error: $*"; exit 1; }
# A skip becomes a failure for kernels named in LOOM_REQUIRE_KERNEL (space-separated, e.g.
# "6.1"): CI sets it so a missing kernel cannot pass silently as "skipped".
kc_skip() {
    case " ${LOOM_REQUIRE_KERNEL:-} " in
        *" ${KC_KERNEL:-none} "*) kc_log "FAIL (required kernel ${KC_KERNEL}): $*"; exit 1 ;;
    esac
    kc_log "SKIP: $*"; exit 77
}

# kc_now: seconds since the epoch with millisecond precision, for timing lines.
kc_now() { date +%s.%3N; }
kc_elapsed() { awk -v a="$1" -v b="$(kc_now)" 'BEGIN { printf "%.1f", b - a }'; }

# kc_ensure_packages PKG...: install the Debian packages that are missing.
# Runs `apt-get update` only when something is missing. Returns non-zero when
# installation is impossible (not root, no network), so callers can skip.
kc_ensure_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        kc_log "missing packages (${missing[*]}) and not root: cannot install them"
        return 1
    fi
    kc_log "installing missing packages: ${missing[*]}"
    # Serialise with other harness runs; apt itself also takes its own locks.
    (
        flock -w 600 8 || exit 1
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2 &&
            apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
    ) 8>/tmp/loom-kc-apt.lock
}
