#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# kunit_test: reload nptpool.ko so that its KUnit suite (nptpool_ptalloc) runs, and report
# the suite's test cases as TAP.  Fails if a case fails, if the suite did not run (KUnit
# off: the kernel needs kunit.enable=1), or if fewer cases reported than it planned.
# Needs no VM alive (it unloads the module); leaves the module loaded.
#
# usage: kunit_test.sh [KO]        (default KO: /nptpool.ko)

[ $# -le 1 ] || { echo "usage: $0 [KO]" >&2; exit 2; }
KO=${1:-/nptpool.ko}
SUITE=nptpool_ptalloc
. /selftests/test_host_lib.sh

if [ -e /sys/module/nptpool ]; then
	rmmod nptpool || { echo "# cannot unload nptpool to rerun its suite"; exit 1; }
fi
kmsg_mark
insmod "$KO" || { echo "# insmod $KO failed"; exit 1; }

# KTAP from the log: the suite's indented case lines and plan, timestamps removed.
ktap=$(kmsg_since | sed 's/^\[[ 0-9.]*\] //' |
	awk -v s="$SUITE" '$0 ~ "# Subtest: " s "$" { on = 1; next }
			   on && /^[^ ]/ { exit }
			   on { sub(/^    /, ""); print }')
if [ -z "$ktap" ]; then
	echo "# suite $SUITE did not run; kernel log:"
	kmsg_since | grep -i kunit | sed 's/^/# /'
	exit 1
fi
echo "$ktap" | grep -E '^(1\.\.[0-9]+|(not )?ok [0-9]+ )|^# '
plan=$(echo "$ktap" | sed -n 's/^1\.\.\([0-9]*\)$/\1/p' | head -n 1)
ran=$(echo "$ktap" | grep -cE '^(not )?ok [0-9]+ ')
[ -n "$plan" ] && [ "$ran" -eq "$plan" ] && ! echo "$ktap" | grep -q '^not ok'
