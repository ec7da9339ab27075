# SPDX-License-Identifier: GPL-2.0
# Sourced on the build machine by deps.sh, kernel.sh and qemu-config/initramfs.sh: the
# Debian mirror and a private apt state for one-off downloads.  (In the test host, the
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
