#!/usr/bin/env bash
# Host-side tests (no QEMU, seconds): the allocator core (src/ptalloc.rs, the file the
# module compiles) under cargo test, its refinement checks against PTAllocSpec (spec/),
# the TAP counter behind `make check`'s summary, and make bench's report.
# Writes one TAP stream per suite to BUILD_DIR/check/host-*.tap and prints their summary.
set -uo pipefail

[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
top=$(cd "$(dirname "$0")/.." && pwd)
out=$1/check
mkdir -p "$out"
export CARGO_TARGET_DIR=$1/cargo

# cargo's "test NAME ... ok" lines as TAP, each named after its test binary; the plan
# comes last, so a build failure (no result, one failure line) cannot pass.
(cd "$top" && cargo test --workspace --locked --offline 2>&1) | tee "$out/host-cargo.log" |
	awk '/^ *Running / { bin = $NF; sub(/^\(.*\//, "", bin); sub(/-[0-9a-f]+\)$/, "", bin) }
	     /^test .* \.\.\. / { n++; line = $0; sub(/^test /, ""); sub(/ \.\.\. .*$/, "")
		if (line ~ / \.\.\. ok$/) print "ok " n " " bin "/" $0
		else if (line ~ / \.\.\. ignored/) print "ok " n " " bin "/" $0 " # SKIP ignored"
		else print "not ok " n " " bin "/" $0 }
	     /^error/ { n++; print "not ok " n " cargo: " $0 }
	     END { print "1.." (n ? n : 1) }' >"$out/host-cargo.tap"
grep -q '^ok' "$out/host-cargo.tap" || cat "$out/host-cargo.log" >&2

python3 "$top/scripts/test_tap_summary.py" 2>"$out/host-tap.err" >"$out/host-tap.tap" ||
	cat "$out/host-tap.err" >&2
python3 "$top/scripts/test_bench_report.py" 2>"$out/host-bench-report.err" \
	>"$out/host-bench-report.tap" || cat "$out/host-bench-report.err" >&2

grep -h '^not ok' "$out"/host-*.tap
python3 "$top/scripts/tap_summary.py" "$out"/host-*.tap
