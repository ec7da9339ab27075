# SPDX-License-Identifier: GPL-2.0
# Sourced in the QEMU test host (never on the build machine: that is scripts/apt_lib.sh)
# by run_tests.sh and nptpool's test scripts: TAP results, module reloads, and the leak
# check that every test run under a pool (run_tests.sh, a POOL column other than '-')
# ends with.
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
#   run_bounded TMO CMD...        CMD in a session of its own, killed with everything it
#                                 started after TMO s (status 137)
#   under_pool POOL TMO CMD...    the runner's one way to run a test with a pool: see below
#   finish                        exit 0 if every result passed, else 1
#   kmsg_mark                     mark the kernel log; kmsg_since prints what came after
#   start_ready OUT SECS CMD...   run CMD in the background, output to OUT, until it prints
#                                 "ready" (at most SECS s); its pid in $ready_pid
#   NPTPOOL_PAGE_KIB              the host's page in KiB (4, 16, 64): the unit of nptpool's
#                                 parameters, pools and /proc/zoneinfo's counts
#   nptpool_defaults              "PUD PMD": nptpool's parameter defaults for that page
#   nptpool_maxima                "PUD PMD": their upper bounds (16 MiB, 1 GiB of pool)
#   thp_mode                      the host's THP setting (always, madvise, never); THP is
#                                 its sysfs file
#
# nptpool's counters and the settling before a reading come from nptpool_state, built
# from the same C library as the tests, so shell and C read them one way.
#
# Never clear the kernel log (dmesg -c): kernel_log_check.sh, the last test of every run,
# must see every report of every test before it.

NPTPOOL_KO=/nptpool.ko
NPTPOOL_STATE=/selftests/nptpool/nptpool_state
KMEMLEAK=/sys/kernel/debug/kmemleak
# MemFree noise in the 2 GiB test host, see pool_churn_test.c.
MEMFREE_SLACK_KIB=32768
# KASAN keeps freed objects in a quarantine of up to 1/32 of RAM before MemFree sees them.
if grep -q ' kasan_quarantine_put$' /proc/kallsyms 2>/dev/null; then
	MEMFREE_SLACK_KIB=$((MEMFREE_SLACK_KIB + $(awk '/^MemTotal:/ { print $2 }' /proc/meminfo) / 32))
fi

NPTPOOL_PAGE_KIB=$(($($NPTPOOL_STATE page_size) / 1024))

# The defaults cover the same guest memory on every granule (src/ptalloc.rs).
nptpool_defaults() {
	case $NPTPOOL_PAGE_KIB in
	4) echo "32 960" ;;
	16) echo "4 60" ;;
	64) echo "4 16" ;;
	*) echo "unknown page size ${NPTPOOL_PAGE_KIB} KiB" >&2; return 1 ;;
	esac
}

nptpool_maxima() { echo "$((16384 / NPTPOOL_PAGE_KIB)) $((1048576 / NPTPOOL_PAGE_KIB))"; }

# The host's THP setting: THP holds the selected one in brackets ("always madvise [never]").
THP=/sys/kernel/mm/transparent_hugepage/enabled
thp_mode() { sed 's/.*\[\(.*\)\].*/\1/' $THP; }

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
	local out="$1" tenths=$(($2 * 10)) i=0
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
	insmod $NPTPOOL_KO $@
}

# A /proc/meminfo field in kB, the per-CPU vmstat deltas folded first (as lib/nptpool.c).
meminfo_kib() {
	echo 1 2>/dev/null >/proc/sys/vm/stat_refresh
	awk -v k="$1:" '$1 == k { print $2 }' /proc/meminfo
}

# Free pages on the per-CPU lists (/proc/zoneinfo pagesets, in the host's pages),
# which MemFree leaves out.  Those lists grow after large frees (their high mark tunes
# itself up) and shrink only slowly: tens of MiB after a freed pool of 1 GiB or hundreds
# of huge pages, free all the same.
pcp_free_kib() { awk -v k="$NPTPOOL_PAGE_KIB" '$1 == "count:" { n += $2 } END { print n * k }' /proc/zoneinfo; }

# kmemleak reports an object once two scans found it unreferenced (its checksum must not
# change in between) and it is older than 5 s.
kmemleak_scan() {
	echo scan >$KMEMLEAK
	sleep 6
	echo scan >$KMEMLEAK
}

kmemleak_reports() { grep -c '^unreferenced object' $KMEMLEAK; }

leak_baseline() {
	$NPTPOOL_STATE settle
	base_free=$(meminfo_kib MemFree) base_pcp=$(pcp_free_kib)
	base_s2=$(meminfo_kib SecPageTables)
	if [ -w $KMEMLEAK ]; then
		kmemleak_scan
		base_leaks=$(kmemleak_reports)
	fi
}

