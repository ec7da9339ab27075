#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# pool_memcg_test: every pool is charged to the memory cgroup of the VMM that created it,
# counted there as stage-2 tables (memory.stat sec_pagetables), for as long as its VM
# lives, and uncharged when the VM dies; a VMM whose cgroup cannot take another pool gets
# ENOMEM from KVM_CREATE_VM and nptpool's line naming the cgroup's limit.
#
# Twice, with pools of fixed size (a fitted pool is sized as its VM first runs, and
# vm_fill's VMs never run): at the built-in size (fit=0), which the buddy allocator
# serves as one block, and with pmd_pages at twice the buddy allocator's largest block
# (MAX_ORDER_NR_PAGES, read from /proc/buddyinfo), a pool alloc_contig_pages() serves.
# Each time a VMM (vm_fill) in cgroup $P/vmm, whose memory.max leaves room for $N pools
# and half of one more, creates VMs until KVM_CREATE_VM fails; the pools stay charged to
# vmm when the VMM moves to $P/other and when vmm is removed (then to $P, the charge's
# objcg reparented), and go when the VMM closes its VMs.  Run under a pool by
# run_tests.sh, which checks afterwards that nothing leaked and puts nptpool's defaults
# back.
. /selftests/test_host_lib.sh
CG=/sys/fs/cgroup
P=$CG/nptpool_memcg
FILL=/selftests/nptpool/vm_fill
N=3
OUT=/tmp/vm_fill.out

require_nptpool
grep -q "^[^ ]* $CG cgroup2 " /proc/mounts || mount -t cgroup2 none $CG ||
	{ echo "1..0 # SKIP no cgroup2"; exit 4; }
echo +memory >$CG/cgroup.subtree_control
# One column per order, 0..MAX_PAGE_ORDER, after "Node 0, zone NAME" (busybox awk has no
# exponentiation).
max_order_nr_pages=1
for o in $(awk 'NR == 1 { for (i = 6; i <= NF; i++) print i }' /proc/buddyinfo); do
	max_order_nr_pages=$((max_order_nr_pages * 2))
done
echo "TAP version 13"
echo "1..21"
echo "# MAX_ORDER_NR_PAGES $max_order_nr_pages"

current() { cat "$1/memory.current"; }
sec_pt() { awk '$1 == "sec_pagetables" { print $2 }' "$1/memory.stat"; }
# Let the periodic memcg stats flush (every 2 s) catch up before memory.stat is read.
settle_stats() { sleep 3; }

# wait_line PATTERN: until vm_fill printed a line matching PATTERN (at most 60 s).
wait_line() {
	local i=0
	while ! grep -q "$1" $OUT && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
	grep -q "$1" $OUT || { echo "# vm_fill printed no '$1':"; sed 's/^/# /' $OUT; return 1; }
}

