#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# `make run`: one VM workload on the test host, and what the host saw of it.
echo "== host"
echo "kernel $(uname -r), $(nproc) CPUs, $(grep MemTotal /proc/meminfo | tr -s ' ')"
dmesg | grep -E 'kvm \[[0-9]+\]: (VHE|Hyp|Protected)|nptpool' | sed 's/^\[[ 0-9.]*\] //'
echo "stage-2 table memory before: $(grep SecPageTables /proc/meminfo | tr -s ' ')"
echo "== VM workload: a guest touches 16 MiB of fresh memory, 4096 stage-2 faults"
dmesg -c >/dev/null
/selftests/nptpool/guest_memory_test -n 4096
rc=$?
echo "== after the VM is gone"
# Tables unlinked by the VM are freed from RCU callbacks, shortly after it dies.
sleep 1
echo "stage-2 table memory after: $(grep SecPageTables /proc/meminfo | tr -s ' ')"
echo "kernel messages during the workload: $(dmesg | grep -c .)"
dmesg | sed 's/^\[[ 0-9.]*\] /  /'
exit $rc
