#!/bin/bash
# prepare.sh [6.1|7]: fetch a stock Debian kernel and build the test guest's initramfs.
#
#   6.1  linux-image-amd64 of this machine's suite (Debian 12 bookworm).
#   7    linux-image-amd64 of trixie-backports (the newest kernel Debian ships),
#        fetched with a private apt lists dir; the machine's apt sources are not touched.
#
# Nothing is installed: packages are fetched with `apt-get download` and unpacked
# with `dpkg -x`. Only the modules the guest needs are kept. Results live in
#   $LOOM_KCACHE/<flavor>/   (default LOOM_KCACHE=/var/cache/loom-kernel)
#     kernel/vmlinuz, kernel/lib/modules/KVER/...   the kernel and its module subset
#     initramfs.cpio.gz                              busybox, modules, nfsmount, locktest,
#                                                    posixtool, /init
#     guest.env                                      what run-guest.sh needs (KVER, qemu accel)
# A second run with everything cached takes well under a second. LOOM_KREFRESH=1
# fetches the kernel again (to pick up a newer one).
#
# Exit: 0 ready, 77 kernel unavailable (download failed: skip), 1 other errors.
set -euo pipefail

KC_PROG=prepare
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$HERE/lib/host-common.sh"
trap 'kc_log "unexpected failure (status $?) at line $LINENO: $BASH_COMMAND"' ERR

FLAVOR=${1:-${LOOM_KERNEL:-6.1}}
case "$FLAVOR" in
6.1 | 6) FLAVOR=6.1 ;;
7 | 7.x) FLAVOR=7 ;;
*) kc_die "unknown kernel flavor '$FLAVOR' (use 6.1 or 7)" ;;
esac

CACHE_ROOT=${LOOM_KCACHE:-/var/cache/loom-kernel}
CACHE=$CACHE_ROOT/$FLAVOR
# Bump when the module selection or cache layout changes: forces a new download.
KERNEL_LAYOUT=3
# The modules the guest loads at boot; their dependencies come along.
MODULES="virtio_pci virtio_net nfsv3 nfsv4 nfs_layout_flexfiles nfs_layout_nfsv41_files"

t_start=$(kc_now)
mkdir -p "$CACHE"
# One prepare per flavor at a time (parallel ctest runs share the cache).
exec 9>"$CACHE/.lock"
flock -w 900 9 || kc_die "timed out waiting for $CACHE/.lock"

kc_ensure_packages busybox-static kmod cpio gzip gcc libc6-dev xz-utils zstd ||
    kc_skip "cannot install the host packages needed to build the guest"

