#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Real VMs: Debian's QEMU (in the test host when it boots with VM=1, make vm) runs a Linux
# guest (qemu-config/guest.config, qemu-config/guest-init) under KVM, the way users run
# theirs.  Each mode asserts what the guest reports on its console, how QEMU exits, and
# what nptpool shows for the VM while it runs; run_tests.sh adds the leak check.
#
# usage: vm_test.sh MODE [-s VCPUS] [-m GUEST_MIB] [-w MIB] [-r ROUNDS] [-b BOOTS] [-n]
#   boot      boot to init and power off
#   mem       the guest writes MIB MiB, checks and frees them, ROUNDS times, with the test
#             host's THP off (4 KiB stage-2 mappings: one pmd-region table per 2 MiB
#             written) and then on (2 MiB blocks: far fewer tables)
#   hugetlb   mem, with the guest's memory on hugetlbfs (HUGEPAGES= in the boot)
#   reboot    the guest reboots until it has booted BOOTS times, in one QEMU process; with
#             -n the host must lack FEAT_S2FWB, so that KVM unmaps the whole stage-2
#             at each reboot (stage2_unmap_vm()), and THP is off, so that each boot
#             maps the guest with last-level tables again
#   disk      MIB MiB through virtio-blk to a disk image and back, checksummed in the
#             guest and, after QEMU exits, in the test host
#   fill      THP off, the guest writes MIB MiB (most of its memory) once, at the default
#             parameters: the pool fitted to QEMU's memslots serves it, within their bound
#   oversize  THP off, a pool of 16 pmd-region tables, a guest writing more than they
#             map: the VM is halted and QEMU fails, the host lives; then the same guest
#             on stock KVM (nptpool unloaded) runs through
. /selftests/test_host_lib.sh

usage() {
	sed -n '8,24s/^# \{0,1\}//p' "$0" >&2
	exit 2
}
[ $# -ge 1 ] || usage
mode=$1
shift
smp=1 mem=256 mib=64 rounds=2 boots=3 nofwb=0
while getopts s:m:w:r:b:n opt; do
	case $opt in
	s) smp=$OPTARG ;;
	m) mem=$OPTARG ;;
	w) mib=$OPTARG ;;
	r) rounds=$OPTARG ;;
	b) boots=$OPTARG ;;
	n) nofwb=1 ;;
	*) usage ;;
	esac
done
case $mode in boot | mem | hugetlb | reboot | disk | fill | oversize) ;; *) usage ;; esac

QEMU=/usr/bin/qemu-system-aarch64
D=/sys/kernel/debug/nptpool
if [ ! -x $QEMU ] || [ ! -r /vm/Image ]; then
	echo "1..0 # SKIP no real VM in this test host (boot it with VM=1: make vm)"
	exit 4
fi
work=/tmp/vm_test.$$
mkdir -p $work
old_thp=
unloaded=0
# Whatever way this ends (a failed step, the runner's timeout signal): THP as it was, and
# nptpool back if a stock run had unloaded it.
cleanup() {
	[ -n "$old_thp" ] && echo "$old_thp" >$THP
	[ $unloaded = 1 ] && [ ! -d /sys/module/nptpool ] && reload
	rm -rf $work
}
trap cleanup EXIT
trap 'exit 1' TERM INT

# The span one last-level table maps: 2 MiB with 4 KiB pages.
span_kib=$((NPTPOOL_PAGE_KIB * 1024 / 8 * NPTPOOL_PAGE_KIB))

