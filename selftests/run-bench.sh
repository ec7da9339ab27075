#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# run-bench.sh: stage-2 fault benchmarks, stock KVM against nptpool, on this KVM host.
#
# Every configuration runs as a pair, stock (nptpool unloaded) and nptpool (loaded), the
# order of each pair alternating between consecutive pairs and between repetitions
# (ABBA), so that drift over the run (caches, memory fragmentation, a busy machine)
# lands on both sides alike.  One CSV line per raw sample:
#     mode,side,rep,benchmark,config,metric,value,unit
# on stdout behind the marker 'NPTBENCH,' (so console noise cannot pass for a sample),
# and, with -o, into a plain CSV file.  Progress lines start with 'run-bench:'.
#
# Runs inside the QEMU test host (make bench, make check) and on a real arm64 KVM host
# (as root, with nptpool.ko built for the running kernel; see README.md, Benchmark).
# Nothing here judges a time: a failing run is reported and the exit status says so.

set -u

usage() {
	cat <<USAGE
usage: run-bench.sh [-h] [-n REPS] [-b 'SIZES'] [-v 'VCPUS'] [-B 'BENCHMARKS'] [-M MODE] [-S]
                    [-k NPTPOOL_KO] [-t KVM_SELFTESTS_DIR] [-f NPTPOOL_SELFTESTS_DIR]
                    [-L 'LARGE_POOL_PARAMS'] [-H 'HUGETLB_POOL_PARAMS'] [-g GUEST_MODE_ID]
                    [-c CYCLES] [-G 'GUEST_SIZES'] [-F TABLE_FAULTS] [-P PAIRS] [-W 'SIZES']
                    [-T SECONDS] [-o CSV]
  -n  repetitions, each runs every configuration on both sides (default 5)
  -b  test memory sizes, all vCPUs together (default '2M 8M')
  -v  vCPU counts (default '1 2 4')
  -B  benchmarks (default: all of
      'kvm_page_table_test demand_paging_test fault_latency table_fault vm_create
      vm_first_run alloc_bench',
      and real_vm where the test host has one: a boot with VM=1, make vm)
  -M  host mode label for the CSV: vhe, nvhe, pkvm (default: from the kernel log)
  -S  stock only: never load nptpool (pKVM, where it cannot load)
  -k  nptpool.ko (default /nptpool.ko)
  -t  directory of the built upstream KVM selftests (default /selftests/kvm)
  -f  directory of our built selftests, fault_latency_test and vm_create_test
      (default /selftests/nptpool)
  -L  nptpool parameters of the large pool for vm_create
      (default 'pud_pages=512 pmd_pages=16384': 66 MiB, from alloc_contig_pages)
  -H  nptpool parameters for kvm_page_table_test with hugetlb backing (default
      'pmd_pages=16384'): without patch 1 of patches/, vCPUs racing to split
      the same blocks took thousands of pool pages under emulation; kept so that
      results compare with earlier runs (README.md, Benchmark)
  -g  guest mode ID for the upstream tests (default 6: 40-bit IPA, 4K pages, the
      mode fault_latency_test uses)
  -c  VMs created and destroyed per vm_create run (default 5)
  -G  real_vm: MiB the guest writes once, per run, THP on and off (default '128')
  -F  table_fault: table faults per run, all vCPUs together (default 512)
  -P  table_fault: pairs of runs per configuration and repetition, each pair's order
      the other way round from the one before (default 4: a run takes about a second,
      and this machine's speed changes from one run to the next; see README.md,
      Benchmark, Reading a ratio)
  -W  vm_first_run: memslot sizes, 1 vCPU, whose guest writes one page per 2 MiB in its
      first run, so that the fitted pool and the teardown are those of a VM that size
      (default '32G': a 72 MiB pool from alloc_contig_pages; '' for none)
  -T  seconds before one run counts as hung (default 600)
  -o  also write the samples, with a header line, to this CSV file
USAGE
}

