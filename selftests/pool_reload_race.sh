#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# pool_reload_race.sh [SECONDS]: rmmod and insmod nptpool in a loop while another process
# creates and runs VMs (pool_fault_test -m reload, default 20 s).  Each VM gets a pool or
# stock KVM and runs, rmmod fails only while a VM holds a pool, the module unloads once
# the VMs are gone, and nothing leaks.  nptpool is left loaded with its defaults.
. /selftests/lib.sh
secs=${1:-20}
require_nptpool
# A pool below 4 MiB: the race, not the host's supply of 4 MiB blocks (fault_churn_fragmentation).
PARAMS=pmd_pages=64
reload $PARAMS || exit 1
leak_baseline

/selftests/nptpool/pool_fault_test -m reload -t "$secs" &
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
result $? "every VM created while nptpool was reloaded ran (pool_fault_test -m reload)"
[ $bad -eq 0 ] && [ $unloads -ge 3 ] && [ $loads -eq $unloads ]
result $? "rmmod succeeded $unloads times and failed only as busy, insmod never failed"
[ -d /sys/module/nptpool ] || insmod /nptpool.ko $PARAMS
rmmod nptpool && [ ! -e /sys/module/nptpool ]
result $? "with the VMs gone, nptpool unloads"
insmod /nptpool.ko $PARAMS
leak_check "the reload race"
reload || result 1 "nptpool reloads with its defaults"
finish
