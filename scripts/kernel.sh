#!/usr/bin/env bash
# Fetch Debian's linux-source-7.2, apply patches/*.patch, configure from a qemu-config/
# fragment and build Image + modules out of tree.  Everything lives in a cache outside the
# clone, keyed by what went into it, so a second run (even from a fresh clone) rebuilds
# nothing it need not.
#
# Prints the build directory on stdout as its last line.
set -euo pipefail

usage() {
	cat <<USAGE
usage: $0 FRAGMENT...         build (or reuse) the kernel configured by the FRAGMENTs,
                              later ones adding to earlier ones
       $0 --source            unpack and patch the source only, print its path

environment: NPTPOOL_CACHE (default ~/.cache/nptpool)
USAGE
}

# The pinned source.  If the archive no longer carries this version, the newest 7.2.y it
# does carry is used instead; apt checks that file against the signed index.
KVER_PKG=linux-source-7.2
KVER_PIN=7.2.13-1
KVER_PIN_SHA256=30a8c5fc63f9028a62e6d7b3f7f43bee67425dbce2a05fceba83f9b87c92083d
KSUITES=(sid trixie-backports)

top=$(cd "$(dirname "$0")/.." && pwd)
cache=${NPTPOOL_CACHE:-$HOME/.cache/nptpool}
export PATH=/usr/lib/llvm-19/bin:$HOME/.cargo/bin:$PATH
KMAKE=(make -s ARCH=arm64 LLVM=1)
BUILD_TARGETS="Image modules"

. "$top/scripts/apt_lib.sh"

log() { echo "kernel: $*" >&2; }
die() { echo "kernel: error: $*" >&2; exit 1; }

# Download the source package into the cache, through a private apt state.
fetch_deb() {
	local ver deb
	mkdir -p "$cache/dl"
	private_apt "$cache/apt" amd64 "${KSUITES[@]}"
	if apt-cache "${APT_OPTS[@]}" show "$KVER_PKG=$KVER_PIN" >/dev/null 2>&1; then
		ver=$KVER_PIN
	else
		ver=$(apt-cache "${APT_OPTS[@]}" madison "$KVER_PKG" | awk '{ print $3 }' |
			sort -V | tail -n 1)
		[ -n "$ver" ] || die "no $KVER_PKG in ${KSUITES[*]}"
		log "pinned $KVER_PIN is gone from the archive, falling back to $ver"
	fi
	(cd "$cache/dl" && apt-get -qq "${APT_OPTS[@]}" download "$KVER_PKG=$ver" >&2)
	deb=$(ls "$cache/dl/${KVER_PKG}_${ver//:/%3a}_all.deb")
	if [ "$ver" = "$KVER_PIN" ]; then
		echo "$KVER_PIN_SHA256  $deb" | sha256sum -c --quiet - >&2 ||
			die "sha256 mismatch for $deb"
	fi
	echo "$deb"
}

# The pinned .deb when it is already in the cache, else a fresh download.
deb_path() {
	local d=$cache/dl/${KVER_PKG}_${KVER_PIN}_all.deb
	if [ -e "$d" ] && echo "$KVER_PIN_SHA256  $d" | sha256sum -c --quiet - 2>/dev/null; then
		echo "$d"
	else
		fetch_deb
	fi
}

