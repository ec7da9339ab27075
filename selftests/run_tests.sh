#!/bin/sh
# Run a list of KVM selftests inside the test host and report them as TAP: one top-level
# result per program, with each program's own output (and its own TAP results, if it
# prints any) nested below as '# ' comment lines, as the kselftest runner does.
#
# usage: run_tests.sh [LIST]...     (default: /selftests/nptpool.list
#                                   /selftests/upstream-stage2.list /selftests/upstream.list)
#
# List lines:  NAME TIMEOUT_S COMMAND [ARGS...]     run COMMAND, fail past TIMEOUT_S
#              skip NAME REASON...                  report NAME as skipped, with REASON
#              # ...                                comment
# A program exiting 4 (KSFT_SKIP) is reported as skipped.
# TIMEOUT_SCALE=N (environment) multiplies every timeout, for slow kernels (KASAN).

[ $# -gt 0 ] || set -- /selftests/nptpool.list /selftests/upstream-stage2.list /selftests/upstream.list
for l in "$@"; do
	[ -r "$l" ] || { echo "usage: $0 [LIST]...  ($l: not readable)" >&2; exit 2; }
done

scale=${TIMEOUT_SCALE:-1}
case $scale in '' | *[!0-9]*) echo "$0: TIMEOUT_SCALE must be a whole number" >&2; exit 2 ;; esac

entries=$(cat "$@" | grep -v '^[[:space:]]*\(#\|$\)')
total=$(printf '%s\n' "$entries" | grep -c .)
echo "TAP version 13"
echo "1..$total"

n=0 failed=0
printf '%s\n' "$entries" | {
	while read -r name tmo rest; do
		n=$((n + 1))
		if [ "$name" = skip ]; then
			echo "ok $n $tmo # SKIP $rest"
			continue
		fi
		echo "# $n: $name: $rest"
		rcfile=/tmp/rc.$n
		# shellcheck disable=SC2086 # rest is the command line from the list
		tmo=$((tmo * scale))
		start=$(date +%s)
		{ timeout -s KILL "$tmo" $rest 2>&1; echo $? >"$rcfile"; } </dev/null | sed 's/^/# /'
		rc=$(cat "$rcfile")
		# How close each program runs to its timeout, for choosing timeouts.
		echo "# $n: $name: took $(($(date +%s) - start))s of ${tmo}s"
		case $rc in
		0) echo "ok $n $name" ;;
		4) echo "ok $n $name # SKIP (the program skipped itself)" ;;
		137) echo "not ok $n $name # TIMEOUT after ${tmo}s"; failed=$((failed + 1)) ;;
		*) echo "not ok $n $name # exit status $rc"; failed=$((failed + 1)) ;;
		esac
	done
	[ "$failed" -eq 0 ]
}
