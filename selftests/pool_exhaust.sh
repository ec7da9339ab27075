#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# pool_exhaust.sh pud|pmd: reload nptpool with a small region, run pool_test -m exhaust
# on it (its TAP is this script's), and reload nptpool with its defaults.
case $1 in
pud) args="pud_pages=2" ;;
pmd) args="pmd_pages=16" ;;
*) echo "usage: $0 pud|pmd" >&2; exit 2 ;;
esac
rmmod nptpool 2>/dev/null
insmod /nptpool.ko $args || exit 1
# The test maps a multi-GiB memslot of untouched anonymous memory: no RAM behind it,
# but the heuristic overcommit check would refuse it in a 2 GiB test host.
old=$(cat /proc/sys/vm/overcommit_memory)
echo 1 >/proc/sys/vm/overcommit_memory
/selftests/nptpool/pool_test -m exhaust -r "$1"
rc=$?
echo "$old" >/proc/sys/vm/overcommit_memory
dmesg | grep 'region exhausted' | sed 's/^/# dmesg: /'
rmmod nptpool && insmod /nptpool.ko || exit 1
exit $rc
