#!/usr/bin/env bash
# `make check` after the module, lint and initramfs are built: host tests, harness tests,
# the guest selftest run; then one summary line over every TAP result collected.
set -uo pipefail

usage() {
	cat <<USAGE
usage: $0 KERNEL_BUILD_DIR BUILD_DIR
       $0 --granules "16k 64k" KERNEL_BUILD_DIR BUILD_DIR
       $0 --large-vms KERNEL_BUILD_DIR BUILD_DIR
  The first is make check; CHECK_GRANULES="16k 64k" adds a smoke boot per page size.
  The second is make check-granules: the whole granule list on each page size.
  The third is make check-large-vms: selftests/vm-large.list on a 6 GiB test host.
  Each granule's test host is BUILD_DIR/granule-G (make granule-initramfs-G).
USAGE
}
granules_only= large_vms=
if [ "${1:-}" = --granules ]; then
	granules_only=$2
	shift 2
elif [ "${1:-}" = --large-vms ]; then
	large_vms=1
	shift
fi
[ $# -eq 2 ] || { usage >&2; exit 2; }
kdir=$1 b=$2
top=$(cd "$(dirname "$0")/.." && pwd)
out=$b/check
[ -n "$granules_only" ] && out=$b/check-granules
[ -n "$large_vms" ] && out=$b/check-large-vms
rm -rf "$out" && mkdir -p "$out"

guest() { "$top/qemu-config/run-qemu.sh" "$kdir" "$b" "$@"; }
export GUEST_QUIET=1

# granule_run G CPU LIST...: one boot of the G-page test host (its own kernel, module
# and test modules; the same userspace) on QEMU -cpu CPU, running the lists, then the
# kernel log check.
granule_run() {
	local g=$1 cpu=$2 gb=$b/granule-$1 rc
	shift 2
	echo "== guest selftests ($g pages, -cpu $cpu: $*)"
	[ -s "$gb/kdir" ] || { echo "not ok 1 granule-$g: no test host built in $gb" >"$out/guest-granule-$g.log"; return; }
	# KVM destroys a VM by walking its whole IPA space in chunks of the largest block
	# (kvm_stage2_destroy): with 16K pages and LPA2 a 52-bit VM is 2^27 chunks of 32 MiB,
	# tens of seconds under TCG, and every upstream selftest creates one to probe the host.
	local tscale=1
	[ "$g" = 16k ] && [ "${cpu%lpa2=off}" = "$cpu" ] && tscale=4
	GUEST_LOG=$out/guest-granule-$g.log TIMEOUT=$((${CHECK_TIMEOUT:-2400} * tscale)) SMP=2 \
		MEM=2G KERNEL_ARGS="log_buf_len=8M" QEMU_CPU=$cpu \
		"$top/qemu-config/run-qemu.sh" "$(cat "$gb/kdir")" "$gb" \
		"TIMEOUT_SCALE=$tscale /selftests/run_tests.sh $* /selftests/kernel_log.list"
	rc=$?
	grep -E '^not ok [0-9]+ ' "$out/guest-granule-$g.log"
	[ $rc -eq 0 ] || echo "guest run exited $rc (log: $out/guest-granule-$g.log)"
}

# A KASAN kernel (make check-debug) runs guests several times slower: scale timeouts.
scale=1
grep -q '^CONFIG_KASAN=y' "$kdir/.config" && scale=4
# The debug kernel poisons freed pages (qemu-config/debug.config): pools start full of
# 0xaa, so a table handed out without zeroing cannot go unnoticed there.
poison=
grep -q '^CONFIG_PAGE_POISONING=y' "$kdir/.config" && poison=page_poison=1

# guest_run NAME KERNEL_ARGS LIST...: one boot running the lists, then the kernel log
# check; failures are shown.  The log buffer is sized so no report scrolls out of it;
# HOST_MEM sizes the test host (2G).
guest_run() {
	local name=$1 args=$2 rc
	shift 2
	echo "== guest selftests ($name host: $*)"
	GUEST_LOG=$out/guest-$name.log TIMEOUT=$((${CHECK_TIMEOUT:-2400} * scale)) SMP=2 MEM=${HOST_MEM:-2G} \
		HUGEPAGES=${HUGEPAGES:-64} KERNEL_ARGS="log_buf_len=8M $poison $args" \
		guest "TIMEOUT_SCALE=$scale /selftests/run_tests.sh $* /selftests/kernel_log.list"
	rc=$?
	grep -E '^not ok [0-9]+ ' "$out/guest-$name.log"
	[ $rc -eq 0 ] || echo "guest run exited $rc (log: $out/guest-$name.log)"
}

if [ -n "$granules_only" ]; then
	for g in $granules_only; do
		granule_run "$g" max,pauth-impdef=on /selftests/granule.list
	done
	echo "== summary"
	python3 "$top/scripts/tap_summary.py" "$out"/guest-granule-*.log
	exit
fi

# Guests larger than make check's test host holds: a 6 GiB one.
if [ -n "$large_vms" ]; then
	VM=1 HUGEPAGES=0 HOST_MEM=6G guest_run large-vms "" /selftests/vm-large.list
	echo "== summary"
	python3 "$top/scripts/tap_summary.py" "$out"/guest-large-vms.log
	exit
fi

echo "== host tests"
"$top/scripts/test-host.sh" "$b"

# Tests of the harness itself, as TAP: what `make guest` promises its users.
echo "== harness tests"
{
	echo "1..5"
	n=0
	result() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n harness/$2"; else echo "not ok $n harness/$2"; fi; }

	modinfo "$b/module/nptpool.ko" >"$out/modinfo.txt" 2>&1
	grep -q '^description:.*stage-2' "$out/modinfo.txt" && grep -q '^parm:.*pmd_pages' "$out/modinfo.txt" &&
		grep -q '^license:.*GPL' "$out/modinfo.txt"
	result $? "modinfo shows description, license and parameters"

	GUEST_LOG=$out/harness-status.log TIMEOUT=300 guest 'test -e /sys/module/nptpool && exit 3'
	rc=$?
	[ $rc -eq 3 ]
	result $? "guest status carried out of QEMU, module loaded (got $rc, want 3)"

	GUEST_LOG=$out/harness-nomodule.log TIMEOUT=300 NPTPOOL=0 guest 'test ! -e /sys/module/nptpool'
	result $? "NPTPOOL=0 boots without the module"

	start=$(date +%s)
	GUEST_LOG=$out/harness-crash.log TIMEOUT=300 guest 'echo c >/proc/sysrq-trigger; sleep 600' 2>/dev/null
	rc=$? took=$(($(date +%s) - start))
	[ $rc -eq 125 ] && [ $took -lt 200 ]
	result $? "guest crash fails promptly (exit $rc after ${took}s, want 125)"

	GUEST_LOG=$out/harness-protected.log TIMEOUT=300 NPTPOOL=0 KERNEL_ARGS=kvm-arm.mode=protected \
		guest 'dmesg | grep -qE "Protected [nh]VHE mode initialized" || exit 10
		       err=$(insmod /nptpool.ko 2>&1) && exit 11
		       echo "$err" | grep -q "Operation not permitted" || exit 12
		       dmesg | grep -q "nptpool: refusing to load: in protected mode" || exit 13
		       test ! -e /sys/module/nptpool'
	rc=$?
	[ $rc -eq 0 ]
	result $? "insmod under pKVM is refused with EPERM and a reason (status $rc)"
} | tee "$out/harness.tap" | grep -v '^ok'

# On a KASAN kernel the whole upstream list would take most of an hour: there, only the
# upstream tests that work stage-2 tables hardest run.
upstream=/selftests/upstream.list
[ $scale -gt 1 ] && upstream=
guest_run vhe "" /selftests/nptpool.list /selftests/upstream-stage2.list $upstream
guest_run nvhe kvm-arm.mode=nvhe /selftests/nptpool.list
# Host configurations that only some scenarios need, each a short boot of its own:
# kvm_phys_addr_ioremap() is only reached on a GICv2 host, shadow stage-2 MMUs only
# exist on a nested-mode one.
GIC=2 guest_run gicv2 "" /selftests/gicv2.list
guest_run nested kvm-arm.mode=nested /selftests/nested.list
# Real VMs: Debian's QEMU and a Linux guest (make vm), huge pages for a hugetlb-backed one.
# A 4 GiB test host, so that a 2 GiB guest fits beside the huge pages.
VM=1 HUGEPAGES=160 HOST_MEM=4G guest_run vm "" /selftests/vm.list
# Host activity that empties stage-2 tables, on one boot: a host CPU without FEAT_S2FWB,
# where a guest reboot unmaps the whole stage-2, and two NUMA nodes for NUMA balancing.
VM=1 NUMA=2 QEMU_CPU=neoverse-n1 guest_run other-host "" /selftests/nofwb.list /selftests/numa.list

# make bench cannot rot silently: one repetition at the tiniest sizes, on the machine
# make bench boots (scripts/bench.sh says why), VHE only; passes when every benchmark
# produced every metric on both sides and the report and plots come out.  No timing
# is judged.
echo "== bench smoke (VHE, 1 repetition)"
GUEST_LOG=$out/bench-smoke.log TIMEOUT=$((600 * scale)) SMP=2 MEM=2G HUGEPAGES=8 VM=1 \
	QEMU_ACCEL=tcg,thread=single QEMU_CPU=max,pauth-impdef=on,lpa2=off \
	guest "/selftests/run-bench.sh -M vhe -n 1 -b 1M -v '1 2' -c 1 -G 16 -F 16 -P 1"
rc=$?
{
	echo 'mode,side,rep,benchmark,config,metric,value,unit'
	grep -h '^NPTBENCH,' "$out/bench-smoke.log" | cut -d, -f2-
} >"$out/bench-smoke.csv"
python3 "$top/scripts/bench_report.py" --smoke-tap --sizes 1M --vcpus '1 2' --cpus 2 --guest-sizes 16M --table-faults 16 \
	--runner-status $rc --report-dir "$out/bench-smoke" "$out/bench-smoke.csv" >"$out/bench-smoke.tap"
grep -E '^(not ok|# missing)' "$out/bench-smoke.tap"
[ $rc -eq 0 ] || { grep -E '^NPTBENCH-ERROR|^run-bench:' "$out/bench-smoke.log"; echo "run-bench.sh exited $rc (log: $out/bench-smoke.log)"; }

# The other page sizes, briefly (make check-granules runs their whole list, with LPA2).
# Without LPA2 the largest IPA is 48 bits, and a 16K host's smoke takes half a minute,
# not five (see granule_run); 40 bits (two levels, a 16-page root) and 48 (a pud region)
# are still there.
for g in ${CHECK_GRANULES:-}; do
	granule_run "$g" max,pauth-impdef=on,lpa2=off /selftests/granule-smoke.list
done

echo "== summary"
python3 "$top/scripts/tap_summary.py" "$out"/host-*.tap "$out"/harness.tap "$out"/guest-*.log \
	"$out"/bench-smoke.tap