REPS=5 SIZES='2M 8M' VCPUS='1 2 4' MODE='' STOCK_ONLY=0 OUT=''
BENCHES='kvm_page_table_test demand_paging_test fault_latency table_fault vm_create vm_first_run alloc_bench'
KO=/nptpool.ko KVMDIR=/selftests/kvm OURS=/selftests/nptpool
LARGE='pud_pages=512 pmd_pages=16384' HUGE_POOL='pmd_pages=16384' GMODE=6 CYCLES=5 RUN_TIMEOUT=600
TABLE_FAULTS=512 TABLE_FAULT_PAIRS=4 GUEST_SIZES=128 WRITTEN_SLOTS=32G REAL_VM=/selftests/real_vm.sh THP=/sys/kernel/mm/transparent_hugepage/enabled
[ -x $REAL_VM ] && [ -r /vm/Image ] && BENCHES="$BENCHES real_vm"
while getopts hn:b:v:B:M:Sk:t:f:L:H:g:c:G:F:P:W:T:o: opt; do
	case $opt in
	n) REPS=$OPTARG ;;
	b) SIZES=$OPTARG ;;
	v) VCPUS=$OPTARG ;;
	B) BENCHES=$OPTARG ;;
	M) MODE=$OPTARG ;;
	S) STOCK_ONLY=1 ;;
	k) KO=$OPTARG ;;
	t) KVMDIR=$OPTARG ;;
	f) OURS=$OPTARG ;;
	L) LARGE=$OPTARG ;;
	H) HUGE_POOL=$OPTARG ;;
	g) GMODE=$OPTARG ;;
	c) CYCLES=$OPTARG ;;
	# Counts from 1, in decimal: shell arithmetic reads a leading 0 as octal.
	F) TABLE_FAULTS=$OPTARG
	   case $TABLE_FAULTS in '' | 0* | *[!0-9]*) usage >&2; exit 2 ;; esac ;;
	P) TABLE_FAULT_PAIRS=$OPTARG
	   case $TABLE_FAULT_PAIRS in '' | 0* | *[!0-9]*) usage >&2; exit 2 ;; esac ;;
	G) GUEST_SIZES=$OPTARG
	   case $GUEST_SIZES in '' | *[!0-9\ ]*) usage >&2; exit 2 ;; esac ;;
	W) WRITTEN_SLOTS=$OPTARG
	   case $WRITTEN_SLOTS in *[!0-9KMGkmg\ ]*) usage >&2; exit 2 ;; esac ;;
	T) RUN_TIMEOUT=$OPTARG ;;
	o) OUT=$OPTARG ;;
	h) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done
[ $# -eq $((OPTIND - 1)) ] || { usage >&2; exit 2; }
FLT=$OURS/fault_latency_test VMC=$OURS/vm_create_test

say() { echo "run-bench: $*"; }
die() { say "error: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (loads and unloads nptpool, reads debugfs)"
[ -c /dev/kvm ] || die "no /dev/kvm"
for b in $BENCHES; do
	case $b in
	kvm_page_table_test | demand_paging_test) [ -x "$KVMDIR/$b" ] || die "no $KVMDIR/$b (-t)" ;;
	fault_latency | table_fault) [ -x "$FLT" ] || die "no $FLT (-f)" ;;
	vm_create | vm_first_run) [ -x "$VMC" ] || die "no $VMC (-f)" ;;
	alloc_bench) ;;
	real_vm) [ -x $REAL_VM ] && [ -r /vm/Image ] && [ -w $THP ] ||
		die "no real VM here ($REAL_VM, /vm, $THP): boot the test host with VM=1 (make vm)" ;;
	*) die "unknown benchmark $b" ;;
	esac
done
[ "$STOCK_ONLY" = 1 ] || [ -r "$KO" ] || die "no $KO (-k), or -S for stock only"

# The mode column: the host mode KVM announced at boot.
if [ -z "$MODE" ]; then
	case $(dmesg 2>/dev/null | grep -E 'mode initialized successfully' | tail -n 1) in
	*Protected*) MODE=pkvm ;;
	*nVHE*) MODE=nvhe ;;
	*VHE*) MODE=vhe ;;
	*) die "cannot tell the KVM host mode from the kernel log; give -M" ;;
	esac
fi

tmp=$(mktemp -d /tmp/run-bench.XXXXXX) || die "mktemp"
# real_vm switches THP: put it back however the run ends.
thp_was=
[ -r $THP ] && thp_was=$(sed 's/.*\[\(.*\)\].*/\1/' $THP)
trap 'rm -rf "$tmp"; [ -z "$thp_was" ] || echo "$thp_was" >$THP' EXIT
[ -z "$OUT" ] || echo 'mode,side,rep,benchmark,config,metric,value,unit' >"$OUT" ||
	die "cannot write $OUT"