# Source trees are keyed by the pinned version and the series; a fallback version is
# recorded in the tree (.nptpool-deb) rather than in the key.
source_key() {
	{ echo "$KVER_PIN"; cat "$top"/patches/*.patch 2>/dev/null || true; } |
		sha256sum | cut -c1-12
}

# Unpack the pristine source and apply the series, in a directory keyed by version and
# series.  Builds never write into it (O= only).
prepare_source() {
	local src deb tmp p
	src=$cache/src-$(source_key)
	if [ ! -e "$src/.nptpool-ready" ]; then
		deb=$(deb_path)
		log "unpacking $(basename "$deb") and applying $(ls "$top"/patches/*.patch 2>/dev/null | wc -l) patches"
		rm -rf "$src" "$src.tmp"
		tmp=$src.tmp
		mkdir -p "$tmp/deb"
		dpkg-deb -x "$deb" "$tmp/deb"
		tar -C "$tmp" -xaf "$tmp"/deb/usr/src/linux-source-7.2.tar.*
		rm -rf "$tmp/deb"
		mv "$tmp"/linux-source-7.2 "$src"
		rmdir "$tmp"
		for p in "$top"/patches/*.patch; do
			[ -e "$p" ] || continue
			git -C "$src" apply --whitespace=nowarn "$p" ||
				die "$(basename "$p") does not apply to $(basename "$deb")"
		done
		basename "$deb" >"$src/.nptpool-deb"
		touch "$src/.nptpool-ready"
	fi
	echo "$src"
}

# Kconfig drops what a fragment asks for when a dependency is unmet, silently: make
# that loud.
# Only a symbol's last line counts: a later fragment may override an earlier one.
check_config() {
	local frag=$1 cfg=$2 line bad=0
	while IFS= read -r line; do
		case "$line" in
		CONFIG_*=*) grep -qxF "$line" "$cfg" || { log "config: $line did not stick"; bad=1; } ;;
		esac
	done < <(sed -n 's/^# \(CONFIG_[A-Za-z0-9_]*\) is not set$/\1=n/p; /^CONFIG_/p' "$frag" |
		awk -F= '{ last[$1] = $0; order[$1] = NR } END { for (k in last) print order[k], last[k] }' |
		sort -n | cut -d' ' -f2- | grep -v '=n$')
	[ $bad -eq 0 ] || die "the fragments ask for options Kconfig refused (unmet dependencies)"
}

build() {
	local frag src key out f targets
	for f in "$@"; do
		[ -f "$f" ] || die "no such fragment: $f"
	done
	src=$(prepare_source)
	# Keyed by what decides the result: source, fragments and how make is called.
	key=$({ echo "$src" "${KMAKE[*]}" "$BUILD_TARGETS"; cat "$@"; } | sha256sum | cut -c1-12)
	out=$cache/build-$(basename "${!#}" .config)-$key
	if [ ! -e "$out/.nptpool-ready" ]; then
		log "configuring $(basename -a "$@" | tr '\n' ' ')in $out"
		mkdir -p "$out"
		frag=$out/nptpool.fragment
		cat "$@" >"$frag"
		KCONFIG_ALLCONFIG=$frag "${KMAKE[@]}" -j"$(nproc)" -C "$src" O="$out" allnoconfig >&2
		check_config "$frag" "$out/.config"
		# A guest's kernel (guest.config) has no modules, and kbuild refuses to build them.
		targets=$BUILD_TARGETS
		grep -q '^CONFIG_MODULES=y' "$out/.config" || targets=Image
		log "building $targets (about 5 minutes on 2 cores)"
		"${KMAKE[@]}" -j"$(nproc)" -C "$src" O="$out" $targets >&2
		"${KMAKE[@]}" -C "$src" O="$out" headers_install INSTALL_HDR_PATH="$out/hdr" >&2
		touch "$out/.nptpool-ready"
		prune
	fi
	touch "$out"
	echo "$out"
}

# Keep the eight most recently used builds (three granules, the debug and guest kernels,
# patch work) and the sources they were built from; a source tree is ~1.6 GB, a build
# ~0.5 GB.
prune() {
	local d keep_src current
	current=$(readlink -f "$(prepare_source)")
	ls -1dt "$cache"/build-* 2>/dev/null | tail -n +9 | while read -r d; do rm -rf "$d"; done
	keep_src=$(for d in "$cache"/build-*/source; do readlink -f "$d"; done 2>/dev/null)
	for d in "$cache"/src-*; do
		[ -e "$d" ] || continue
		[ "$(readlink -f "$d")" = "$current" ] && continue
		echo "$keep_src" | grep -qxF "$(readlink -f "$d")" || rm -rf "$d"
	done
}

case "${1:-}" in
--source) prepare_source ;;
-h | --help) usage ;;
"") usage >&2; exit 2 ;;
*) build "$@" ;;
esac
