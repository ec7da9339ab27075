#!/usr/bin/env bash
# Install everything the build, the QEMU harness and the tests need on a Debian 12
# x86-64 machine, and return quickly when all of it is already there.
#
# The mirror is taken from the machine's own apt sources: no repository host is named here.
set -euo pipefail

usage() { echo "usage: $0   (no arguments; run as root, or with sudo available)"; }
[ $# -eq 0 ] || { usage; exit 2; }

SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
LLVM_BIN=/usr/lib/llvm-19/bin
. "$(dirname "$0")/apt_lib.sh"

APT_PKGS=(clang-19 lld-19 llvm-19 libclang-19-dev
	gcc-aarch64-linux-gnu libc6-dev-arm64-cross
	flex bison bc libelf-dev libssl-dev cpio rsync xz-utils zstd kmod
	make python3 gnuplot-nox)
BPO_PKGS=(qemu-system-arm)
BINDGEN_VERSION=0.73.2

missing_apt() {
	local p
	for p in "$@"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || echo "$p"
	done
}

need_update=
apt_update_once() {
	[ -n "$need_update" ] && return 0
	$SUDO apt-get update -qq
	need_update=done
}

add_backports() {
	local f=/etc/apt/sources.list.d/nptpool-bookworm-backports.sources uri
	[ -e "$f" ] && return 0
	grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/ && return 0
	uri=$(mirror_uri)
	[ -n "$uri" ] || { echo "deps: cannot find the Debian mirror in the apt sources" >&2; exit 1; }
	printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
		"$uri" | $SUDO tee "$f" >/dev/null
	need_update=
}

mapfile -t miss < <(missing_apt "${APT_PKGS[@]}")
mapfile -t miss_bpo < <(missing_apt "${BPO_PKGS[@]}")
# bookworm's own QEMU 7.2 is too old for -cpu max with nested virtualisation.
if [ ${#miss_bpo[@]} -eq 0 ] && ! qemu-system-aarch64 --version | grep -q 'version 1[0-9]\.'; then
	miss_bpo=("${BPO_PKGS[@]}")
fi

if [ ${#miss[@]} -gt 0 ] || [ ${#miss_bpo[@]} -gt 0 ]; then
	add_backports
	apt_update_once
	export DEBIAN_FRONTEND=noninteractive
	[ ${#miss[@]} -eq 0 ] || $SUDO apt-get install -y -qq --no-install-recommends "${miss[@]}"
	[ ${#miss_bpo[@]} -eq 0 ] ||
		$SUDO apt-get install -y -qq --no-install-recommends -t bookworm-backports "${miss_bpo[@]}"
fi

if ! rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
	rustup component add rust-src
fi

if ! command -v bindgen >/dev/null 2>&1; then
	LIBCLANG_PATH=/usr/lib/llvm-19/lib cargo install --locked --quiet \
		--version "$BINDGEN_VERSION" bindgen-cli
fi

# The host test crates' dependencies (proptest), at the versions in Cargo.lock, so the
# tests themselves run offline.
(cd "$(dirname "$0")/.." && cargo fetch --locked --quiet)

[ -x "$LLVM_BIN/clang" ] || { echo "deps: $LLVM_BIN/clang missing after install" >&2; exit 1; }
