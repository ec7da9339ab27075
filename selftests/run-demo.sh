#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# `make run`: one VM on the test host, and its stage-2 table pool as nptpool shows it.
. /selftests/test_host_lib.sh
D=/sys/kernel/debug/nptpool
meminfo() { grep SecPageTables /proc/meminfo | tr -s ' '; }
pool() {
	echo "  vms=$(cat $D/vms) pages_reserved=$(cat $D/pages_reserved) pages_in_use=$(cat $D/pages_in_use)"
}

echo "== host"
echo "kernel $(uname -r), $(nproc) CPUs, $(grep MemTotal /proc/meminfo | tr -s ' ')"
dmesg | grep -E 'kvm \[[0-9]+\]: .*mode initialized|nptpool: loaded' | sed 's/^\[[ 0-9.]*\] //'
[ -d $D ] || { echo "nptpool is not loaded (NPTPOOL=0?): nothing to show"; exit 1; }
echo "before: $(meminfo)"
pool

echo "== a VM whose guest touches 8 MiB of fresh memory (2048 stage-2 faults), then waits"
kmsg_mark
start_ready /tmp/demo.out 60 /selftests/nptpool/vm_hold -n 4096
vm=$ready_pid
for d in $D/vm-*; do
	echo "$d:"
	sed 's/^/  /' "$d/regions"
	echo "  halted $(cat "$d/halted")"
	awk '{ n[$2]++; if ($3 > 1 || $2 == "pgd") live[$2]++ }
	     END { printf "  tables handed out: pgd %d, pud %d, pmd %d; holding entries: pgd %d, pud %d, pmd %d\n",
		   n["pgd"], n["pud"], n["pmd"], live["pgd"], live["pud"], live["pmd"] }' "$d/tables"
done
echo "while the VM lives: $(meminfo)"
pool

echo "== the guest touches 8 MiB more, the VM exits"
kill -USR1 $vm
wait $vm
rc=$?
grep -E '^(not )?ok' /tmp/demo.out
# The pool goes back after the tables' RCU callbacks have run.
sleep 1
echo "after: $(meminfo)"
pool
echo "kernel messages meanwhile: $(kmsg_since | grep -c .)"
kmsg_since | sed 's/^\[[ 0-9.]*\] /  /'
exit $rc
