#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# pool_exhaust.sh pud|pmd [GiB]: reload nptpool with a small region, run pool_test -m
# exhaust on it (its TAP is this script's), check that nothing leaked (lib.sh), and
# reload nptpool with its defaults.  With GiB, the VM's memslot is that large, far larger
# than the pool can map, and the guest touches it across its whole length.
. /selftests/lib.sh
case $1 in
pud) args="pud_pages=2" ;;
pmd) args="pmd_pages=16" ;;
*) echo "usage: $0 pud|pmd [GiB]" >&2; exit 2 ;;
esac
slot=${2:+-s $2}
reload $args || exit 1
# The test maps a multi-GiB memslot of untouched anonymous memory: no RAM behind it,
# but the heuristic overcommit check would refuse it in a 2 GiB test host.
old=$(cat /proc/sys/vm/overcommit_memory)
echo 1 >/proc/sys/vm/overcommit_memory
leak_baseline
# shellcheck disable=SC2086 # -s GiB, or nothing
/selftests/nptpool/pool_test -m exhaust -r "$1" $slot
rc=$?
echo "$old" >/proc/sys/vm/overcommit_memory
dmesg | grep 'region exhausted' | tail -n 1 | sed 's/^/# dmesg: /'
[ $rc -eq 0 ]
result $? "pool_test -m exhaust -r $1 $slot passed"
leak_check "exhausting the $1 region"
reload || exit 1
finish
