#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# module_load_test: nptpool.ko loads, unloads and reloads cleanly, cannot be removed
# while a VM uses a pool, and leaves VMs created before it on stock KVM.  Bad parameters
# are pool_params_test.sh's.
# The load line names the kernel's page size and, with no parameters, that each VM's pool
# is fitted to its memslots.
# Runs in the test host; expects the module loaded by init with its defaults.  Leaves it
# loaded.

. /selftests/test_host_lib.sh
[ $# -le 1 ] || { echo "usage: $0 [KO]" >&2; exit 2; }
KO=${1:-/nptpool.ko}

# start_vm: a VM that has faulted and now waits for SIGUSR1; sets $vm_pid.
start_vm() {
	start_ready /tmp/hold.out 120 /selftests/nptpool/vm_hold -n 512
	vm_pid=$ready_pid
}
# resume_vm: let it fault its second half and exit; its status.
resume_vm() {
	kill -USR1 "$vm_pid"
	wait "$vm_pid"
}

echo "TAP version 13"
echo "1..9"
[ -d /sys/module/nptpool ]
result $? "nptpool is loaded"
dmesg | grep -q 'nptpool: loaded: KVM host mode \(vhe\|nvhe\)'
result $? "load is logged with the KVM host mode"
want="$NPTPOOL_PAGE_KIB KiB pages, pools fitted to each VM's memslots"
echo "# $(dmesg | grep 'nptpool: loaded:' | tail -n 1)"
dmesg | grep 'nptpool: loaded:' | tail -n 1 | grep -q "host mode [a-z]*, $want\$"
result $? "the load line names the kernel's page and the default sizing: $want"
rmmod nptpool && [ ! -e /sys/module/nptpool ]
result $? "rmmod with no VM succeeds"

# A VM created before insmod keeps the stock allocator until it dies.
start_vm
insmod "$KO" && [ -d /sys/module/nptpool ]
result $? "insmod with defaults succeeds again"
[ "$(cat /sys/kernel/debug/nptpool/vms)" = 0 ]
result $? "a VM created before insmod gets no pool"
resume_vm
result $? "that VM keeps faulting on stock KVM after insmod"

# A VM with a pool pins the module.
start_vm
[ "$(cat /sys/kernel/debug/nptpool/vms)" = 1 ]
vms_ok=$?
err=$(rmmod nptpool 2>&1)
rc=$?
echo "# rmmod: $err"
[ $vms_ok -eq 0 ] && [ $rc -ne 0 ] && [ -d /sys/module/nptpool ]
result $? "rmmod is refused while a VM uses a pool"
resume_vm && rmmod nptpool && [ ! -e /sys/module/nptpool ]
result $? "rmmod succeeds once the VM is gone"
insmod "$KO"
[ $failed -eq 0 ]
