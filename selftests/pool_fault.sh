#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# pool_fault.sh SCENARIO: one fault scenario of pool_fault_test, with nptpool loaded with
# the parameters it needs, then the leak check (lib.sh); nptpool is left loaded with its
# defaults.  The scenario's own TAP and the leak check's are this script's.
#
#   inject   the pool's reservation fails (fault injection; SKIP without it)
#   failnth  every allocation of VM creation fails in turn (fault injection; SKIP without;
#            pmd_pages=64)
#   split    the pmd region runs out during dirty-logging block splits (pmd_pages=16)
#   eager    ... during eager splitting, in the ioctl that enables dirty logging
#   kill     VMMs SIGKILLed while 4 vCPUs fault (pmd_pages=300)
#   close    VMMs close their VM's fds while 4 vCPUs fault (pmd_pages=300)
#   storm    VMs of 4 vCPUs created and destroyed by 4 processes for 30 s
#            (pmd_pages=64)
#   frag     100 VMs one after another leave the host 90% of its free 4 MiB blocks
. /selftests/lib.sh
T=/selftests/nptpool/pool_fault_test

params=
case $1 in
inject) args="-m inject" ;;
split) args="-m split" params="pmd_pages=16" ;;
eager) args="-m split -e" params="pmd_pages=16" ;;
# Pools below 4 MiB (order 10) where the scenario is not about the pool's size: their
# outcome must not hang on the host's supply of 4 MiB blocks, which frag tests.
failnth) args="-m failnth -r 1" params="pmd_pages=64" ;;
kill) args="-m kill -r 6 -v 4" params="pmd_pages=300" ;;
close) args="-m kill -k close -r 6 -v 4" params="pmd_pages=300" ;;
storm) args="-m storm -p 4 -v 4 -t 30" params="pmd_pages=64" ;;
frag) args="-m frag -c 100" ;;
*) echo "usage: $0 inject|failnth|split|eager|kill|close|storm|frag" >&2; exit 2 ;;
esac
require_nptpool
reload $params || exit 1
# Big memslots of untouched anonymous memory: no RAM behind them, but the heuristic
# overcommit check would refuse some in a 2 GiB test host.
old_overcommit=$(cat /proc/sys/vm/overcommit_memory)
echo 1 >/proc/sys/vm/overcommit_memory
leak_baseline

# shellcheck disable=SC2086 # a list of options
$T $args
rc=$?
echo "$old_overcommit" >/proc/sys/vm/overcommit_memory
if [ $rc -eq 4 ]; then
	reload
	exit 4
fi
[ $rc -eq 0 ]
result $? "pool_fault_test $args passed"
leak_check "$1"
reload || result 1 "nptpool reloads with its defaults"
finish
