#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# `make run`: Debian's QEMU boots a Linux guest on nptpool inside the test host.  The
# guest's console and, marked [pool], its VM's stage-2 table pool as nptpool shows it
# while the guest runs; nptpool's counters after QEMU exits.
#
# usage: run-vm-demo.sh [GUEST_MIB [WRITE_MIB]]   (default 256 64)
. /selftests/test_host_lib.sh
case ${1:-} in -h | --help) sed -n '7s/^# //p' "$0"; exit 0 ;; esac
mem=${1:-256} mib=${2:-64}
D=/sys/kernel/debug/nptpool
meminfo() { grep SecPageTables /proc/meminfo | tr -s ' '; }
counters() { echo "vms=$(cat $D/vms) pages_reserved=$(cat $D/pages_reserved) pages_in_use=$(cat $D/pages_in_use)"; }

echo "== test host"
echo "kernel $(uname -r), $(nproc) CPUs, $(grep MemTotal /proc/meminfo | tr -s ' '), QEMU $(cat /vm/qemu-version)"
dmesg | grep -E 'kvm \[[0-9]+\]: .*mode initialized' | sed 's/^\[[ 0-9.]*\] //'
dmesg | grep -E 'nptpool: loaded' | tail -n 1 | sed 's/^\[[ 0-9.]*\] //'
[ -d $D ] || { echo "nptpool is not loaded (NPTPOOL=0?): nothing to show"; exit 1; }
echo "before: $(counters), $(meminfo)"
# 4 KiB stage-2 mappings, so the guest's writes show in the pool: with THP, QEMU's memory
# is mapped with 2 MiB blocks and the pmd region is barely used.
old_thp=$(thp_mode)
trap 'echo "$old_thp" >$THP' EXIT
echo never >$THP
echo "THP off: $(cat $THP)"

echo "== a $mem MiB, 2-vCPU guest writes $mib MiB, checks and frees it, twice"
kmsg_mark
rm -f /tmp/demo.pid
/selftests/real_vm.sh -v -s 2 -m "$mem" -p /tmp/demo.pid mem nptvm_mib="$mib" nptvm_rounds=2 &
vm=$!
# A sample every 2 s while QEMU runs.
while kill -0 $vm 2>/dev/null; do
	for f in $D/vm-"$(cat /tmp/demo.pid 2>/dev/null)"-*/regions; do
		[ -r "$f" ] && awk -v vm="$(basename "$(dirname "$f")")" '
			$1 ~ /^(pgd|pud|pmd)$/ {
				for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
				s = s sprintf(" %s %d/%d", $1, v["used"], v["pages"])
			}
			END { print "[pool] " vm ": used/pages" s }' "$f"
	done
	sleep 2
done
wait $vm
rc=$?

echo "== after"
i=0
while [ "$(cat $D/vms)" != 0 ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
echo "$(counters), $(meminfo)"
echo "kernel messages meanwhile:"
kmsg_since | sed 's/^\[[ 0-9.]*\] /  /'
exit $rc