# debian_mirror: the URI of the Debian archive that this machine's own apt sources use for
# its release suite (bookworm here), from one-line sources (/etc/apt/sources.list,
# sources.list.d/*.list) and deb822 ones (sources.list.d/*.sources). No mirror is named in
# this repository: the machine's configuration decides. LOOM_DEBIAN_MIRROR overrides it.
debian_mirror() {
    if [ -n "${LOOM_DEBIAN_MIRROR:-}" ]; then echo "${LOOM_DEBIAN_MIRROR%/}"; return 0; fi
    local suite f
    suite=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
    [ -n "$suite" ] || suite=bookworm
    {
        for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
            [ -f "$f" ] || continue
            # deb [opt=val ...] URI SUITE COMPONENT...
            sed 's/#.*//' "$f" | awk -v s="$suite" '$1 == "deb" {
                i = 2
                if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                if ($(i + 1) == s) print $i }'
        done
        for f in /etc/apt/sources.list.d/*.sources; do
            [ -f "$f" ] || continue
            # deb822 stanzas, separated by blank lines: Types, URIs, Suites, Enabled.
            awk -v s="$suite" '
                function flush() { if (deb && on && has && uri != "") print uri; deb = 0; on = 1; has = 0; uri = "" }
                BEGIN { on = 1 }
                /^[ \t]*#/ { next }
                /^[ \t]*$/ { flush(); next }
                tolower($1) == "types:" { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
                tolower($1) == "uris:" { uri = $2 }
                tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == s) has = 1 }
                tolower($1) == "enabled:" { on = (tolower($2) != "no") }
                END { flush() }' "$f"
        done
    } | sed 's|/*$||' | awk 'NF && !n++ { print } END { exit !n }'  # the first, all input read
}

apt_opts=()
if [ "$FLAVOR" = 7 ]; then
    # A private apt configuration for trixie-backports: own sources (written by fetch_kernel),
    # lists and caches.
    A=$CACHE/apt
    mkdir -p "$A/lists/partial" "$A/cache/archives/partial"
    apt_opts=(-o "Dir::Etc::SourceList=$A/sources.list" -o Dir::Etc::SourceParts=/dev/null
        -o "Dir::State::Lists=$A/lists" -o "Dir::Cache=$A/cache"
        -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=" -o APT::Sandbox::User=root)
fi

# kernel_packages: print the package names that carry the kernel and its modules.
kernel_packages() {
    local img
    img=$(apt-cache "${apt_opts[@]}" depends linux-image-amd64 2>/dev/null |
        sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\).*/\1/p' | head -n 1)
    [ -n "$img" ] || return 1
    if [ "$FLAVOR" = 7 ]; then
        # The 7.x packaging splits the kernel: linux-image-V is a meta package over
        # linux-binary-V (vmlinuz), linux-modules-V and linux-base-V (modules.builtin,
        # modules.order, config). Take whatever of those it depends on.
        local deps
        deps=$(apt-cache "${apt_opts[@]}" depends "$img" 2>/dev/null |
            sed -n 's/^ *Depends: \(linux-\(binary\|modules\|base\)-[0-9][^ ]*\).*/\1/p' | sort -u)
        [ -n "$deps" ] && { echo "$deps"; return 0; }
    fi
    echo "$img"
}