# scenario WHAT [PARAM=VALUE...]: nptpool reloaded with the parameters, then the VMM's
# pools through its cgroup's life; 10 results.  Leaves pool_pages set.
scenario() {
	local what=$1 n_vms pid page_size dir pool_bytes charged limit created err
	local cur0 sec0 pcur0 psec0 cur sec pcur psec other logged size_kib i
	shift
	vms_gone
	reload "$@" || { echo "# insmod $* failed"; return 1; }
	mkdir -p $P && echo +memory >$P/cgroup.subtree_control && mkdir -p $P/vmm $P/other &&
		[ -e $P/vmm/memory.max ] || { echo "# no memory controller in $P"; return 1; }

	# A VMM that reports its pool: one VM, no limit.
	: >$OUT
	sh -c "echo \$\$ >$P/vmm/cgroup.procs; exec $FILL -m 1" >$OUT 2>&1 &
	pid=$!
	wait_line armed && kill -USR1 $pid && wait_line ready
	page_size=$(awk '$1 == "page_size" { print $2 }' $OUT)
	dir=$(ls -d /sys/kernel/debug/nptpool/vm-$pid-* 2>/dev/null | tail -n 1)
	pool_pages=$(awk '/^pool / { sub("reserved_pages=", "", $5); print $5 }' "$dir/regions")
	charged=$(awk '/^pool / { print $6 }' "$dir/regions")
	kill -USR1 $pid
	wait $pid
	pool_bytes=$((${pool_pages:-0} * ${page_size:-0}))
	echo "# $what: pool $pool_pages pages of $page_size bytes ($((pool_bytes >> 10)) KiB), $charged"
	[ "$charged" = memcg_charged=1 ] && [ "$pool_bytes" -gt 0 ]
	result $? "$what: the pool is reported charged"
	[ "$pool_bytes" -gt 0 ] || { rmdir $P/vmm $P/other $P; return 1; }
	# N pools and one more in half of what is free (64K pages: pools of 1 GiB).
	n_vms=$N
	while [ $n_vms -gt 1 ] && [ $(((n_vms + 1) * pool_bytes)) -gt $(($(meminfo_kib MemFree) << 9)) ]; do
		n_vms=$((n_vms - 1))
	done

	# The VMM armed in vmm, whose limit fits n_vms pools and half of one more.
	: >$OUT
	sh -c "echo \$\$ >$P/vmm/cgroup.procs; exec $FILL -m $((n_vms + 2))" >$OUT 2>&1 &
	pid=$!
	wait_line armed
	settle_stats
	cur0=$(current $P/vmm) sec0=$(sec_pt $P/vmm) pcur0=$(current $P) psec0=$(sec_pt $P)
	limit=$((cur0 + n_vms * pool_bytes + pool_bytes / 2))
	echo $limit >$P/vmm/memory.max
	kmsg_mark
	kill -USR1 $pid
	wait_line ready
	created=$(awk '$1 == "created" { print $2 }' $OUT)
	err=$(awk '$1 == "failed" { print $3 }' $OUT)
	settle_stats
	cur=$(current $P/vmm) sec=$(sec_pt $P/vmm)
	echo "# $what: memory.max $((limit >> 10)) KiB: $created VMs, then $err; vmm memory.current $((cur0 >> 10)) -> $((cur >> 10)) KiB, sec_pagetables $((sec0 >> 10)) -> $((sec >> 10)) KiB"
	[ "$created" = $n_vms ] && [ "$err" = ENOMEM ]
	result $? "$what: a VMM whose cgroup fits $n_vms pools gets $n_vms VMs, then ENOMEM"
	# The size logged is the pool asked for, up to a buddy block's rounding below it.
	logged=$(kmsg_since | grep "nptpool: vm-$pid-.*: cannot reserve a [0-9]* KiB stage-2 table pool for the VM of pid $pid, VM creation fails with ENOMEM: memory cgroup /nptpool_memcg/vmm is at its limit (memory.max $((limit / page_size * page_size >> 10)) KiB, ")
	echo "# dmesg: ${logged:-(no line)}"
	size_kib=$(echo "$logged" | sed -n 's/.*cannot reserve a \([0-9]*\) KiB .*/\1/p')
	[ -n "$logged" ] && [ "${size_kib:-0}" -le $((pool_bytes >> 10)) ] &&
		[ $((${size_kib:-0} * 2)) -gt $((pool_bytes >> 10)) ]
	result $? "$what: nptpool names the VM's pid, the pool's size and the cgroup's limit"
	# memory.current before the VMs included charges that may since have gone (per-CPU
	# stocks, the probe's remains): the pools must be in it, not on top of all of it.
	[ "$cur" -ge $((n_vms * pool_bytes)) ] && [ $((sec - sec0)) -ge $((n_vms * pool_bytes)) ] &&
		[ $((sec - sec0)) -lt $(((n_vms + 1) * pool_bytes)) ]
	result $? "$what: memory.current and sec_pagetables of the VMM's cgroup carry the $n_vms pools"

	# The VMM moves: the charge stays where it was taken.
	echo $pid >$P/other/cgroup.procs
	settle_stats
	cur=$(current $P/vmm) sec=$(sec_pt $P/vmm) other=$(current $P/other)
	echo "# $what: VMM moved: vmm memory.current $((cur >> 10)) KiB, sec_pagetables $((sec >> 10)) KiB; other memory.current $((other >> 10)) KiB"
	[ "$cur" -ge $((n_vms * pool_bytes)) ] && [ $((sec - sec0)) -ge $((n_vms * pool_bytes)) ] &&
		[ "$other" -lt "$pool_bytes" ]
	result $? "$what: the pools stay charged to the cgroup they were created in when the VMM moves"

	# Its cgroup goes: the charge goes up to the parent with its objcg.
	rmdir $P/vmm
	result $? "$what: the VMM's first cgroup can be removed while its VMs live"
	settle_stats
	pcur=$(current $P) psec=$(sec_pt $P)
	echo "# $what: vmm removed: parent memory.current $((pcur0 >> 10)) -> $((pcur >> 10)) KiB, sec_pagetables $((psec0 >> 10)) -> $((psec >> 10)) KiB"
	[ "$pcur" -ge $((n_vms * pool_bytes)) ] && [ $((psec - psec0)) -ge $((n_vms * pool_bytes)) ]
	result $? "$what: the parent cgroup still carries the $n_vms pools"

	# The VMs die: every pool's charge and stat go.
	kill -USR1 $pid
	wait $pid
	vms_gone
	settle_stats
	pcur=$(current $P) psec=$(sec_pt $P)
	echo "# $what: VMs gone: parent memory.current $((pcur >> 10)) KiB, sec_pagetables $((psec >> 10)) KiB"
	[ "$pcur" -lt $((pcur0 + pool_bytes / 2)) ]
	result $? "$what: memory.current drops by the pools when the VMs die"
	[ "$psec" -le "$psec0" ]
	result $? "$what: sec_pagetables goes back when the VMs die"
	i=0
	while [ -d $P ] && [ $i -lt 50 ]; do
		rmdir $P/other $P 2>/dev/null || sleep 0.1
		i=$((i + 1))
	done
	[ ! -d $P ]
	result $? "$what: the cgroups go"
}

scenario "built-in pool (buddy block)" fit=0
scenario "large pool (alloc_contig_pages)" pmd_pages=$((2 * max_order_nr_pages))
# The large pools were above the buddy allocator's largest block: the contiguous path.
echo "# large pool: $pool_pages pages, MAX_ORDER_NR_PAGES $max_order_nr_pages"
[ "${pool_pages:-0}" -gt "$max_order_nr_pages" ]
result $? "the large pools ($pool_pages pages) are above MAX_ORDER_NR_PAGES ($max_order_nr_pages)"
reload
[ $n -eq 21 ] || echo "# $n results, 21 planned"
finish
