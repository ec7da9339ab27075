#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# pool_params_test: every module parameter at 0, at its minimum and maximum, past it,
# negative, past 32 and 64 bits, malformed, repeated, and both at values whose pool size
# would overflow a 32-bit computation.
#
# - pud_pages and pmd_pages are overrides: 0 (their default) means not given, and with
#   neither given each VM's pool is fitted (fit=1, the default).  A value that parses but
#   lies outside 0..max: insmod fails with EINVAL and nptpool logs "P=V is out of range,
#   it must be 0..MAX".
# - A value that does not parse as a u32 (negative, too big, not a number, empty,
#   missing, given twice): the kernel's parameter parser refuses it, insmod fails and the
#   kernel logs "`V' invalid for parameter `P'".
# - Prefixed numbers parse as the kernel's integers do (0x hex, 0 octal, + sign).
# - In range: the module loads with fixed regions, the one not given at its built-in
#   size; at the minimum a VM halts as soon as it needs a second
#   table of a region; at the maximum a VM either gets its pool (alloc_contig_pages, up
#   to 1 GiB) and runs, or KVM_CREATE_VM fails with ENOMEM and nptpool's line.
# Bounds and built-in sizes are the host page size's (a page is the kernel's): pud_pages
# up to 16 MiB of pool (4096, 1024, 256 pages of 4, 16, 64 KiB), pmd_pages up to 1 GiB
# (262144, 65536, 16384), built-in 32/960, 4/60, 4/16 (test_host_lib.sh).
# fit takes 0 and 1 only: with 1, and with no parameter at all, the load line says pools
# are fitted and a VM runs; with 0 every pool has the built-in regions.
# nptpool is left loaded with its defaults; run_tests.sh (nptpool.list) checks that
# nothing leaked.  The one test of nptpool's parameter checks: module_load_test has none.
. /selftests/test_host_lib.sh
KO=/nptpool.ko
C=/selftests/nptpool/pool_create
require_nptpool
rmmod nptpool || exit 1

# refused ERRNO_TEXT LOG_PATTERN PARAM...: insmod fails with that error and logs that.
refused() {
	local errtext=$1 pattern=$2 err rc msg
	shift 2
	kmsg_mark
	err=$(insmod $KO "$@" 2>&1)
	rc=$?
	msg=$(kmsg_since | grep -F -- "$pattern")
	[ -n "$msg" ] && echo "$msg" | sed "s/^/# dmesg: /"
	[ $rc -ne 0 ] && echo "$err" | grep -q "$errtext" && [ -n "$msg" ] && [ ! -e /sys/module/nptpool ]
	result $? "insmod $* is refused ($errtext), with a log line"
	[ -e /sys/module/nptpool ] && rmmod nptpool
}

# out_of_range PARAM VALUE MAX
out_of_range() {
	refused 'Invalid argument' "nptpool: $1=$2 is out of range, it must be 0..$3" "$1=$2"
}

# unparsable ERRNO_TEXT PARAM=VALUE...: the last PARAM=VALUE is the one refused
unparsable() {
	local errtext=$1 last p v
	shift
	for last in "$@"; do :; done
	p=${last%%=*}
	v=${last#*=}
	[ "$p" = "$last" ] && v=
	refused "$errtext" "\`$v' invalid for parameter \`$p'" "$@"
}

# loads LOAD_LINE_PARAMS PARAM=VALUE...: insmod succeeds and the load line shows them,
# with the host's page size
loads() {
	local want=$1
	shift
	kmsg_mark
	insmod $KO "$@" &&
		kmsg_since | grep -q "nptpool: loaded: KVM host mode [a-z]*, $NPTPOOL_PAGE_KIB KiB pages, $want\$"
	result $? "insmod $* loads: $NPTPOOL_PAGE_KIB KiB pages, $want"
}

read -r pud_def pmd_def <<EOF
$(nptpool_defaults)
EOF
read -r pud_max pmd_max <<EOF
$(nptpool_maxima)
EOF
echo "TAP version 13"
echo "# $NPTPOOL_PAGE_KIB KiB pages: pud_pages 1..$pud_max (built-in $pud_def), pmd_pages 1..$pmd_max (built-in $pmd_def), 0 for not given"
fitted="pools fitted to each VM's memslots"
for p in pud_pages:$pud_max pmd_pages:$pmd_max; do
	name=${p%%:*} max=${p#*:}
	# 0 (and -0, which parses as 0) is the default: not given, so pools are fitted.
	for v in 0 -0; do
		loads "$fitted" "$name=$v"
		rmmod nptpool
	done
	out_of_range "$name" $((max + 1)) "$max"
	out_of_range "$name" 4294967295 "$max"
	for v in -1 -4096 4294967296 18446744073709551615 18446744073709551616 \
		99999999999999999999999 abc 12abc 1e3 0960 ''; do
		unparsable 'Invalid argument' "$name=$v"
	done
	unparsable 'Invalid argument' "$name"
	unparsable 'File exists' "$name=16" "$name=32"
done
# pages * page size would wrap in 32 bits; pud + pmd would wrap in 32 bits.
out_of_range pmd_pages $((4194304 / NPTPOOL_PAGE_KIB)) "$pmd_max"
refused 'Invalid argument' 'is out of range' pud_pages=4294967295 pmd_pages=4294967295

for v in 0x10 020 +16; do
	loads "pud_pages=$pud_def pmd_pages=16" "pmd_pages=$v"
	rmmod nptpool
done
# Either region given overrides fitting, whatever fit says; the other is at its built-in.
loads "pud_pages=8 pmd_pages=$pmd_def" pud_pages=8 fit=1
rmmod nptpool

# The minimum: one page per region; the guest's code and its stores at the top of the
# IPA space need two last-level tables.
loads "pud_pages=1 pmd_pages=1" pud_pages=1 pmd_pages=1
$C -o halt
result $? "with one page per region a VM halts cleanly (ENOMEM, and again)"
rmmod nptpool
# The maxima, one at a time and together: pools of 16 MiB, 1 GiB and 1 GiB + 16 MiB, with
# the other region at its default.
for params in "pud_pages=$pud_max pmd_pages=$pmd_def" "pud_pages=$pud_def pmd_pages=$pmd_max" \
	"pud_pages=$pud_max pmd_pages=$pmd_max"; do
	# shellcheck disable=SC2086 # a list of param=value words
	loads "$params" $params
	$C -o run,nomem
	result $? "with $params a VM runs or its creation fails with ENOMEM"
	rmmod nptpool
done
# fit: 0 or 1.  With 1 the load line says so, and a VM's pool is fitted as it first runs.
refused 'Invalid argument' "nptpool: fit=2 is out of range, it must be 0..1" fit=2
refused 'Invalid argument' "nptpool: fit=4294967295 is out of range, it must be 0..1" fit=4294967295
unparsable 'Invalid argument' fit=-1
for params in fit=1 ''; do
	# shellcheck disable=SC2086 # no word or one
	loads "$fitted" $params
	$C -o run
	result $? "with ${params:-no parameters} a VM runs"
	rmmod nptpool
done
loads "pud_pages=$pud_def pmd_pages=$pmd_def" fit=0
rmmod nptpool
insmod $KO
echo "1..$n"
finish
