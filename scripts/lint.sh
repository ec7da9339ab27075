#!/usr/bin/env bash
# Style gates of the kernel tree we build against: rustfmt with the kernel's
# .rustfmt.toml, and checkpatch.pl --strict on the C boundary and the KVM patch series.
# (clippy runs in every module build: the Makefile passes CLIPPY=1.)
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 KERNEL_BUILD_DIR" >&2; exit 2; }
ksrc=$(readlink -f "$1/source")
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
fail=0

# The crate root; rustfmt follows its `mod` items.
rustfmt --check --config-path "$ksrc/.rustfmt.toml" src/nptpool_main.rs || {
	echo "lint: rustfmt wants the changes above (run: rustfmt --config-path $ksrc/.rustfmt.toml src/nptpool_main.rs)"
	fail=1
}

cp=("$ksrc/scripts/checkpatch.pl" --strict --quiet --no-summary --root="$ksrc")
"${cp[@]}" --no-tree -f src/*.c src/*.h selftests/kmod/*.c || fail=1
shopt -s nullglob
patches=("$top"/patches/*.patch)
# From the kernel tree, as upstream runs it: inside our own git repository checkpatch
# takes a patch's context lines for added ones.
if [ ${#patches[@]} -gt 0 ]; then
	(cd "$ksrc" && "${cp[@]}" "${patches[@]}") || fail=1
fi

[ $fail -eq 0 ] && echo "lint: rustfmt, clippy and checkpatch --strict are clean"
exit $fail
