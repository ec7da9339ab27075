#!/bin/sh
# Last test of every guest run: the kernel log must hold no report of a kernel bug, even
# when every test passed.  On a debug kernel this is where KASAN, lockdep, the atomic-sleep
# check and kmemleak speak; on any kernel, a WARN or BUG.
#
# usage: kernel_log_check.sh          (exit 0: clean; 1: reports found, printed)

[ $# -eq 0 ] || { echo "usage: $0" >&2; exit 2; }

# Two scans: kmemleak reports an object only once it has been unreferenced for a scan
# and is older than its minimum age (5 s).
leaks=/sys/kernel/debug/kmemleak
if [ -w "$leaks" ]; then
	echo scan >"$leaks" && sleep 6 && echo scan >"$leaks"
	found=$(cat "$leaks")
	if [ -n "$found" ]; then
		echo "kmemleak:"
		echo "$found" | head -n 60
		status=1
	fi
	echo "kmemleak: scanned"
fi

# Reports are only as complete as the log: a test that cleared it (dmesg -c) may have
# taken reports with it.  The log must still begin at boot.
if ! dmesg | head -n 5 | grep -q 'Booting Linux'; then
	echo "kernel log: cleared since boot (its first line: $(dmesg | head -n 1)); reports may be lost"
	status=1
fi

pattern='BUG:|WARNING:|KASAN|UBSAN|kernel BUG|Oops|Unable to handle|possible circular locking|possible recursive locking|inconsistent lock state|suspicious RCU usage|scheduling while atomic|sleeping function called from invalid context|kmemleak: .*new suspected|list_add corruption|list_del corruption|page dumped because|rcu_preempt detected stalls|soft lockup|hung_task'
if dmesg | grep -E "$pattern" >/tmp/kernel-reports; then
	echo "kernel reports:"
	dmesg | grep -E -A 30 "$pattern" | head -n 120
	status=1
fi
echo "kernel log: $(dmesg | wc -l) lines, $(wc -l </tmp/kernel-reports) reports"
exit "${status:-0}"