# SIZE (4M, 16K, 1G or bytes) in bytes.
bytes() {
	case $1 in
	*[kK]) echo $((${1%?} << 10)) ;;
	*[mM]) echo $((${1%?} << 20)) ;;
	*[gG]) echo $((${1%?} << 30)) ;;
	*) echo $(($1)) ;;
	esac
}

# --- the module: a run's side is whether nptpool is loaded when its VMs are created.
[ -d /sys/kernel/debug/nptpool ] || [ -d /sys/kernel/debug/kvm ] ||
	mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
was_loaded=0
[ -d /sys/module/nptpool ] && was_loaded=1
loaded=none	# parameters nptpool was loaded with by us; none: not loaded

use_stock() {
	[ -d /sys/module/nptpool ] || { loaded=none; return 0; }
	rmmod nptpool || die "rmmod nptpool failed: is a VM still using a pool?"
	loaded=none
}

use_pool() {	# $1: insmod parameters, '' for the defaults
	[ "$loaded" = "p:$1" ] && [ -d /sys/module/nptpool ] && return 0
	use_stock
	# shellcheck disable=SC2086 # a list of param=value words
	insmod "$KO" $1 || die "insmod $KO $1 failed"
	loaded="p:$1"
}

restore_module() {
	if [ "$STOCK_ONLY" = 1 ]; then return 0; fi
	if [ "$was_loaded" = 1 ]; then use_pool ''; else use_stock; fi
}

# --- samples
failures=0
# emit SIDE BENCH CONFIG < lines 'METRIC,VALUE,UNIT'
emit() {
	sed "s/^/$MODE,$1,$rep,$2,$3,/" >"$tmp/samples"
	[ -z "$OUT" ] || cat "$tmp/samples" >>"$OUT"
	sed 's/^/NPTBENCH,/' "$tmp/samples"
}

# run SIDE BENCH CONFIG PARSER COMMAND...: run it, turn its output into samples.
run() {
	local side=$1 bench=$2 config=$3 parser=$4 rc
	shift 4
	timeout -s KILL "$RUN_TIMEOUT" "$@" >"$tmp/out" 2>&1 </dev/null
	rc=$?
	if [ $rc -ne 0 ]; then
		failures=$((failures + 1))
		echo "NPTBENCH-ERROR,$MODE,$side,$rep,$bench,$config,exit $rc: $*"
		sed 's/^/run-bench:   | /' "$tmp/out" | tail -n 15
		return
	fi
	awk "$parser" "$tmp/out" | emit "$side" "$bench" "$config"
}

# Parsers: awk programs printing METRIC,VALUE,UNIT.
P_KPT='/_MAPPINGS: total execution time:/ {
	m = $1; sub(/:$/, "", m); v = $5; sub(/s$/, "", v); printf "%s,%.3f,ms\n", m, v * 1000 }'
P_DP='/Per-vcpu demand paging rate:/ { printf "per_vcpu_rate,%.1f,pages/s\n", $5 }
      /Overall demand paging rate:/ { printf "overall_rate,%.1f,pages/s\n", $5 }'
P_FLT='/^bench: / && $2 != "faults" { printf "%s,%s,%s\n", $2, $3, $4 }'
# real_vm.sh's console: the guest's uptime when its init starts, its first write's rate.
# A value that is not a plain number (a kernel message in the middle of the line) is left
# out, and the report then counts that metric as missing.
P_GUEST='{ sub(/\r$/, "") }
	/^nptvm-[0-9a-f]*: booted:/ { for (i = 1; i < NF; i++) if ($i == "up" && $(i + 1) ~ /^[0-9]+\.[0-9]+$/) printf "boot_to_init,%.0f,ms\n", $(i + 1) * 1000 }
	/^mem round 1: wrote/ { r = $0; sub(/.*\(/, "", r); sub(/ MiB\/s\).*/, "", r); if (r ~ /^[0-9]+\.[0-9]+$/) printf "write_rate,%s,MiB/s\n", r }'

# --- one function per benchmark: SIDE then its configuration.
b_kpt() {	# SIDE SRC VCPUS SIZE
	local name=anonymous
	[ "$2" = anonymous ] || name=hugetlb2M
	run "$1" kvm_page_table_test "v$3-$4-$name" "$P_KPT" \
		"$KVMDIR/kvm_page_table_test" -m "$GMODE" -s "$2" -v "$3" -b "$(bytes "$4")"
}

