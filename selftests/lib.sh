# SPDX-License-Identifier: GPL-2.0
# Sourced by nptpool's scenario scripts in the test host: TAP results, module reloads and
# the leak check every fault scenario ends with.
#
#   result STATUS DESCRIPTION     one TAP result (STATUS 0: ok)
#   require_nptpool               exit 4 (skip) unless nptpool is loaded: stock runs stay stock
#   reload [PARAM=VALUE...]       nptpool reloaded with these parameters (default: none)
#   leak_baseline                 record what leak_check compares against
#   leak_check WHAT               no leak since leak_baseline: nptpool's counters at 0,
#                                 SecPageTables exactly back, MemFree (with the per-CPU
#                                 lists) back within 32 MiB
#                                 (plus KASAN's quarantine on a KASAN kernel), and, on a
#                                 kmemleak kernel, no new kmemleak report
#   finish                        exit 0 if every result passed, else 1
#   kmsg_mark                     mark the kernel log; kmsg_since prints what came after
#   start_ready OUT SECS CMD...   run CMD in the background, output to OUT, until it prints
#                                 "ready" (at most SECS s); its pid in $ready_pid
#
# Never clear the kernel log (dmesg -c): kernel_log_check.sh, the last test of every run,
# must see every report of every test before it.

NPTPOOL_DEBUGFS=/sys/kernel/debug/nptpool
KMEMLEAK=/sys/kernel/debug/kmemleak
# MemFree noise in the 2 GiB test host, see pool_test -m churn.
MEMFREE_SLACK_KIB=32768
# KASAN keeps freed objects in a quarantine of up to 1/32 of RAM before MemFree sees them.
if grep -q ' kasan_quarantine_put$' /proc/kallsyms 2>/dev/null; then
	MEMFREE_SLACK_KIB=$((MEMFREE_SLACK_KIB + $(awk '/^MemTotal:/ { print $2 }' /proc/meminfo) / 32))
fi

n=0 failed=0
result() {
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then echo "ok $n $2"; else echo "not ok $n $2"; failed=$((failed + 1)); fi
}

kmsg_mark() {
	kmsg_seq=$((${kmsg_seq:-0} + 1))
	kmsg_tag="selftests: mark $$.$kmsg_seq"
	echo "$kmsg_tag" >/dev/kmsg
}

kmsg_since() {
	dmesg | sed -n "/$kmsg_tag\$/,\$p" | sed 1d
}

start_ready() {
	local out=$1 tenths=$(($2 * 10)) i=0
	shift 2
	# Emptied here, not by the child's redirection: that can come after the loop below
	# has read a "ready" left in OUT by an earlier command.
	: >"$out"
	"$@" >"$out" 2>&1 &
	ready_pid=$!
	while ! grep -q ready "$out" && [ $i -lt $tenths ]; do sleep 0.1; i=$((i + 1)); done
	grep -q ready "$out" || { echo "# not ready after $((tenths / 10)) s:"; sed 's/^/# /' "$out"; }
}

finish() {
	[ "$failed" -eq 0 ]
	exit
}

require_nptpool() {
	[ -d /sys/module/nptpool ] && return
	echo "1..0 # SKIP nptpool is not loaded"
	exit 4
}

reload() {
	rmmod nptpool 2>/dev/null
	# shellcheck disable=SC2068 # a list of param=value words
	insmod /nptpool.ko $@
}

meminfo_kib() { awk -v k="$1:" '$1 == k { print $2 }' /proc/meminfo; }

# Free pages on the per-CPU lists (/proc/zoneinfo pagesets, 4 KiB pages in the test host),
# which MemFree leaves out.  Those lists grow after large frees (their high mark tunes
# itself up) and shrink only slowly: tens of MiB after a freed pool of 1 GiB or hundreds
# of huge pages, free all the same.
pcp_free_kib() { awk '$1 == "count:" { n += $2 } END { print n * 4 }' /proc/zoneinfo; }

# Let RCU-deferred frees run and drop what reclaim would drop anyway.
settle() {
	sync
	sleep 1
	echo 3 >/proc/sys/vm/drop_caches
}

# kmemleak reports an object once two scans found it unreferenced (its checksum must not
# change in between) and it is older than 5 s.
kmemleak_scan() {
	echo scan >$KMEMLEAK
	sleep 6
	echo scan >$KMEMLEAK
}

kmemleak_reports() { grep -c '^unreferenced object' $KMEMLEAK; }

leak_baseline() {
	settle
	base_free=$(meminfo_kib MemFree) base_pcp=$(pcp_free_kib)
	base_s2=$(meminfo_kib SecPageTables)
	if [ -w $KMEMLEAK ]; then
		kmemleak_scan
		base_leaks=$(kmemleak_reports)
	fi
}

leak_check() {
	local what=$1 i=0 vms=0 reserved=0 in_use=0 free pcp s2 leaks
	if [ -d $NPTPOOL_DEBUGFS ]; then
		while [ $i -lt 100 ]; do
			vms=$(cat $NPTPOOL_DEBUGFS/vms)
			reserved=$(cat $NPTPOOL_DEBUGFS/pages_reserved)
			in_use=$(cat $NPTPOOL_DEBUGFS/pages_in_use)
			[ "$vms$reserved$in_use" = 000 ] && break
			sleep 0.1
			i=$((i + 1))
		done
	fi
	[ "$vms$reserved$in_use" = 000 ]
	result $? "after $what: vms $vms, pages_reserved $reserved, pages_in_use $in_use"
	settle
	free=$(meminfo_kib MemFree) pcp=$(pcp_free_kib)
	s2=$(meminfo_kib SecPageTables)
	[ "$s2" -eq "$base_s2" ]
	result $? "after $what: SecPageTables back to $base_s2 kB (now $s2 kB)"
	[ $((free + pcp + MEMFREE_SLACK_KIB)) -ge $((base_free + base_pcp)) ]
	result $? "after $what: MemFree back within $((MEMFREE_SLACK_KIB / 1024)) MiB ($((free - base_free)) kB, per-CPU lists $((pcp - base_pcp)) kB)"
	if [ -w $KMEMLEAK ]; then
		kmemleak_scan
		leaks=$(kmemleak_reports)
		[ "$leaks" -eq "$base_leaks" ]
		result $? "after $what: kmemleak found no new leak ($base_leaks -> $leaks reports)"
		[ "$leaks" -eq "$base_leaks" ] || sed 's/^/# /' $KMEMLEAK | tail -n 60
	fi
}
