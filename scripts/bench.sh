#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# `make bench`: boot the test host once per KVM host mode (VHE, nVHE, and pKVM for a
# stock-only context column), run selftests/run-bench.sh in each, collect every sample
# into results/samples.csv, and write results/summary.md and the plots; print the summary.
set -uo pipefail

usage() {
	cat <<USAGE
usage: $0 KERNEL_BUILD_DIR BUILD_DIR

environment:
  BENCH_REPS=5            repetitions (each: every configuration, stock and nptpool)
  BENCH_SIZES='2M 8M'     test memory sizes, all vCPUs of a VM together
  BENCH_VCPUS='1 2 4'     vCPU counts
  BENCH_MODES='vhe nvhe pkvm'  host modes to boot (pkvm: stock KVM only)
  BENCH_GUEST_SIZES='128'  MiB the real guest writes (real_vm, when BUILD_DIR/vm.cpio exists)
  BENCH_ARGS=''           more selftests/run-bench.sh options, e.g. "-B 'fault_latency'"
  BENCH_OUT=results       where samples.csv, summary.md and the PNGs go
  BENCH_TIMEOUT=1800      seconds per boot before it counts as hung
USAGE
}
[ $# -eq 2 ] || { usage >&2; exit 2; }
kdir=$1 b=$2
top=$(cd "$(dirname "$0")/.." && pwd)
reps=${BENCH_REPS:-5} sizes=${BENCH_SIZES:-2M 8M} vcpus=${BENCH_VCPUS:-1 2 4}
modes=${BENCH_MODES:-vhe nvhe pkvm} out=${BENCH_OUT:-$top/results}
logs=$b/bench
rm -rf "$logs" && mkdir -p "$logs" "$out" || exit 1
rm -f "$out"/samples.csv "$out"/summary.md "$out"/*.png

# The machine: 4 vCPUs, so that 4-vCPU VMs make sense, and room for the hugetlb runs.
# Single-threaded TCG: with one host thread per vCPU on a 2-core machine, every
# broadcast TLB invalidation waits for all vCPU threads to be scheduled, and
# kvm_page_table_test with 4 vCPUs took 20-50 s a run instead of about 1, dominated by
# that emulation cost; round-robin TCG makes the runs short and far steadier.  No LPA2:
# every upstream selftest first probes the host with a VM of the largest IPA size, and
# KVM tears a 52-bit IPA VM down in 4M chunks of 1 GiB (about 1 s under TCG, per
# process, on both sides alike); at 48 bits that is 16 times less.  Our VMs use 40 bits.
export SMP=4 MEM=2G HUGEPAGES=32 GUEST_QUIET=1 TIMEOUT=${BENCH_TIMEOUT:-1800}
# Debian's QEMU and the real guest (make vm): run-bench.sh adds real_vm when they are there.
VM=0
[ -s "$b/vm.cpio" ] && VM=1
export VM
export QEMU_ACCEL=${QEMU_ACCEL:-tcg,thread=single}
export QEMU_CPU=${QEMU_CPU:-max,pauth-impdef=on,lpa2=off}

q() { printf "'%s'" "${1//\'/\'\\\'\'}"; }
start=$(date +%s)
failed=0
for mode in $modes; do
	# kunit.enable=0: the guest boots with nptpool's KUnit suite running at every
	# insmod (make check wants that); the runner reloads the module about 70 times a
	# repetition and the suite's pools have no business in the measurement.
	case $mode in
	vhe) args=kunit.enable=0 nptpool=1 runner_args='' ;;
	nvhe) args='kunit.enable=0 kvm-arm.mode=nvhe' nptpool=1 runner_args='' ;;
	pkvm) args='kunit.enable=0 kvm-arm.mode=protected' nptpool=0 runner_args=-S ;;
	*) echo "bench: unknown mode $mode (vhe, nvhe, pkvm)" >&2; exit 2 ;;
	esac
	log=$logs/guest-$mode.log
	echo "== $mode: booting, $reps repetitions (log: $log)"
	: >"$log"
	# Progress from the console while the boot runs.
	tail -n +1 -F "$log" 2>/dev/null > >(grep --line-buffered -E '^run-bench:|^NPTBENCH-ERROR' |
		sed -u "s/^/   $mode: /") &
	tailpid=$!
	t0=$(date +%s)
	GUEST_LOG=$log KERNEL_ARGS=$args NPTPOOL=$nptpool \
		"$top/qemu-config/run-qemu.sh" "$kdir" "$b" \
		"/selftests/run-bench.sh -M $mode -n $reps -b $(q "$sizes") -v $(q "$vcpus") -G $(q "${BENCH_GUEST_SIZES:-128}") $runner_args ${BENCH_ARGS:-}"
	rc=$?
	sleep 1
	kill "$tailpid" 2>/dev/null
	wait "$tailpid" 2>/dev/null
	echo "== $mode: exit $rc after $(($(date +%s) - t0)) s"
	[ $rc -eq 0 ] || failed=$((failed + 1))
done

# The marker keeps console noise out; the report rejects any line that is not a sample.
{
	echo 'mode,side,rep,benchmark,config,metric,value,unit'
	grep -h '^NPTBENCH,' "$logs"/guest-*.log | cut -d, -f2-
} >"$out/samples.csv"
errors=$(grep -h '^NPTBENCH-ERROR' "$logs"/guest-*.log | wc -l)
took=$(($(date +%s) - start))
echo "== report: $(($(wc -l <"$out/samples.csv") - 1)) samples, $errors failed runs, boots took $took s"
python3 "$top/scripts/bench_report.py" --plots \
	--note "make bench: $(date -u '+%Y-%m-%d %H:%M UTC'), $took s for the boots ($modes), sizes $sizes, vCPUs $vcpus" \
	--note "QEMU $QEMU_ACCEL, -cpu $QEMU_CPU, -smp $SMP, -m $MEM on $(nproc) host CPUs; failed runs: $errors (guest logs in $logs)" \
	"$out/samples.csv" "$out" || failed=$((failed + 1))
echo
cat "$out/summary.md"
echo
echo "bench: $out/samples.csv $out/summary.md $out/latency_cdf.png $out/ratios.png"
echo "bench: $(($(date +%s) - start)) s in all"
[ $failed -eq 0 ] && [ "$errors" -eq 0 ]
