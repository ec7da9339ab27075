#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# pool_memcg_test: a VM's pool (at the default size, which the buddy allocator serves) is
# charged to the VMM's memory cgroup while the VM lives, as stage-2 tables
# (memory.stat sec_pagetables), and uncharged when it dies.
. /selftests/test_host_lib.sh
CG=/sys/fs/cgroup
stat_kib() { awk -v k="$1" '$1 == k { print int($2 / 1024) }' "$CG/vmm/memory.stat"; }

echo "TAP version 13"
echo "1..3"
grep -q " $CG cgroup2 " /proc/mounts || mount -t cgroup2 none $CG || { echo "1..0 # SKIP no cgroup2"; exit 4; }
echo +memory >$CG/cgroup.subtree_control
mkdir -p $CG/vmm
before=$(stat_kib sec_pagetables)

# The VMM runs in the cgroup; the VM faults, then waits for SIGUSR1.
start_ready /tmp/memcg.out 120 \
	sh -c "echo \$\$ >$CG/vmm/cgroup.procs; exec /selftests/nptpool/vm_hold -n 512"
vm=$ready_pid
dir=$(ls -d /sys/kernel/debug/nptpool/vm-$vm-* | tail -n 1)
pool_kib=$(($(awk '/^pool / { sub("reserved_pages=", "", $5); print $5 }' "$dir/regions") * NPTPOOL_PAGE_KIB))
charged=$(awk '/^pool / { print $6 }' "$dir/regions")
during=$(stat_kib sec_pagetables)
echo "# pool $pool_kib KiB ($charged); cgroup sec_pagetables $before -> $during KiB"
[ "$charged" = memcg_charged=1 ]
result $? "the default-size pool is reported charged"
[ $((during - before)) -ge "$pool_kib" ]
result $? "the VMM's cgroup carries the pool as stage-2 tables while the VM lives"
kill -USR1 $vm
wait $vm
sleep 1
after=$(stat_kib sec_pagetables)
echo "# after the VM: $after KiB"
[ "$after" -le "$before" ]
result $? "the charge goes when the VM dies"
rmdir $CG/vmm 2>/dev/null
[ $failed -eq 0 ]
