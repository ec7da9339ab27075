#!/usr/bin/env bash
# Boot the nptpool test host: QEMU's arm64 virt machine with EL2 (KVM runs nested under
# TCG), our kernel and initramfs, and one shell command for the guest's init to run.
# Exits with the command's status, or:
#   124  the guest did not finish within TIMEOUT seconds (hang)
#   125  the guest crashed (panic or oops) or ended without reporting a status
set -euo pipefail

usage() {
	cat <<USAGE
usage: $0 KERNEL_BUILD_DIR BUILD_DIR 'COMMAND'

environment:
  SMP=2  MEM=2G  TIMEOUT=900 (seconds)  KERNEL_ARGS='' (added to the guest's command line)
  NPTPOOL=1 (0: do not load nptpool.ko)  NPTPOOL_ARGS='' (insmod parameters)
  GUEST_FILES=DIR (copied to /extra in the guest)
  HUGEPAGES=0 (huge pages of the default size to reserve: 2 MiB with 4K pages, 32 MiB
  with 16K, 512 MiB with 64K)
  GUEST_LOG=BUILD_DIR/guest.log  GUEST_QUIET=0 (1: console to the log only)
  QEMU_CPU=max,pauth-impdef=on (-cpu)  QEMU_ACCEL='' (-accel, e.g. tcg,thread=single)
  GIC=3 (the host's interrupt controller: 3, or 2 for a GICv2 host)
  VM=0 (1: add BUILD_DIR/vm.cpio, Debian's QEMU and a guest for real VMs: make vm)
  PERF=0 (1: add BUILD_DIR/perf.cpio, Debian's perf at /usr/bin/perf: make perf)
  NUMA=1 (2: two NUMA nodes, each with half of MEM and of the CPUs)
USAGE
}
[ $# -eq 3 ] || { usage >&2; exit 2; }
kdir=$1 b=$2 cmd=$3
[ -n "$cmd" ] || { echo "run-qemu: no command given (make guest CMD='...')" >&2; exit 2; }

SMP=${SMP:-2} MEM=${MEM:-2G} TIMEOUT=${TIMEOUT:-900} GIC=${GIC:-3} NUMA=${NUMA:-1}
case $GIC in 2 | 3) ;; *) echo "run-qemu: GIC=$GIC: must be 2 or 3" >&2; exit 2 ;; esac
case $NUMA in 1 | 2) ;; *) echo "run-qemu: NUMA=$NUMA: must be 1 or 2" >&2; exit 2 ;; esac
if [ "$NUMA" = 2 ]; then
	# Each node gets half: whole MiB, as QEMU's -m and the nodes' sizes must add up.
	case $MEM in
	*[!0-9]*[!0-9MmGg]* | *[!0-9]*[0-9]* | [MmGg] | '') mem_mib= ;;
	*[Gg]) mem_mib=$((${MEM%[Gg]} * 1024)) ;;
	*[Mm]) mem_mib=${MEM%[Mm]} ;;
	*) mem_mib=$MEM ;;
	esac
	if [ -z "$mem_mib" ] || [ $((mem_mib % 2)) -ne 0 ] || [ "$SMP" -lt 2 ] || [ $((SMP % 2)) -ne 0 ]; then
		echo "run-qemu: NUMA=2 needs MEM in whole MiB or GiB, an even number of MiB, and an even SMP (MEM=$MEM SMP=$SMP)" >&2
		exit 2
	fi
fi
log=${GUEST_LOG:-$b/guest.log}
image=$kdir/arch/arm64/boot/Image

run=$(mktemp -d)
trap 'rm -rf "$run"' EXIT
nonce=$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')

