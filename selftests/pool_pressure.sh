#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# pool_pressure.sh memcg|host: guests fault while memory is short.  Run under a pool by
# run_tests.sh (nptpool.list), which checks afterwards that nothing leaked.
#
#   memcg  the VMM runs in a memory cgroup of 24 MiB
#   host   huge pages reserved at run time leave the whole host about 96 MiB free
#
# In both, pool_pressure_test holds VMs until KVM_CREATE_VM fails (it must fail with
# ENOMEM), lets four go and runs a guest that touches 32 MiB: it runs, or its KVM_RUN
# fails for host memory, or the OOM killer (pointed at it) kills it; its pool never
# halts it.  Afterwards the host creates and runs a VM.
. /selftests/test_host_lib.sh
CG=/sys/fs/cgroup
T=/selftests/nptpool/pool_pressure_test

case $1 in
memcg | host) ;;
*) echo "usage: $0 memcg|host" >&2; exit 2 ;;
esac
require_nptpool
if [ "$1" = memcg ]; then
	grep -q "^[^ ]* $CG cgroup2 " /proc/mounts || mount -t cgroup2 none $CG ||
		{ echo "1..0 # SKIP no cgroup2"; exit 4; }
	echo +memory >$CG/cgroup.subtree_control
	mkdir -p $CG/pressure
	echo $((24 << 20)) >$CG/pressure/memory.max
	sh -c "echo \$\$ >$CG/pressure/cgroup.procs; exec $T -n 8192"
	rc=$?
	grep -E '^(oom|oom_kill) ' $CG/pressure/memory.events | sed 's/^/# memory.events: /'
	rmdir $CG/pressure
else
	orig=$(cat /proc/sys/vm/nr_hugepages)
	free=$(meminfo_kib MemFree)
	want=$((orig + (free - 96 * 1024) / 2048))
	echo "$want" >/proc/sys/vm/nr_hugepages
	echo "# MemFree $free kB; $(cat /proc/sys/vm/nr_hugepages) huge pages reserved (wanted $want), MemFree now $(meminfo_kib MemFree) kB"
	$T -n 8192
	rc=$?
	echo "$orig" >/proc/sys/vm/nr_hugepages
	[ "$(cat /proc/sys/vm/nr_hugepages)" -eq "$orig" ]
	result $? "the huge pages went back ($orig reserved)"
fi
[ $rc -eq 0 ]
result $? "pool_pressure_test passed ($1)"
/selftests/nptpool/pool_create -o run >/tmp/pressure-after.out 2>&1
rc=$?
[ $rc -eq 0 ] || sed 's/^/# /' /tmp/pressure-after.out
result $rc "with memory back, a VM gets its pool and runs"
finish
