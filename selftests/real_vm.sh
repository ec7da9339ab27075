#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# One real VM: Debian's QEMU (in the test host when it boots with VM=1, make vm) runs the
# guest kernel and initramfs of /vm under KVM, the way users run theirs.  The guest's
# init (qemu-config/guest-init) runs the workload RUN and reports behind a nonce.
#
# usage: real_vm.sh [-s VCPUS] [-m GUEST_MIB] [-p PIDFILE] [-T TIMEOUT_S] [-v] RUN
#                   [nptvm_KEY=VALUE...] [-- QEMU_ARGS...]
#   RUN        boot, mem, disk or reboot (qemu-config/guest-init); nptvm_mib=, nptvm_rounds=,
#              nptvm_seed=, nptvm_boots= reach it on the kernel command line
#   -s, -m     vCPUs (default 1) and guest memory in MiB (default 256)
#   -p         QEMU writes its pid there (the VM's debugfs directory is vm-PID-N)
#   -T         kill QEMU after this many seconds (default 600)
#   -v         the guest kernel's boot messages too (it boots quiet)
#   QEMU_ARGS  more QEMU options: disks, a memory backend; -no-reboot unless RUN is reboot
# Prints the QEMU command line, the guest's console as it comes (QEMU's own messages on
# stderr), then "real_vm: QEMU exited N".  Exit status: the workload's ("status N" on the
# console) when QEMU exited 0, 124 when QEMU was killed at the timeout, else 125.
set -u
usage() {
	sed -n '7,19s/^# \{0,1\}//p' "$0" >&2
	exit 2
}
smp=1 mem=256 pidfile='' tmo=600 quiet=quiet
while getopts s:m:p:T:vh opt; do
	case $opt in
	s) smp=$OPTARG ;;
	m) mem=$OPTARG ;;
	p) pidfile=$OPTARG ;;
	T) tmo=$OPTARG ;;
	v) quiet= ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
[ $# -ge 1 ] || usage
run=$1
shift
case $run in boot | mem | disk | reboot) ;; *) echo "real_vm.sh: unknown RUN '$run'" >&2; usage ;; esac

QEMU=/usr/bin/qemu-system-aarch64
[ -x $QEMU ] && [ -r /vm/Image ] && [ -r /vm/guest.cpio ] ||
	{ echo "real_vm.sh: no $QEMU or /vm: boot the test host with VM=1 (make vm)" >&2; exit 125; }

nonce=$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
append="console=ttyAMA0 panic=-1 $quiet nptvm_nonce=$nonce nptvm_run=$run"
while [ $# -gt 0 ] && [ "$1" != -- ]; do
	case $1 in
	nptvm_*=*) append="$append $1" ;;
	*) echo "real_vm.sh: '$1' is not nptvm_KEY=VALUE (QEMU options go after --)" >&2; usage ;;
	esac
	shift
done
[ "${1:-}" = -- ] && shift
console=$(mktemp /tmp/real_vm.XXXXXX)
trap 'rm -f "$console"' EXIT
# A guest that panics or reboots on its own ends QEMU, except where rebooting is the test.
noreboot=-no-reboot
[ "$run" = reboot ] && noreboot=
set -- -M virt,gic-version=host -accel kvm -cpu host -smp "$smp" -m "${mem}M" \
	-nodefaults -no-user-config -display none $noreboot \
	-chardev "stdio,id=con,signal=off,logfile=$console" -serial chardev:con \
	${pidfile:+-pidfile "$pidfile"} -kernel /vm/Image -initrd /vm/guest.cpio "$@"
echo "\$ qemu-system-aarch64 $* -append '$append'"
t0=$(cut -d. -f1 /proc/uptime)
timeout -s KILL "$tmo" $QEMU "$@" -append "$append" </dev/null
rc=$?
took=$(($(cut -d. -f1 /proc/uptime) - t0))
echo "real_vm: QEMU exited $rc"
# SIGKILL at the timeout, not from someone else (the OOM killer).
[ $rc -eq 137 ] && [ $took -ge "$tmo" ] && { echo "real_vm: QEMU killed after ${tmo}s"; exit 124; }
status=$(sed -n "s/^nptvm-$nonce: status \([0-9]*\).*/\1/p" "$console" | tail -n 1)
[ $rc -eq 0 ] && [ -n "$status" ] || exit 125
exit "$status"
