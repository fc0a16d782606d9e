#!/usr/bin/env bash
# Installs everything Loom needs to build, test and benchmark on Debian 12 (run as root, or
# with sudo available). Safe to run again: it installs only what is missing.
set -euo pipefail

PACKAGES=(
  # build
  build-essential cmake ninja-build python3 pkg-config libgtest-dev googletest
  # loom-mds metadata store, and the allocator loom-mds links (CMakeLists.txt: LOOM_JEMALLOC)
  librocksdb-dev libjemalloc-dev
  # fuzzing (libFuzzer ships with clang's runtime)
  clang libclang-rt-14-dev
  # real clients for interoperability tests and benchmarks
  libnfs-utils libnfs-dev
  # the Linux kernel NFS client, booted under qemu (tests/kernel-client)
  qemu-system-x86 busybox-static kmod cpio xz-utils
  # the peer server the benchmarks compare against
  nfs-ganesha nfs-ganesha-vfs rpcbind
  # the Python package (pybind11) and its PyTorch DataLoader tests (Debian's own python3)
  python3-dev pybind11-dev python3-torch python3-numpy python3-pytest
  # coverage reports (scripts/coverage.sh)
  gcovr
  # misc tools used by scripts
  procps psmisc ca-certificates
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# nfs-ganesha's package starts a service; Loom's scripts run their own instances.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet nfs-ganesha 2>/dev/null; then
  $SUDO systemctl stop nfs-ganesha || true
fi
echo "setup: all dependencies present"