fetch_kernel() {
    local pkgs dl
    if [ "$FLAVOR" = 7 ]; then
        # The mirror is the one this machine's apt sources use for its own Debian release.
        local mirror
        mirror=$(debian_mirror) || {
            kc_log "no Debian archive for this machine's release suite in its apt sources (set LOOM_DEBIAN_MIRROR)"
            return 1
        }
        printf 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] %s trixie-backports main\n' \
            "$mirror" >"$A/sources.list"
        kc_log "updating the private trixie-backports package lists (from $mirror, the archive of this machine's apt sources)"
        timeout 300 apt-get "${apt_opts[@]}" -qq update >&2 || return 1
    fi
    if ! pkgs=$(kernel_packages); then
        [ "$FLAVOR" = 6.1 ] || return 1
        kc_log "no linux-image-amd64 in the apt lists; running apt-get update"
        timeout 300 apt-get -qq update >&2 || return 1
        pkgs=$(kernel_packages) || return 1
    fi
    if [ "$FLAVOR" = 6.1 ] && ! grep -q '^linux-image-6\.1\.' <<<"$pkgs"; then
        kc_log "linux-image-amd64 here is not a 6.1 kernel: $pkgs"
        return 1
    fi
    kc_log "downloading $(echo $pkgs)"
    dl=$(mktemp -d "$CACHE/dl.XXXXXX")
    # _apt cannot write to our dir; download unsandboxed (we are root anyway).
    (cd "$dl" && timeout 600 apt-get "${apt_opts[@]}" -o APT::Sandbox::User=root -qq download $pkgs >&2) ||
        { rm -rf "$dl"; return 1; }
    local deb
    for deb in "$dl"/*.deb; do dpkg -x "$deb" "$dl/root"; done
    extract_kernel "$dl/root" "$(cd "$dl" && ls *.deb | tr '\n' ' ')" || { rm -rf "$dl"; return 1; }
    rm -rf "$dl"
}

# extract_kernel ROOT DEBS: keep vmlinuz and the module subset in $CACHE/kernel.
extract_kernel() {
    local root=$1 debs=$2 moddir kver vmlinuz base new
    moddir=$(ls -d "$root"/lib/modules/*/ "$root"/usr/lib/modules/*/ 2>/dev/null | head -n 1)
    [ -n "$moddir" ] || { kc_log "no lib/modules in the kernel packages"; return 1; }
    kver=$(basename "$moddir")
    base=${moddir%/lib/modules/*}  # depmod -b BASE wants BASE/lib/modules/KVER
    vmlinuz=$(ls "$root/boot/vmlinuz-$kver" "$moddir/vmlinuz" 2>/dev/null | head -n 1)
    [ -n "$vmlinuz" ] || { kc_log "no vmlinuz for $kver"; return 1; }
    depmod -b "$base" "$kver" || return 1

    new=$CACHE/kernel.new
    rm -rf "$new"
    mkdir -p "$new/lib/modules/$kver"
    cp "$vmlinuz" "$new/vmlinuz"
    # The kernel's config, to look up what the client supports (READ_PLUS, ...).
    cp "$(ls "$root/boot/config-$kver" "$moddir/config" 2>/dev/null | head -n 1)" "$new/config" 2>/dev/null || true
    local f
    for f in modules.builtin modules.builtin.modinfo modules.order; do
        [ -f "$moddir/$f" ] && cp "$moddir/$f" "$new/lib/modules/$kver/"
    done
    # The dependency closure of $MODULES, decompressed (busybox insmod reads plain .ko only).
    local path rel
    modprobe -a -d "$base" -S "$kver" --show-depends $MODULES | awk '$1 == "insmod" { print $2 }' |
        while read -r path; do
            rel=${path#"$moddir"}
            rel=${rel%.xz}; rel=${rel%.zst}; rel=${rel%.gz}
            mkdir -p "$new/lib/modules/$kver/$(dirname "$rel")"
            case "$path" in
            *.ko.xz) xz -dc "$path" >"$new/lib/modules/$kver/$rel" ;;
            *.ko.zst) zstd -qdc "$path" >"$new/lib/modules/$kver/$rel" ;;
            *.ko.gz) gzip -dc "$path" >"$new/lib/modules/$kver/$rel" ;;
            *) cp "$path" "$new/lib/modules/$kver/$rel" ;;
            esac
        done
    # modules.order names .ko.xz files; make it match what we ship.
    [ -f "$new/lib/modules/$kver/modules.order" ] &&
        sed -i 's/\.ko\.\(xz\|zst\|gz\)$/.ko/' "$new/lib/modules/$kver/modules.order"
    depmod -b "$new" "$kver" || return 1
    cat >"$new/kernel.info" <<EOF
KVER=$kver
KERNEL_LAYOUT=$KERNEL_LAYOUT
MODULES="$MODULES"
DEBS="$debs"
EOF
    rm -rf "$CACHE/kernel"
    mv "$new" "$CACHE/kernel"
    kc_log "kernel $kver cached in $CACHE/kernel ($(du -sh "$CACHE/kernel" | cut -f1))"
}

kernel_ok() {
    [ -f "$CACHE/kernel/kernel.info" ] && [ -f "$CACHE/kernel/vmlinuz" ] &&
        grep -qx "KERNEL_LAYOUT=$KERNEL_LAYOUT" "$CACHE/kernel/kernel.info" &&
        grep -qx "MODULES=\"$MODULES\"" "$CACHE/kernel/kernel.info"
}

if [ "${LOOM_KREFRESH:-0}" = 1 ] || ! kernel_ok; then
    if ! fetch_kernel; then
        if [ "$FLAVOR" = 7 ]; then
            kc_skip "could not download the 7.x kernel from trixie-backports (no network or mirror? see messages above); the 7.x client tests are skipped"
        fi
        kc_skip "could not download the Debian 6.1 kernel (linux-image-amd64); kernel-client tests are skipped"
    fi
fi
. "$CACHE/kernel/kernel.info"

# ---- the initramfs -----------------------------------------------------------
# Rebuilt when any input changes (this script, /init, the helper library, nfsmount.c,
# locktest.c, busybox, the kernel). The per-test script is NOT part of it: run-guest.sh appends
# it as a second cpio archive, so changing a test never rebuilds this.
inputs_hash=$( {
    echo "$KVER $KERNEL_LAYOUT $MODULES"
    cat "$HERE/prepare.sh" "$HERE/initramfs/init" "$HERE/initramfs/loom-guest.sh" "$HERE/initramfs/nfsmount.c" \
        "$HERE/initramfs/locktest.c" "$HERE/initramfs/posixtool.c"
    sha256sum /bin/busybox
} | sha256sum | cut -d' ' -f1)

if [ -f "$CACHE/initramfs.cpio.gz" ] && [ "$(cat "$CACHE/initramfs.stamp" 2>/dev/null)" = "$inputs_hash" ]; then
    kc_log "kernel $KVER and initramfs are cached in $CACHE ($(kc_elapsed "$t_start")s)"
    exit 0
fi

kc_log "building the initramfs for $KVER"
stage=$(mktemp -d "$CACHE/stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,lib,etc,dev,proc,sys,tmp,run,mnt,root}
cp /bin/busybox "$stage/bin/busybox"
busybox --list-full | while read -r applet; do
    [ -e "$stage/$applet" ] || ln -s /bin/busybox "$stage/$applet"
done
# The kernel's built-in initramfs provides /dev/console too; this is a fallback.
mknod -m 600 "$stage/dev/console" c 5 1 2>/dev/null || true
gcc -static -Os -s -Wall -o "$stage/bin/nfsmount" "$HERE/initramfs/nfsmount.c"
gcc -static -Os -s -Wall -o "$stage/bin/locktest" "$HERE/initramfs/locktest.c"
gcc -static -Os -s -Wall -o "$stage/bin/posixtool" "$HERE/initramfs/posixtool.c"
install -m 755 "$HERE/initramfs/init" "$stage/init"
install -m 644 "$HERE/initramfs/loom-guest.sh" "$stage/lib/loom-guest.sh"
mkdir -p "$stage/lib/modules"
cp -a "$CACHE/kernel/lib/modules/$KVER" "$stage/lib/modules/"
# Load order for /init, resolved on the host (busybox modprobe is kept for on-demand loads).
modprobe -a -d "$stage" -S "$KVER" --show-depends $MODULES | awk '$1 == "insmod" { print $2 }' |
    sed "s|^$stage||" | awk '!seen[$0]++' >"$stage/etc/loom-modules"
[ -s "$stage/etc/loom-modules" ] || kc_die "could not resolve the module load order"
echo "loom-kc-$FLAVOR" >"$stage/etc/hostname"

(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
    gzip -1 >"$CACHE/initramfs.cpio.gz.new"
mv "$CACHE/initramfs.cpio.gz.new" "$CACHE/initramfs.cpio.gz"

case "$FLAVOR" in
# The 7.x kernel oopses under multi-threaded TCG (int3 in patched kernel text).
7) accel="tcg,thread=single" ;;
*) accel="tcg" ;;
esac
cat >"$CACHE/guest.env" <<EOF
KVER=$KVER
VMLINUZ=$CACHE/kernel/vmlinuz
INITRD=$CACHE/initramfs.cpio.gz
QEMU_ACCEL=$accel
EOF
echo "$inputs_hash" >"$CACHE/initramfs.stamp"
kc_log "kernel $KVER ready in $CACHE: modules $(echo $(sed 's|.*/||; s|\.ko$||' "$stage/etc/loom-modules")); initramfs $(du -h "$CACHE/initramfs.cpio.gz" | cut -f1) ($(kc_elapsed "$t_start")s)"