# run_vm NAME TIMEOUT_S RUN [nptvm_*=...] [-- QEMU_ARGS...]: one real VM (real_vm.sh),
# killed after TIMEOUT_S; its output in $work/NAME.out, QEMU's stderr in $work/NAME.err,
# real_vm.sh's status in $vm_rc, QEMU's in $qemu_rc, QEMU's pid in $vm_pid, the nonce it
# gave the guest in $vm_nonce; its pool's regions sampled twice a second: how many samples
# in $vm_samples, the most pmd-region pages used in $vm_pmd_used, the last sample of its
# footprint in $work/NAME.footprint.  With stop_on_kvm_error=1, QEMU is
# stopped (SIGTERM) 2 s after it reports that KVM_RUN failed: QEMU pauses the halted VM
# instead of exiting, and would otherwise run until the timeout ($vm_stopped is then 1).
run_vm() {
	local name=$1 tmo=$(($2 * ${TIMEOUT_SCALE:-1})) pid='' t=0 regions used err_t=-1
	shift 2
	rm -f "$work/$name.pid" "$work/$name.regions" "$work/$name.footprint"
	/selftests/real_vm.sh -s "$smp" -m "$mem" -p "$work/$name.pid" -T "$tmo" "$@" \
		>"$work/$name.out" 2>"$work/$name.err" &
	vm_pmd_used=0 vm_samples=0 vm_stopped=0
	# QEMU's VM fd, and so its pool, lives as long as the process: sample until it exits.
	while kill -0 $! 2>/dev/null; do
		[ -n "$pid" ] || pid=$(cat "$work/$name.pid" 2>/dev/null)
		for regions in "$D"/vm-"${pid:-none}"-*/regions; do
			[ -r "$regions" ] && cat "$regions" >"$work/$name.regions.now" 2>/dev/null || continue
			grep -q '^pgd .* used=[1-9]' "$work/$name.regions.now" || continue
			mv "$work/$name.regions.now" "$work/$name.regions"
			cat "${regions%/regions}/footprint" >"$work/$name.footprint.now" 2>/dev/null &&
				grep -q '^sizing ' "$work/$name.footprint.now" &&
				mv "$work/$name.footprint.now" "$work/$name.footprint"
			vm_samples=$((vm_samples + 1))
			used=$(sed -n 's/^pmd .* used=\([0-9]*\).*/\1/p' "$work/$name.regions")
			[ "${used:-0}" -gt "$vm_pmd_used" ] && vm_pmd_used=$used
		done
		if [ "${stop_on_kvm_error:-0}" = 1 ] && [ -n "$pid" ]; then
			[ $err_t -lt 0 ] && grep -q 'kvm run failed' "$work/$name.err" && err_t=$t
			if [ $err_t -ge 0 ] && [ $t -ge $((err_t + 4)) ] && [ $vm_stopped = 0 ]; then
				kill -TERM "$pid" 2>/dev/null && vm_stopped=1
			fi
		fi
		sleep 0.5
		t=$((t + 1))
	done
	wait $!
	vm_rc=$?
	# QEMU removes its pidfile when it exits cleanly: keep what was read meanwhile.
	vm_pid=$pid
	qemu_rc=$(sed -n 's/^real_vm: QEMU exited \([0-9]*\)$/\1/p' "$work/$name.out")
	vm_nonce=$(sed -n "s/^\\\$ qemu-system-aarch64 .*nptvm_nonce=\([0-9a-f]*\) .*/\1/p" "$work/$name.out")
	echo "# $name: real_vm.sh exited $vm_rc after about $((t / 2)) s; its output:"
	sed 's/^/#   /' "$work/$name.out" | tail -n 30
	[ -s "$work/$name.err" ] && { echo "# $name: QEMU's stderr ($(wc -l <"$work/$name.err") lines), first lines:"; head -n 5 "$work/$name.err" | sed 's/^/#   /'; }
	[ -s "$work/$name.regions" ] && { echo "# $name: its pool, last of $vm_samples samples:"; sed 's/^/#   /' "$work/$name.regions" "$work/$name.footprint"; }
	return 0
}

# guest_said NAME TEXT: the guest printed "nptvm-NONCE: TEXT..." on its console.
guest_said() { [ -n "$vm_nonce" ] && grep -q "^nptvm-$vm_nonce: $2" "$work/$1.out"; }

# ok_run NAME WHAT: QEMU exited 0 after the guest's workload reported status 0.
ok_run() {
	[ "$vm_rc" -eq 0 ] && [ "$qemu_rc" = 0 ] && guest_said "$1" "status 0" &&
		! grep -q 'Kernel panic' "$work/$1.out"
	result $? "$2: the guest's workload passed and QEMU exited 0 (real_vm.sh $vm_rc, QEMU ${qemu_rc:-none})"
}

# sampled WHAT: nptpool showed the VM's pool while it ran (the figures below mean something).
sampled() {
	[ -n "$(ls -d /sys/module/nptpool 2>/dev/null)" ] || return 0
	[ "$vm_samples" -gt 0 ]
	result $? "$1: nptpool's debugfs showed the VM's pool while it ran ($vm_samples samples)"
}

# within_bound NAME WHAT [MIN]: the last footprint sampled from run NAME says the pool was
# fitted to QEMU's memslots, with a pmd bound of at least MIN tables and a pool at least
# that large, and the most pmd-region pages ever handed out stayed within the bound.
within_bound() {
	local f=$work/$1.footprint bound pool
	bound=$(sed -n 's/^bound pud=[0-9]* pmd=\([0-9]*\) .*/\1/p' "$f" 2>/dev/null)
	pool=$(sed -n 's/^pool pud=[0-9]* pmd=\([0-9]*\) .*/\1/p' "$f" 2>/dev/null)
	grep -q '^sizing fitted$' "$f" 2>/dev/null && [ "${bound:-0}" -ge "${3:-1}" ] &&
		[ "${pool:-0}" -ge "$bound" ] && [ "$vm_pmd_used" -le "$bound" ]
	result $? "$2: the pool fitted to QEMU's memslots, pmd bound ${bound:-none} (at least ${3:-1}), pool ${pool:-none}, at most the bound handed out ($vm_pmd_used)"
}