# A second cpio appended to the cached one: the kernel unpacks both, so a new command
# costs nothing to pack.
printf '%s\n' "$cmd" >"$run/cmd"
{
	echo "NONCE=$nonce"
	echo "NPTPOOL=${NPTPOOL:-1}"
	echo "NPTPOOL_ARGS='${NPTPOOL_ARGS:-}'"
	echo "HUGEPAGES=${HUGEPAGES:-0}"
} >"$run/env"
{
	echo "file /run/cmd $run/cmd 0644 0 0"
	echo "file /run/env $run/env 0644 0 0"
	if [ -n "${GUEST_FILES:-}" ]; then
		[ -d "$GUEST_FILES" ] || { echo "run-qemu: GUEST_FILES=$GUEST_FILES is not a directory" >&2; exit 2; }
		echo "dir /extra 0755 0 0"
		(cd "$GUEST_FILES" && find . -mindepth 1 -type d | sort) |
			sed 's|^\./\(.*\)|dir /extra/\1 0755 0 0|'
		(cd "$GUEST_FILES" && find . -type f | sort) |
			while read -r f; do
				echo "file /extra/${f#./} $(realpath "$GUEST_FILES/$f") $(stat -c %a "$GUEST_FILES/$f") 0 0"
			done
	fi
} >"$run/list"
"$kdir/usr/gen_init_cpio" "$run/list" >"$run/run.cpio"
# VM=1 and PERF=1 add BUILD_DIR/vm.cpio and perf.cpio (make vm, make perf).
extra=()
for name in vm perf; do
	flag=${name^^}
	[ "${!flag:-0}" = 1 ] || continue
	[ -s "$b/$name.cpio" ] || { echo "run-qemu: $flag=1 but no $b/$name.cpio: run make $name" >&2; exit 2; }
	extra+=("$b/$name.cpio")
done
cat "$b/initramfs.cpio" "${extra[@]}" "$run/run.cpio" >"$run/initrd"

# kunit.*: KUnit is built in but off by default (allnoconfig); on, nptpool.ko's suite
# runs each time the module loads.
append="console=ttyAMA0 rdinit=/init panic=-1 oops=panic quiet kunit.enable=1 kunit.autorun=1 ${KERNEL_ARGS:-}"
qemu=(qemu-system-aarch64 -M virt,virtualization=on,gic-version="$GIC" -cpu "${QEMU_CPU:-max,pauth-impdef=on}"
	-smp "$SMP" -m "$MEM" -display none -monitor none -serial stdio -nic none -no-reboot
	-kernel "$image" -initrd "$run/initrd" -append "$append")
if [ "$NUMA" = 2 ]; then
	half=$((SMP / 2))
	for n in 0 1; do
		qemu+=(-object memory-backend-ram,id=node$n,size=$((mem_mib / 2))M
			-numa node,nodeid=$n,cpus=$((n * half))-$((n * half + half - 1)),memdev=node$n)
	done
fi
# make bench picks its own: see scripts/bench.sh for why.
[ -z "${QEMU_ACCEL:-}" ] || qemu+=(-accel "$QEMU_ACCEL")

mkdir -p "$(dirname "$log")"
set +e
if [ "${GUEST_QUIET:-0}" = 1 ]; then
	timeout -k 10 "$TIMEOUT" "${qemu[@]}" </dev/null 2>&1 | sed -u 's/\r$//' >"$log"
else
	timeout -k 10 "$TIMEOUT" "${qemu[@]}" </dev/null 2>&1 | sed -u 's/\r$//' | tee "$log"
fi
qstatus=${PIPESTATUS[0]}
set -e

tail_log() {
	echo "---- last 40 lines of $log ----" >&2
	tail -n 40 "$log" >&2
}
if grep -qE 'Kernel panic - not syncing|Internal error: Oops' "$log"; then
	tail_log
	echo "run-qemu: the guest kernel crashed (see above)" >&2
	exit 125
fi
if [ "$qstatus" -eq 124 ] || [ "$qstatus" -eq 137 ]; then
	tail_log
	echo "run-qemu: the guest did not finish within $TIMEOUT s" >&2
	exit 124
fi
status=$(sed -n "s/^nptpool-exit-$nonce: \([0-9]*\)$/\1/p" "$log" | tail -n 1)
if [ -z "$status" ]; then
	tail_log
	echo "run-qemu: the guest ended without reporting a status (qemu exit $qstatus)" >&2
	exit 125
fi
exit "$status"
