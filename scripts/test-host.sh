#!/usr/bin/env bash
# Host-side tests (no QEMU, minutes when cold): the allocator core (src/ptalloc.rs, the
# file the module compiles) and its refinement checks against PTAllocSpec (spec/) under
# cargo test at each arm64 page size, the TAP counter behind `make check`'s summary, and
# make bench's report.
# Writes one TAP stream per suite to BUILD_DIR/check/host-*.tap and prints their summary.
set -uo pipefail

[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
top=$(cd "$(dirname "$0")/.." && pwd)
out=$1/check
mkdir -p "$out"
export CARGO_TARGET_DIR=$1/cargo

# cargo's "test NAME ... ok" lines as TAP, each named after its granule and test binary;
# the plan comes last, so a build failure (no result, one failure line) cannot pass.  The
# core and the spec model are built once per arm64 page size, with the cfg the kernel
# build sets, each in a target directory of its own so the three stay cached.
for granule in 4k 16k 64k; do
	case $granule in
	4k) cfg= ;;
	16k) cfg="--cfg CONFIG_ARM64_16K_PAGES" ;;
	64k) cfg="--cfg CONFIG_ARM64_64K_PAGES" ;;
	esac
	(cd "$top" && RUSTFLAGS="$cfg" CARGO_TARGET_DIR=$1/cargo-$granule \
		cargo test --workspace --locked --offline 2>&1) | tee "$out/host-cargo-$granule.log" |
		awk -v g="$granule" '
		     /^ *Running / { bin = $NF; sub(/^\(.*\//, "", bin); sub(/-[0-9a-f]+\)$/, "", bin) }
		     /^test .* \.\.\. / { n++; line = $0; sub(/^test /, ""); sub(/ \.\.\. .*$/, "")
			name = g "/" bin "/" $0
			if (line ~ / \.\.\. ok$/) print "ok " n " " name
			else if (line ~ / \.\.\. ignored/) print "ok " n " " name " # SKIP ignored"
			else print "not ok " n " " name }
		     /^error/ { n++; print "not ok " n " " g " cargo: " $0 }
		     END { print "1.." (n ? n : 1) }' >"$out/host-cargo-$granule.tap"
	grep -q '^ok' "$out/host-cargo-$granule.tap" || cat "$out/host-cargo-$granule.log" >&2
done
rm -f "$out/host-cargo.tap" "$out/host-cargo.log"

python3 "$top/scripts/test_tap_summary.py" 2>"$out/host-tap.err" >"$out/host-tap.tap" ||
	cat "$out/host-tap.err" >&2
python3 "$top/scripts/test_bench_report.py" 2>"$out/host-bench-report.err" \
	>"$out/host-bench-report.tap" || cat "$out/host-bench-report.err" >&2

grep -h '^not ok' "$out"/host-*.tap
python3 "$top/scripts/tap_summary.py" "$out"/host-*.tap