b_dp() {	# SIDE VCPUS SIZE: demand_paging_test's -b is per vCPU
	run "$1" demand_paging_test "v$2-$3" "$P_DP" \
		"$KVMDIR/demand_paging_test" -m "$GMODE" -v "$2" -b $(($(bytes "$3") / $2))
}

b_fault() {	# SIDE VCPUS SIZE
	run "$1" fault_latency "v$2-$3" "$P_FLT" "$FLT" -r -v "$2" -b "$(bytes "$3")"
}

b_tfault() {	# SIDE VCPUS: one page per 2 MiB, so every fault allocates a table
	run "$1" table_fault "v$2-${TABLE_FAULTS}tables" "$P_FLT" \
		"$FLT" -v "$2" -b $((TABLE_FAULTS << 21)) -s 2M
}

b_create() {	# SIDE POOL VCPUS SIZE
	run "$1" vm_create "v$3-$4-$2_pool" "$P_FLT" \
		"$VMC" -n "$CYCLES" -v "$3" -b "$(bytes "$4")"
}

b_first_run() {	# SIDE VCPUS SIZE: as vm_create, and vCPU 0 runs once in between
	run "$1" vm_first_run "v$2-$3" "$P_FLT" \
		"$VMC" -r -n "$CYCLES" -v "$2" -b "$(bytes "$3")"
}

b_first_run_written() {	# SIDE SIZE: ... and its guest writes a page per 2 MiB
	run "$1" vm_first_run "v1-$2-written" "$P_FLT" \
		"$VMC" -r -t 2M -n "$CYCLES" -v 1 -b "$(bytes "$2")"
}

b_guest() {	# SIDE THP(on|off) MIB: a real guest writes MIB MiB once
	if [ "$2" = on ]; then echo always >$THP; else echo never >$THP; fi
	run "$1" real_vm "thp_$2-${3}M" "$P_GUEST" \
		$REAL_VM -m $(($3 + 192)) -T $((RUN_TIMEOUT - 10)) mem nptvm_mib="$3" nptvm_rounds=1
}

# alloc_bench: nptpool's debugfs times its bump allocator under the VM lock (nptpool
# side) and the zeroed page allocation of KVM's stock memcache (stock side) in one read;
# first on one CPU, then on every CPU at once, each reader pinned to its own CPU.
alloc_emit() {	# CONFIG FILE
	awk -v want=ptalloc_alloc_ns '$1 == want && $2 ~ /^[0-9]+$/ { print "alloc_ns," $2 ",ns" }' "$2" |
		emit nptpool alloc_bench "$1"
	awk -v want=memcache_alloc_ns '$1 == want && $2 ~ /^[0-9]+$/ { print "alloc_ns," $2 ",ns" }' "$2" |
		emit stock alloc_bench "$1"
	grep -q '^ptalloc_alloc_ns [0-9]' "$2" && grep -q '^memcache_alloc_ns [0-9]' "$2" || {
		failures=$((failures + 1))
		echo "NPTBENCH-ERROR,$MODE,nptpool,$rep,alloc_bench,$1,unexpected: $(tr '\n' ' ' <"$2")"
	}
}

b_alloc() {
	local f=/sys/kernel/debug/nptpool/alloc_bench ncpu cpu
	[ -r "$f" ] || { say "no $f in this nptpool.ko: alloc_bench skipped"; return; }
	ncpu=$(nproc)
	cat "$f" >"$tmp/alloc.solo"
	alloc_emit 1cpu "$tmp/alloc.solo"
	for cpu in $(seq 0 $((ncpu - 1))); do
		if command -v taskset >/dev/null; then
			taskset -c "$cpu" cat "$f" >"$tmp/alloc.$cpu" &
		else
			cat "$f" >"$tmp/alloc.$cpu" &
		fi
	done
	wait
	for cpu in $(seq 0 $((ncpu - 1))); do
		alloc_emit "${ncpu}cpus" "$tmp/alloc.$cpu"
	done
}