leak_check() {
	local what="$1" i=0 counters='' free pcp s2 leaks
	if [ -d /sys/module/nptpool ]; then
		# Pools go back once their VMs' last references are dropped, which may trail
		# the VMM's exit.
		while [ $i -lt 100 ]; do
			counters=$($NPTPOOL_STATE counters)
			[ "$counters" = "vms 0 pages_reserved 0 pages_in_use 0" ] && break
			sleep 0.1
			i=$((i + 1))
		done
		[ "$counters" = "vms 0 pages_reserved 0 pages_in_use 0" ]
		result $? "after $what: nptpool's $counters"
	fi
	$NPTPOOL_STATE settle
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

# A test's VMMs may fork (vm_storm_test, vmm_exit_test) or run in the background of a
# script (pool_reload_race.sh): a timeout must take them all, or their VMs would keep
# pools, and the module, busy after it.  busybox setsid execs CMD as the leader of a new
# session (and process group), so the group's id is CMD's pid.
run_bounded() {
	local tmo="$1" pid dog rc
	shift
	setsid "$@" &
	pid=$!
	# Its output away from the runner's pipe, which would otherwise stay open.
	(sleep "$tmo" && kill -KILL -- "-$pid") >/dev/null 2>&1 &
	dog=$!
	wait "$pid"
	rc=$?
	kill "$dog" 2>/dev/null
	# Whatever CMD left behind in its group (after a timeout, all of it) goes too.
	kill -KILL -- "-$pid" 2>/dev/null
	return $rc
}

# Wait up to 30 s for the last VM to go: a killed VMM's VMs go with its last fd.
vms_gone() {
	local i=0
	while [ $i -lt 300 ]; do
		[ "$($NPTPOOL_STATE counters 2>/dev/null | cut -d' ' -f2)" = 0 ] && return 0
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

# under_pool POOL TIMEOUT_S CMD [ARGS...]: run_tests.sh's way to run a test with a pool.
# POOL is 'default' or comma-separated PARAM=VALUE words, and 'overcommit' among them
# sets vm.overcommit_memory to 1 for CMD (big memslots of untouched anonymous memory have
# no RAM behind them, but the heuristic check would refuse some in a 2 GiB test host).
# nptpool is reloaded with the parameters (exported to CMD as NPTPOOL_PARAMS, for scripts
# that reload it themselves), the leak baseline taken, CMD run (run_bounded), the leak
# check made, and nptpool (with its defaults) and overcommit put back.  CMD's own TAP
# comes first; the leak check's results, and a failure to restore the module, follow as
# this function's.  Returns CMD's status (4: skipped, no leak check; 137: timed out, no
# leak check), or 1 if the leak check or the restore failed.  In a stock boot (nptpool
# not loaded) CMD just runs.
under_pool() {
	local pool="$1" tmo="$2" params='' p rc old_overcommit='' old_hugepages restored
	shift 2
	n=0 failed=0
	if [ ! -d /sys/module/nptpool ]; then
		run_bounded "$tmo" "$@"
		return
	fi
	for p in $(echo "$pool" | tr , ' '); do
		case $p in
		default) ;;
		overcommit) old_overcommit=$(cat /proc/sys/vm/overcommit_memory) ;;
		*) params="${params:+$params }$p" ;;
		esac
	done
	# shellcheck disable=SC2086 # a list of param=value words
	if ! reload $params; then
		reload
		result 1 "insmod $NPTPOOL_KO $params"
		return 1
	fi
	[ -n "$old_overcommit" ] && echo 1 >/proc/sys/vm/overcommit_memory
	old_hugepages=$(cat /proc/sys/vm/nr_hugepages)
	leak_baseline
	NPTPOOL_PARAMS=$params run_bounded "$tmo" "$@"
	rc=$?
	[ -n "$old_overcommit" ] && echo "$old_overcommit" >/proc/sys/vm/overcommit_memory
	# A test that changes the huge page pool and was stopped before it put it back: put
	# it back before the leak check reads MemFree, and say whether that worked.
	if [ "$(cat /proc/sys/vm/nr_hugepages)" != "$old_hugepages" ]; then
		# A killed test's memory may still be going back: a few tries.
		for p in 1 2 3; do
			echo "$old_hugepages" >/proc/sys/vm/nr_hugepages
			[ "$(cat /proc/sys/vm/nr_hugepages)" = "$old_hugepages" ] && break
			sleep 1
		done
		[ "$(cat /proc/sys/vm/nr_hugepages)" = "$old_hugepages" ]
		result $? "after $(basename "$1"): vm.nr_hugepages back to $old_hugepages (now $(cat /proc/sys/vm/nr_hugepages))"
	fi
	# ... and ksmd, which a killed reuse_ksm would leave scanning flat out.
	[ -w /sys/kernel/mm/ksm/run ] && echo 0 >/sys/kernel/mm/ksm/run
	if [ $rc -ne 4 ] && [ $rc -ne 137 ]; then
		leak_check "$(basename "$1")${params:+ ($params)}"
	fi
	# After a timeout, the killed VMMs' VMs may still be going.
	vms_gone && reload
	restored=$?
	[ $restored -eq 0 ] || result 1 "nptpool reloads with its defaults after $(basename "$1")"
	if [ "$failed" -ne 0 ] && { [ $rc -eq 0 ] || [ $rc -eq 4 ]; }; then
		rc=1
	fi
	return $rc
}