with_thp() {
	[ -w $THP ] || return 1
	[ -n "$old_thp" ] || old_thp=$(thp_mode)
	echo "$1" >$THP
}

# Each QEMU run is bounded well inside vm.list's timeout for the line, so that a hang is
# reported with the console, and the cleanup still runs.
case $mode in
boot)
	run_vm boot 120 boot
	ok_run boot "$smp vCPU(s), boot to init and power off"
	guest_said boot "booted: $smp cpus"
	result $? "the guest sees $smp CPU(s)"
	sampled boot
	;;
mem | hugetlb)
	backend=
	if [ "$mode" = hugetlb ]; then
		free=$(awk '/^HugePages_Free:/ { print $2 }' /proc/meminfo)
		hp_kib=$(awk '/^Hugepagesize:/ { print $2 }' /proc/meminfo)
		if [ $((free * hp_kib / 1024)) -lt "$mem" ]; then
			echo "1..0 # SKIP $mem MiB of guest memory needs more free huge pages than $free of $hp_kib kB"
			exit 4
		fi
		backend="-object memory-backend-file,id=ram,size=${mem}M,mem-path=/dev/hugepages,share=off,prealloc=on -machine memory-backend=ram"
	fi
	need=$((mib * 1024 / span_kib))
	with_thp never || { echo "1..0 # SKIP no THP control at $THP"; exit 4; }
	# shellcheck disable=SC2086 # backend is a list of QEMU arguments
	run_vm small 240 mem nptvm_mib="$mib" nptvm_rounds="$rounds" -- $backend
	what="THP off"
	[ "$mode" = hugetlb ] && what=hugetlb-backed
	ok_run small "$what: $mib MiB written, checked and freed $rounds times"
	sampled "$what"
	pmd_small=$vm_pmd_used
	if [ "$mode" = hugetlb ]; then
		# hugetlbfs pages are mapped as blocks whatever THP says.
		[ "$pmd_small" -lt "$need" ]
		result $? "hugetlb-backed: $pmd_small pmd-region tables, fewer than the $need of 4 KiB mappings"
	else
		[ "$pmd_small" -ge "$need" ]
		result $? "THP off: the pool's pmd region served $pmd_small tables, at least one per $((span_kib / 1024)) MiB written ($need)"
		with_thp always
		run_vm huge 240 mem nptvm_mib="$mib" nptvm_rounds="$rounds"
		ok_run huge "THP on: $mib MiB written, checked and freed $rounds times"
		sampled "THP on"
		[ "$vm_pmd_used" -lt $((need / 2)) ]
		result $? "THP on: 2 MiB blocks, $vm_pmd_used pmd-region tables (fewer than half of $need)"
	fi
	;;
reboot)
	# run_reboots NAME BOOTS: the guest boots BOOTS times in one QEMU process, counting
	# them on a fresh disk.
	run_reboots() {
		dd if=/dev/zero of=$work/disk.img bs=1M count=1 2>/dev/null
		run_vm "$1" $((60 * $2 + 60)) reboot nptvm_boots="$2" -- \
			-drive if=none,id=d0,file=$work/disk.img,format=raw -device virtio-blk-pci,drive=d0
	}
	if [ $nofwb = 1 ]; then
		! dmesg | grep -q 'CPU features: detected: Stage-2 Force Write-Back'
		result $? "the host CPU lacks FEAT_S2FWB: each reboot unmaps the stage-2"
		# Page by page, so that every boot maps the guest with last-level tables.
		with_thp never || { result 1 "THP can be turned off at $THP"; finish; }
		# What one boot hands out, to compare the reboots with.
		run_reboots once 1
		ok_run once "one boot"
		once_used=$vm_pmd_used
	fi
	run_reboots reboot "$boots"
	ok_run reboot "$boots boots in one QEMU process"
	booted=$(grep -c "^nptvm-$vm_nonce: booted" $work/reboot.out)
	[ "$booted" -eq "$boots" ] && guest_said reboot "boot $boots of $boots"
	result $? "the guest booted $booted times, counting them on its disk (want $boots)"
	sampled reboot
	# Without FEAT_S2FWB each reboot unmaps the whole stage-2 (stage2_unmap_vm()) and the
	# next boot maps it again: from the tables given back, never past the bound.
	within_bound reboot "$boots boots"
	if [ $nofwb = 1 ]; then
		# Without reuse each boot would take its tables afresh: $boots times one boot's.
		[ "$once_used" -gt 0 ] && [ "$vm_pmd_used" -lt $((2 * once_used)) ]
		result $? "THP off: $boots boots handed out $vm_pmd_used pmd-region tables, under twice one boot's $once_used: each reboot's tables were the last boot's, given back"
	fi
	;;
