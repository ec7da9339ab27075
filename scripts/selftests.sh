#!/usr/bin/env bash
# Build the upstream arm64 KVM selftests of the kernel tree (TEST_GEN_PROGS_arm64, all of
# them) and ours from selftests/, static, against the tree's KVM selftest library.
# Nothing is written into the (shared, cached) source tree.
set -euo pipefail

usage() {
	cat <<USAGE
usage: $0 KERNEL_BUILD_DIR OUTPUT_DIR [USERSPACE_FROM]
  USERSPACE_FROM: an OUTPUT_DIR of another kernel build whose userspace selftests to reuse
  (they depend on the UAPI headers only, the same for every page size); only the test
  modules of selftests/kmod are then built for KERNEL_BUILD_DIR.
USAGE
}
[ $# -eq 2 ] || [ $# -eq 3 ] || { usage >&2; exit 2; }
kdir=$1 out=$2 from=${3:-}
top=$(cd "$(dirname "$0")/.." && pwd)
ksrc=$(readlink -f "$kdir/source")
kvm=$ksrc/tools/testing/selftests/kvm

common=(ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- KSRC="$ksrc"
	KHDR_INCLUDES="-isystem $kdir/hdr/include" EXTRA_CFLAGS=-static LDFLAGS=-static)

# Objects and their dependency files name the source tree they were built from: built
# from another (the series changed, and the old tree may be pruned), or from one not
# recorded, start afresh.
if [ "$(cat "$out/.ksrc" 2>/dev/null)" != "$ksrc" ]; then
	rm -rf "$out/kvm" "$out/gen" "$out/nptpool" "$out/kmod"
fi
mkdir -p "$out/kvm" "$out/gen/tools" "$out/nptpool"
echo "$ksrc" >"$out/.ksrc"
if [ -n "$from" ]; then
	[ -d "$from/kvm" ] && [ -d "$from/nptpool" ] ||
		{ echo "selftests: no selftests in $from" >&2; exit 1; }
	rm -rf "$out/kvm" "$out/nptpool"
	cp -al "$from/kvm" "$from/nptpool" "$out/"
else
	# abs_objdir keeps the generated sysreg headers out of the source tree.
	make -s -C "$kvm" -j"$(nproc)" "${common[@]}" OUTPUT="$out/kvm" abs_objdir="$out/gen" \
		>"$out/upstream-build.log" 2>&1 || {
		tail -n 30 "$out/upstream-build.log" >&2
		echo "selftests: upstream KVM selftests failed to build, log: $out/upstream-build.log" >&2
		exit 1
	}
	make -s -C "$top/selftests" -j"$(nproc)" "${common[@]}" KVM_OUT="$out/kvm" \
		GEN_HDRS="$out/gen/tools/arch/arm64/include/generated" OUTPUT="$out/nptpool"
fi
# The kernel-side test helpers (selftests/kmod), against the same kernel.
mkdir -p "$out/kmod"
make -s -C "$kdir" ARCH=arm64 LLVM=1 M="$top/selftests/kmod" MO="$out/kmod" modules
