#!/usr/bin/env bash
# `make check` after the module, lint and initramfs are built: host tests, harness tests,
# the guest selftest run; then one summary line over every TAP result collected.
set -uo pipefail

[ $# -eq 2 ] || { echo "usage: $0 KERNEL_BUILD_DIR BUILD_DIR" >&2; exit 2; }
kdir=$1 b=$2
top=$(cd "$(dirname "$0")/.." && pwd)
out=$b/check
rm -rf "$out" && mkdir -p "$out"

guest() { "$top/qemu-config/run-qemu.sh" "$kdir" "$b" "$@"; }
export GUEST_QUIET=1

echo "== host tests"
"$top/scripts/test-host.sh" "$b"

# Tests of the harness itself, as TAP: what `make guest` promises its users.
echo "== harness tests"
{
	echo "1..4"
	n=0
	result() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n harness/$2"; else echo "not ok $n harness/$2"; fi; }

	modinfo "$b/module/nptpool.ko" >"$out/modinfo.txt" 2>&1
	grep -q '^description:.*stage-2' "$out/modinfo.txt" && grep -q '^parm:.*pmd_pages' "$out/modinfo.txt" &&
		grep -q '^license:.*GPL' "$out/modinfo.txt"
	result $? "modinfo shows description, license and parameters"

	GUEST_LOG=$out/harness-status.log TIMEOUT=300 guest 'test -e /sys/module/nptpool && exit 3'
	rc=$?
	[ $rc -eq 3 ]
	result $? "guest status carried out of QEMU, module loaded (got $rc, want 3)"

	GUEST_LOG=$out/harness-nomodule.log TIMEOUT=300 NPTPOOL=0 guest 'test ! -e /sys/module/nptpool'
	result $? "NPTPOOL=0 boots without the module"

	start=$(date +%s)
	GUEST_LOG=$out/harness-crash.log TIMEOUT=300 guest 'echo c >/proc/sysrq-trigger; sleep 600' 2>/dev/null
	rc=$? took=$(($(date +%s) - start))
	[ $rc -eq 125 ] && [ $took -lt 200 ]
	result $? "guest crash fails promptly (exit $rc after ${took}s, want 125)"
} | tee "$out/harness.tap" | grep -v '^ok'

echo "== guest selftests (VHE host)"
GUEST_LOG=$out/guest-vhe.log TIMEOUT=${CHECK_TIMEOUT:-1800} SMP=2 MEM=2G HUGEPAGES=64 \
	guest /selftests/run_tests.sh
rc=$?
grep -E '^(not ok|ok) [0-9]+ ' "$out/guest-vhe.log" | grep -v '^ok' || true
[ $rc -eq 0 ] || echo "guest run exited $rc (log: $out/guest-vhe.log)"

echo "== summary"
python3 "$top/scripts/tap_summary.py" "$out"/host-*.tap "$out"/harness.tap "$out"/guest-*.log
