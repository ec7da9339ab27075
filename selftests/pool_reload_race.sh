#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# pool_reload_race.sh [SECONDS]: rmmod and insmod nptpool in a loop while another process
# creates and runs VMs (reload_race_test, default 20 s).  Each VM gets a pool or stock
# KVM and runs, rmmod fails only while a VM holds a pool, and the module unloads once the
# VMs are gone.  Reloads use the parameters it was started under (NPTPOOL_PARAMS, set by
# run_tests.sh, which also checks afterwards that nothing leaked); nptpool is left
# loaded with them.
. /selftests/test_host_lib.sh
[ $# -le 1 ] || { echo "usage: $0 [SECONDS]" >&2; exit 2; }
secs=${1:-20}
require_nptpool
PARAMS=${NPTPOOL_PARAMS:-}

/selftests/nptpool/reload_race_test -t "$secs" &
creator=$!
unloads=0 loads=0 busy=0 bad=0
while kill -0 $creator 2>/dev/null; do
	if err=$(rmmod nptpool 2>&1); then
		unloads=$((unloads + 1))
		# A window with no allocator registered: VMs created now stay stock.
		sleep 0.$((RANDOM % 3))
		if insmod /nptpool.ko $PARAMS; then loads=$((loads + 1)); else bad=$((bad + 1)); fi
	else
		case $err in
		*"in use"* | *"Resource temporarily unavailable"*) busy=$((busy + 1)) ;;
		*) bad=$((bad + 1)); echo "# rmmod: $err" ;;
		esac
	fi
	sleep 0.0$((RANDOM % 10))
done
wait $creator
rc=$?
echo "# nptpool unloaded $unloads times, reloaded $loads times; rmmod refused $busy times (a VM held a pool)"
[ $rc -eq 0 ]
result $? "every VM created while nptpool was reloaded ran (reload_race_test)"
[ $bad -eq 0 ] && [ $unloads -ge 3 ] && [ $loads -eq $unloads ]
result $? "rmmod succeeded $unloads times and failed only as busy, insmod never failed"
[ -d /sys/module/nptpool ] || insmod /nptpool.ko $PARAMS
rmmod nptpool && [ ! -e /sys/module/nptpool ]
result $? "with the VMs gone, nptpool unloads"
insmod /nptpool.ko $PARAMS
finish
