#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# module_load_test: nptpool.ko loads, unloads and reloads cleanly, refuses parameters
# out of range with EINVAL and a log line naming the parameter and its range, cannot be
# removed while a VM uses a pool, and leaves VMs created before it on stock KVM.
# Runs in the test host; expects the module loaded by init.  Leaves it loaded.

. /selftests/lib.sh
KO=${1:-/nptpool.ko}

# expect_refused PARAM=VALUE LOG_PATTERN: insmod fails with EINVAL and logs LOG_PATTERN.
expect_refused() {
	kmsg_mark
	err=$(insmod "$KO" "$1" 2>&1)
	rc=$?
	msg=$(kmsg_since | grep -- "$2")
	[ -n "$msg" ] && echo "$msg" | sed "s/^/# dmesg: /"
	[ $rc -ne 0 ] && echo "$err" | grep -q 'Invalid argument' && [ -n "$msg" ] &&
		[ ! -e /sys/module/nptpool ]
	result $? "insmod $1 is refused with EINVAL and a log line"
}

HOLD=/selftests/nptpool/pool_test
# start_vm: a VM that has faulted and now waits for SIGUSR1; sets $vm_pid.
start_vm() {
	start_ready /tmp/hold.out 120 $HOLD -m hold -n 512
	vm_pid=$ready_pid
}
# resume_vm: let it fault its second half and exit; its status.
resume_vm() {
	kill -USR1 "$vm_pid"
	wait "$vm_pid"
}

echo "TAP version 13"
echo "1..11"
[ -d /sys/module/nptpool ]
result $? "nptpool is loaded"
dmesg | grep -q 'nptpool: loaded: KVM host mode \(vhe\|nvhe\)'
result $? "load is logged with the KVM host mode"
rmmod nptpool && [ ! -e /sys/module/nptpool ]
result $? "rmmod with no VM succeeds"
expect_refused pmd_pages=0 'pmd_pages=0 is out of range, it must be 1\.\.262144'
expect_refused pud_pages=4097 'pud_pages=4097 is out of range, it must be 1\.\.4096'
insmod "$KO" pmd_pages=-1 2>/dev/null
[ $? -ne 0 ] && [ ! -e /sys/module/nptpool ]
result $? "insmod pmd_pages=-1 (not a u32) is refused"

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
