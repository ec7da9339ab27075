#!/usr/bin/env bash
# Pack what a real VM needs inside the test host into BUILD_DIR/vm.cpio, which
# run-qemu.sh appends to the test host's initramfs when VM=1:
#   /usr/bin/qemu-system-aarch64, /lib/ld-linux-aarch64.so.1, /usr/lib/aarch64-linux-gnu/
#       Debian's arm64 QEMU (bookworm-backports, pinned) and the closure of the shared
#       libraries it is linked against, where its dynamic loader looks for them
#   /vm/Image        the guest's kernel (qemu-config/guest.config, built by kernel.sh)
#   /vm/guest.cpio   the guest's initramfs: busybox, qemu-config/guest-init, guest_workload
# QEMU is never built here.  Its packages come through a private apt state and are cached
# with the closure in NPTPOOL_CACHE, keyed by version, as the kernel is.
set -euo pipefail
# The cache builders run in $(...): without this, a failed step there would not stop them
# and a broken closure would be marked ready.
shopt -s nullglob inherit_errexit

[ $# -eq 2 ] || { echo "usage: $0 KERNEL_BUILD_DIR BUILD_DIR   (after make initramfs)" >&2; exit 2; }
kdir=$1 b=$2
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
cache=${NPTPOOL_CACHE:-$HOME/.cache/nptpool}
. "$top/scripts/apt_lib.sh"

# The version tested, the same as the build machine's own QEMU.  If the archive no longer
# carries it, the newest bookworm-backports one is used and the fallback is logged.
QEMU_PKG=qemu-system-arm
QEMU_PIN=1:10.0.2+ds-2+deb13u1~bpo12+1
# Bumped when what the cached closure holds changes, so old caches are not reused.
LAYOUT=2

log() { echo "vm: $*" >&2; }
die() { echo "vm: error: $*" >&2; exit 1; }

busybox=$cache/busybox-arm64/bin/busybox
workload=$b/selftests/nptpool/guest_workload
gen_cpio=$kdir/usr/gen_init_cpio
for f in "$busybox" "$workload" "$gen_cpio"; do
	[ -x "$f" ] || die "$f missing: run make initramfs first"
done

vmm=$(arm64_closure "$cache" vmm-arm64-$LAYOUT "$QEMU_PKG" "$QEMU_PIN" /usr/bin/qemu-system-aarch64)
log "QEMU $(cat "$vmm/version"): $(du -sh "$vmm" | cut -f1) with its libraries"
gkdir=$("$top/scripts/kernel.sh" "$here/guest.config" | tail -n 1)

stage=$b/vm
rm -rf "$stage" && mkdir -p "$stage"
{
	echo "dir /dev 0755 0 0"
	echo "nod /dev/console 0600 0 0 c 5 1"
	for d in bin sbin usr usr/bin usr/sbin proc sys tmp; do
		echo "dir /$d 0755 0 0"
	done
	echo "file /bin/busybox $busybox 0755 0 0"
	echo "file /init $here/guest-init 0755 0 0"
	echo "file /bin/guest_workload $workload 0755 0 0"
} >"$stage/guest.list"
"$gen_cpio" "$stage/guest.list" >"$stage/guest.cpio"

{
	closure_cpio_list "$vmm"
	echo "dir /vm 0755 0 0"
	echo "file /vm/Image $gkdir/arch/arm64/boot/Image 0644 0 0"
	echo "file /vm/guest.cpio $stage/guest.cpio 0644 0 0"
	echo "file /vm/qemu-version $vmm/version 0644 0 0"
} >"$stage/vm.list"
"$gen_cpio" "$stage/vm.list" >"$b/vm.cpio.tmp"
mv "$b/vm.cpio.tmp" "$b/vm.cpio"
log "$b/vm.cpio: $(du -sh "$b/vm.cpio" | cut -f1)"
