#!/usr/bin/env bash
# Pack Debian's arm64 perf (linux-perf, bookworm-backports, pinned) with the libraries it
# loads into BUILD_DIR/perf.cpio, which run-qemu.sh appends to the test host's initramfs
# when PERF=1: /usr/bin/perf, as on an arm64 Debian, to profile the host kernel (KVM,
# nptpool) while a test runs.  Never built here; cached by version in NPTPOOL_CACHE.
set -euo pipefail
shopt -s nullglob inherit_errexit

[ $# -eq 2 ] || { echo "usage: $0 KERNEL_BUILD_DIR BUILD_DIR   (after make initramfs)" >&2; exit 2; }
kdir=$1 b=$2
top=$(cd "$(dirname "$0")/.." && pwd)
cache=${NPTPOOL_CACHE:-$HOME/.cache/nptpool}
. "$top/scripts/apt_lib.sh"

# The version tested.  If the archive drops it, the newest backport is used, with a warning.
PERF_PKG=linux-perf
PERF_PIN=6.12.95-1~bpo12+1

gen_cpio=$kdir/usr/gen_init_cpio
[ -x "$gen_cpio" ] || { echo "perf: $gen_cpio missing: run make initramfs first" >&2; exit 1; }
perf=$(arm64_closure "$cache" perf-arm64 "$PERF_PKG" "$PERF_PIN" /usr/bin/perf)
echo "perf: $PERF_PKG $(cat "$perf/version"): $(du -sh "$perf" | cut -f1) with its libraries" >&2

closure_cpio_list "$perf" >"$b/perf.list"
"$gen_cpio" "$b/perf.list" >"$b/perf.cpio.tmp"
mv "$b/perf.cpio.tmp" "$b/perf.cpio"
echo "perf: $b/perf.cpio: $(du -sh "$b/perf.cpio" | cut -f1)" >&2
