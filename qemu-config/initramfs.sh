#!/usr/bin/env bash
# Pack the guest's initramfs without root: Debian's arm64 busybox, our init, nptpool.ko
# and the selftests, listed for the kernel's own usr/gen_init_cpio.  Left uncompressed:
# the guest would spend longer inflating it under emulation than QEMU spends loading it.
set -euo pipefail
shopt -s nullglob

[ $# -eq 2 ] || { echo "usage: $0 KERNEL_BUILD_DIR BUILD_DIR" >&2; exit 2; }
kdir=$1 b=$2
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
cache=${NPTPOOL_CACHE:-$HOME/.cache/nptpool}
. "$top/scripts/apt_lib.sh"

busybox=$cache/busybox-arm64/bin/busybox
if [ ! -x "$busybox" ]; then
	private_apt "$cache/apt-arm64" arm64 bookworm
	rm -rf "$cache/busybox-arm64" && mkdir -p "$cache/busybox-arm64"
	(cd "$cache/apt-arm64/archives" && apt-get -qq "${APT_OPTS[@]}" download busybox-static)
	dpkg-deb -x "$(ls "$cache"/apt-arm64/archives/busybox-static_*_arm64.deb | tail -n 1)" \
		"$cache/busybox-arm64.tmp"
	mv "$cache/busybox-arm64.tmp/bin" "$cache/busybox-arm64/" && rm -rf "$cache/busybox-arm64.tmp"
fi

# Strip debug info into a staging tree: the selftests are ~10x smaller without it.
stage=$b/initramfs-root
rm -rf "$stage" && mkdir -p "$stage"
(cd "$b/selftests" && find kvm nptpool -type f -perm -u+x ! -name '*.o' ! -name '*.d') |
	while read -r f; do
		mkdir -p "$stage/$(dirname "$f")"
		aarch64-linux-gnu-strip --strip-debug -o "$stage/$f" "$b/selftests/$f"
	done

list=$b/initramfs.list
{
	echo "dir /dev 0755 0 0"
	echo "nod /dev/console 0600 0 0 c 5 1"
	for d in bin sbin usr usr/bin usr/sbin proc sys tmp run root mnt selftests; do
		echo "dir /$d 0755 0 0"
	done
	echo "file /bin/busybox $busybox 0755 0 0"
	echo "file /init $here/init 0755 0 0"
	echo "file /nptpool.ko $b/module/nptpool.ko 0644 0 0"
	echo "dir /selftests/kmod 0755 0 0"
	for f in "$b"/selftests/kmod/*.ko; do
		echo "file /selftests/kmod/$(basename "$f") $f 0644 0 0"
	done
	for f in "$top"/selftests/*.sh "$top"/selftests/*.list; do
		echo "file /selftests/$(basename "$f") $f 0755 0 0"
	done
	(cd "$stage" && find kvm nptpool -mindepth 1 -type d | sort) |
		sed 's|.*|dir /selftests/& 0755 0 0|'
	(cd "$stage" && find kvm nptpool -type f | sort) |
		sed "s|.*|file /selftests/& $stage/& 0755 0 0|"
	echo "dir /selftests/kvm 0755 0 0"
	echo "dir /selftests/nptpool 0755 0 0"
} | sort -u -k2,2 | awk '{ print ($1 == "dir" ? 0 : 1), $0 }' | sort -s -n -k1,1 | cut -d' ' -f2- >"$list"

"$kdir/usr/gen_init_cpio" "$list" >"$b/initramfs.cpio.tmp"
mv "$b/initramfs.cpio.tmp" "$b/initramfs.cpio"
echo "initramfs: $b/initramfs.cpio ($(du -m "$b/initramfs.cpio" | cut -f1) MiB)"
