# SPDX-License-Identifier: GPL-2.0
# Sourced on the build machine by deps.sh, kernel.sh and the qemu-config/ packers: the
# Debian mirror, a private apt state for one-off downloads, and arm64 programs from Debian
# with the libraries they load.  (In the test host, the
# scripts source selftests/test_host_lib.sh instead.)

# The Debian mirror this machine already uses; no host is named in the repository.
mirror_uri() {
	local src=/etc/apt/sources.list.d/debian.sources
	if [ -r "$src" ]; then
		awk '/^URIs:/ { print $2; exit }' "$src"
	else
		awk '$1 == "deb" { print $2; exit }' /etc/apt/sources.list
	fi
}

# private_apt DIR ARCH SUITE...: set up an apt state of our own in DIR for one-off
# downloads, and fill the array APT_OPTS with the options that select it.  The machine's
# own sources, lists and package state are left alone.
private_apt() {
	local dir=$1 arch=$2 uri s
	shift 2
	uri=$(mirror_uri)
	[ -n "$uri" ] || { echo "cannot find the Debian mirror in the apt sources" >&2; return 1; }
	mkdir -p "$dir/lists/partial" "$dir/archives/partial"
	: >"$dir/sources.list"
	for s in "$@"; do
		echo "deb [arch=$arch signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri $s main" \
			>>"$dir/sources.list"
	done
	APT_OPTS=(-o "Dir::State::Lists=$dir/lists" -o "Dir::Etc::SourceList=$dir/sources.list"
		-o "Dir::Etc::SourceParts=/nonexistent" -o "Dir::Cache=$dir"
		-o "Dir::Cache::archives=$dir/archives" -o "Dir::State::status=/dev/null"
		-o "APT::Architecture=$arch" -o "APT::Architectures=$arch"
		-o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
	apt-get -qq "${APT_OPTS[@]}" update >&2
}

# closure_cpio_list DIR: gen_init_cpio lines installing the closure in DIR (arm64_closure)
# where an arm64 Debian has it: its program in /usr/bin, the dynamic loader in /lib, the
# libraries in /usr/lib/aarch64-linux-gnu, where the loader looks for them.
closure_cpio_list() {
	local dir=$1 d f
	for d in /lib /usr /usr/bin /usr/lib /usr/lib/aarch64-linux-gnu; do
		echo "dir $d 0755 0 0"
	done
	for f in "$dir"/bin/*; do
		echo "file /usr/bin/$(basename "$f") $f 0755 0 0"
	done
	echo "file /lib/ld-linux-aarch64.so.1 $dir/lib/ld-linux-aarch64.so.1 0755 0 0"
	for f in "$dir"/lib/*.so*; do
		[ "$(basename "$f")" = ld-linux-aarch64.so.1 ] && continue
		echo "file /usr/lib/aarch64-linux-gnu/$(basename "$f") $f 0644 0 0"
	done
}

# arm64_closure CACHE NAME PKG PIN BIN: Debian's arm64 package PKG at version PIN (from
# bookworm-backports or bookworm; if the archive dropped PIN, the newest bookworm-backports
# version, with a warning) and, of its whole dependency closure, only the program BIN
# and the shared libraries it loads: bin/BIN's name, lib/ with the dynamic loader,
# libgcc_s (glibc loads it itself) and the NEEDED closure.  Cached in CACHE/NAME-VERSION,
# which is printed.  Callers run with errexit inherited into $(...).
arm64_closure() {
	local cache=$1 name=$2 pkg=$3 pin=$4 bin=$5 ver dir n p c f
	local -a queue
	local -A seen
	dir=$cache/$name-${pin//[:~+]/_}
	[ -e "$dir/.nptpool-ready" ] && { echo "$dir"; return; }
	private_apt "$cache/apt-arm64-bpo" arm64 bookworm bookworm-backports
	if apt-cache "${APT_OPTS[@]}" show "$pkg=$pin" >/dev/null 2>&1; then
		ver=$pin
	else
		ver=$(apt-cache "${APT_OPTS[@]}" madison "$pkg" | awk '$6 ~ /backports/ { print $3 }' |
			sort -V | tail -n 1)
		[ -n "$ver" ] || { echo "no $pkg in bookworm-backports" >&2; return 1; }
		echo "pinned $pkg $pin is gone from the archive, falling back to $ver" >&2
	fi
	dir=$cache/$name-${ver//[:~+]/_}
	if [ ! -e "$dir/.nptpool-ready" ]; then
		echo "fetching Debian's arm64 $pkg $ver and its dependencies" >&2
		rm -rf "$dir" "$dir.tmp" && mkdir -p "$dir.tmp/debs" "$dir.tmp/root"
		# The whole dependency closure as apt resolves it for an empty system.
		apt-get -qq "${APT_OPTS[@]}" -o Dir::Cache::archives="$dir.tmp/debs" \
			--no-install-recommends -t bookworm-backports install --download-only -y \
			"$pkg=$ver" >&2
		for p in "$dir.tmp"/debs/*.deb; do
			dpkg-deb -x "$p" "$dir.tmp/root"
		done
		# Of that, only what the program loads: the NEEDED closure, breadth first.
		mkdir -p "$dir/bin" "$dir/lib"
		cp "$dir.tmp/root$bin" "$dir/bin/"
		queue=("$dir/bin/$(basename "$bin")")
		while [ ${#queue[@]} -gt 0 ]; do
			f=${queue[0]} && queue=("${queue[@]:1}")
			for n in $(aarch64-linux-gnu-readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p'); do
				[ -z "${seen[$n]:-}" ] || continue
				seen[$n]=1
				p=
				for c in "$dir.tmp"/root/{usr/,}lib/aarch64-linux-gnu/"$n"; do
					[ -e "$c" ] && p=$c && break
				done
				[ -n "$p" ] || { echo "$n, needed by $(basename "$f"), is in no package of $pkg's closure" >&2; return 1; }
				cp -L "$p" "$dir/lib/$n"
				queue+=("$dir/lib/$n")
			done
		done
		cp -L "$dir.tmp/root/lib/ld-linux-aarch64.so.1" "$dir/lib/"
		for c in "$dir.tmp"/root/{usr/,}lib/aarch64-linux-gnu/libgcc_s.so.1; do
			[ -e "$c" ] && cp -L "$c" "$dir/lib/"
		done
		[ -x "$dir/bin/$(basename "$bin")" ] && [ -e "$dir/lib/ld-linux-aarch64.so.1" ] &&
			[ -e "$dir/lib/libc.so.6" ] && [ -e "$dir/lib/libgcc_s.so.1" ] ||
			{ echo "the closure in $dir is incomplete" >&2; return 1; }
		echo "$ver" >"$dir/version"
		rm -rf "$dir.tmp"
		touch "$dir/.nptpool-ready"
	fi
	echo "$dir"
}