# pair POOL_PARAMS FUNCTION ARGS...: the configuration on both sides, in this pair's
# order; the function gets the side first.
pairno=0
pair() {
	local params=$1 fn=$2 order side
	shift 2
	if [ $(((rep + pairno) % 2)) -eq 1 ]; then order='stock nptpool'; else order='nptpool stock'; fi
	pairno=$((pairno + 1))
	for side in $order; do
		if [ $side = stock ]; then
			use_stock
		else
			[ "$STOCK_ONLY" = 1 ] && continue
			use_pool "$params"
		fi
		$fn $side "$@"
	done
}

# Enough 2 MiB huge pages for the largest hugetlb run (the QEMU host reserves them at
# boot with HUGEPAGES; on a real host this raises the 2 MiB pool if it must).  The 2 MiB
# pool's own files: the default huge page size need not be 2 MiB (64K-page kernels).
need_hugepages() {
	local max=0 s need free total d=/sys/kernel/mm/hugepages/hugepages-2048kB
	[ -d $d ] || { say "no 2 MiB huge pages on this kernel: hugetlb runs will fail"; return; }
	for s in $SIZES; do [ "$(bytes "$s")" -gt $max ] && max=$(bytes "$s"); done
	need=$(((max + (2 << 20) - 1) / (2 << 20) + 1))
	free=$(cat $d/free_hugepages)
	[ "$free" -ge $need ] && return 0
	total=$(cat $d/nr_hugepages)
	echo $((total + need - free)) >$d/nr_hugepages
	free=$(cat $d/free_hugepages)
	[ "$free" -ge $need ] || say "only $free free 2 MiB huge pages, $need needed: hugetlb runs will fail"
}

one_rep() {
	local b v s pool
	pairno=0
	for b in $BENCHES; do
		case $b in
		kvm_page_table_test)
			for v in $VCPUS; do for s in $SIZES; do pair '' b_kpt anonymous $v $s; done; done
			for v in $VCPUS; do
				for s in $SIZES; do pair "$HUGE_POOL" b_kpt anonymous_hugetlb_2mb $v $s; done
			done ;;
		demand_paging_test)
			for v in $VCPUS; do for s in $SIZES; do pair '' b_dp $v $s; done; done ;;
		fault_latency)
			for v in $VCPUS; do for s in $SIZES; do pair '' b_fault $v $s; done; done ;;
		table_fault)
			local i
			for v in $VCPUS; do
				for i in $(seq "$TABLE_FAULT_PAIRS"); do pair '' b_tfault $v; done
			done ;;
		vm_create)
			# vm_create_test never runs a vCPU, and a fitted pool is only reserved
			# as the VM first runs: "default" is the built-in fixed pool (fit=0).
			for pool in default large; do
				local params=fit=0
				[ $pool = default ] || params=$LARGE
				for v in $VCPUS; do for s in $SIZES; do pair "$params" b_create $pool $v $s; done; done
			done ;;
		vm_first_run)
			# At the default parameters: the fitted pool is reserved in the run.
			for v in $VCPUS; do for s in $SIZES; do pair '' b_first_run $v $s; done; done
			for s in $WRITTEN_SLOTS; do pair '' b_first_run_written $s; done ;;
		alloc_bench)
			[ "$STOCK_ONLY" = 1 ] || { use_pool ''; b_alloc; } ;;
		real_vm)
			local t
			for t in on off; do for s in $GUEST_SIZES; do pair '' b_guest $t $s; done; done
			echo "$thp_was" >$THP ;;
		esac
		say "repetition $rep: $b done at $(($(cut -d. -f1 /proc/uptime) - start)) s"
	done
}

case " $BENCHES " in *" kvm_page_table_test "*) need_hugepages ;; esac
say "mode $MODE, $REPS repetitions, sizes $SIZES, vCPUs $VCPUS, $(nproc) CPUs"
say "benchmarks: $BENCHES"
start=$(cut -d. -f1 /proc/uptime)
# An untimed warm-up: the first VM of a boot pays for cold caches on whichever side
# came first.
rep=0
[ -x "$FLT" ] && { use_stock; "$FLT" -v 1 -b 1M >/dev/null 2>&1; }
rep=1
while [ $rep -le "$REPS" ]; do
	one_rep
	say "repetition $rep of $REPS done at $(($(cut -d. -f1 /proc/uptime) - start)) s"
	rep=$((rep + 1))
done
restore_module
say "done: $failures failed runs, $(($(cut -d. -f1 /proc/uptime) - start)) s"
[ $failures -eq 0 ]