disk)
	dd if=/dev/zero of=$work/disk.img bs=1M count="$mib" 2>/dev/null
	run_vm disk 240 disk nptvm_mib="$mib" nptvm_seed=7 -- \
		-drive if=none,id=d0,file=$work/disk.img,format=raw,cache=none -device virtio-blk-pci,drive=d0
	ok_run disk "$mib MiB written through virtio-blk and read back"
	want=$(/selftests/nptpool/guest_workload pattern "$mib" 7 | sha256sum | cut -d' ' -f1)
	img=$(sha256sum <$work/disk.img | cut -d' ' -f1)
	guest_said disk "disk read $want" && [ "$img" = "$want" ]
	result $? "the image holds what the guest wrote, and the guest read it back (sha256 $img)"
	sampled disk
	;;
fill)
	require_nptpool
	with_thp never || { echo "1..0 # SKIP no THP control at $THP"; exit 4; }
	need=$((mib * 1024 / span_kib))
	# 12 to 14 MiB/s written page by page under nested emulation (measured): allow 4.
	run_vm fill $((120 + mib / 4)) mem nptvm_mib="$mib" nptvm_rounds=1
	ok_run fill "a $mem MiB guest, THP off: $mib MiB written, checked and freed"
	sampled fill
	[ "$vm_pmd_used" -ge "$need" ]
	result $? "the pool's pmd region served $vm_pmd_used tables, at least one per $((span_kib / 1024)) MiB written ($need)"
	within_bound fill "$mib MiB written" "$need"
	;;
oversize)
	require_nptpool
	if [ "$NPTPOOL_PAGE_KIB" != 4 ]; then
		echo "1..0 # SKIP sized for 4 KiB pages (a pmd-region table maps $((span_kib / 1024)) MiB here)"
		exit 4
	fi
	with_thp never || { echo "1..0 # SKIP no THP control at $THP"; exit 4; }
	reload pmd_pages=16 || { result 1 "insmod nptpool.ko pmd_pages=16"; finish; }
	mib=$((16 * span_kib / 1024 * 2))
	kmsg_mark
	stop_on_kvm_error=1
	run_vm over 200 mem nptvm_mib="$mib" nptvm_rounds=1
	stop_on_kvm_error=0
	pid=$vm_pid
	[ "$vm_rc" -ne 124 ] && ! guest_said over "status 0"
	result $? "a guest writing $mib MiB over 16 pmd-region tables stops, well before the timeout"
	kmsg_since | grep -q "vm-${pid:-none}-[0-9]*: pmd region exhausted (16 pages of $NPTPOOL_PAGE_KIB KiB), VM halted: its KVM_RUN fails with ENOMEM"
	result $? "the kernel log names the VM (vm-${pid:-none}-N), the exhausted region and the errno"
	# (Not $failed: that is test_host_lib.sh's count of failed results.)
	run_failed=$(grep -c 'kvm run failed Cannot allocate memory' $work/over.err)
	flood=$(grep -c 'Failed to get registers' $work/over.err)
	[ "$run_failed" -ge 1 ] && [ "$run_failed" -le "$smp" ] && [ "$flood" -eq 0 ]
	result $? "QEMU reports that KVM_RUN failed with ENOMEM, once per vCPU at most ($run_failed times for $smp), and can still read the registers ($flood lines of 'Failed to get registers')"
	[ $vm_stopped = 1 ] && [ "${qemu_rc:-none}" = 0 ]
	result $? "QEMU keeps the halted VM paused instead of crashing: still up 2 s after its error, it exits ${qemu_rc:-none} on SIGTERM (want 0)"
	vms_gone
	result $? "the halted VM's pool goes back when QEMU is gone"
	unloaded=1
	rmmod nptpool
	run_vm stock 200 mem nptvm_mib="$mib" nptvm_rounds=1
	ok_run stock "stock KVM (nptpool unloaded): the same guest runs through"
	reload
	result $? "nptpool reloads with its defaults"
	unloaded=0
	;;
esac
finish
