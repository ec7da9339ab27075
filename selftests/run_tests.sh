#!/bin/sh
# Run lists of KVM selftests inside the test host and report them as TAP: one top-level
# result per list line, with each program's own output (and its own TAP results, if it
# prints any) nested below as '# ' comment lines, as the kselftest runner does.
#
# usage: run_tests.sh [LIST]...     (default: /selftests/nptpool.list
#                                   /selftests/upstream-stage2.list /selftests/upstream.list)
#
# List lines (everything about one test is on its line):
#   NAME TIMEOUT_S POOL COMMAND [ARGS...]
#       POOL '-'        run COMMAND as it is (it loads and unloads nptpool itself, or
#                       runs under whatever the boot loaded)
#       POOL 'default'  or comma-separated nptpool parameters (pmd_pages=16,pud_pages=2),
#                       'overcommit' among them to set vm.overcommit_memory to 1: run
#                       COMMAND under a pool of that shape, with the leak check after
#                       (test_host_lib.sh, under_pool); in a stock boot it just runs
#       COMMAND         a path, or the name of one of our programs in /selftests/nptpool
#   skip NAME REASON...                  report NAME as skipped, with REASON
#   # ...                                comment
# A program exiting 4 (KSFT_SKIP) is reported as skipped; one that leaves nptpool unloaded
# in a boot that had it loaded fails, and the runner loads it again.  TIMEOUT_S bounds COMMAND and
# every process it started (run_bounded), not the leak check.  A malformed line fails.
# TIMEOUT_SCALE=N (environment) multiplies every timeout, for slow kernels (KASAN).

usage() { echo "usage: $0 [LIST]...  (TIMEOUT_SCALE=N multiplies the timeouts)" >&2; exit 2; }
[ $# -gt 0 ] || set -- /selftests/nptpool.list /selftests/upstream-stage2.list /selftests/upstream.list
for l in "$@"; do
	case $l in -h | --help) usage ;; esac
	[ -r "$l" ] || { echo "$0: $l: not readable" >&2; usage; }
done

scale=${TIMEOUT_SCALE:-1}
case $scale in '' | *[!0-9]*) echo "$0: TIMEOUT_SCALE must be a whole number" >&2; exit 2 ;; esac

. /selftests/test_host_lib.sh
OURS=/selftests/nptpool

entries=$(cat "$@" | grep -v '^[[:space:]]*\(#\|$\)')
total=$(printf '%s\n' "$entries" | grep -c .)
echo "TAP version 13"
echo "1..$total"

i=0 bad=0
# A test must leave nptpool as it found it: one that unloads it and fails to load it back
# would turn every later test of a pool boot into a stock run that skips.
loaded_at_start=0
[ -d /sys/module/nptpool ] && loaded_at_start=1
printf '%s\n' "$entries" | {
	while read -r name tmo pool cmd args; do
		i=$((i + 1))
		if [ "$name" = skip ]; then
			echo "ok $i $tmo # SKIP $pool $cmd $args"
			continue
		fi
		line="$name $tmo $pool $cmd $args"
		case $tmo in '' | 0* | *[!0-9]*) pool=malformed ;; esac
		case $pool in
		- | malformed) ;;
		'' | ,* | *, | *,,*) pool=malformed ;;
		*)
			for p in $(echo "$pool" | tr , ' '); do
				case $p in default | overcommit | [a-z]*=[0-9a-fx+-]*) ;; *) pool=malformed ;; esac
			done
			;;
		esac
		[ -n "$cmd" ] || pool=malformed
		case $cmd in /* | '') ;; *) cmd=$OURS/$cmd ;; esac
		echo "# $i: $name: pool $pool: $cmd $args"
		rcfile=/tmp/rc.$i
		[ "$pool" = malformed ] && tmo=0
		tmo=$((tmo * scale))
		start=$(date +%s)
		# shellcheck disable=SC2086 # args is the argument list from the list line
		case $pool in
		malformed) { echo "malformed list line: $line"; echo 2 >"$rcfile"; } ;;
		-) { run_bounded "$tmo" $cmd $args 2>&1; echo $? >"$rcfile"; } </dev/null ;;
		*) { under_pool "$pool" "$tmo" $cmd $args 2>&1; echo $? >"$rcfile"; } </dev/null ;;
		esac | sed 's/^/# /'
		rc=$(cat "$rcfile")
		# How close each program runs to its timeout, for choosing timeouts.
		echo "# $i: $name: took $(($(date +%s) - start))s, timeout ${tmo}s"
		if [ $loaded_at_start = 1 ] && [ ! -d /sys/module/nptpool ]; then
			insmod $NPTPOOL_KO || echo "# $i: $name: nptpool.ko does not load again"
			case $rc in 0 | 4) rc=left ;; esac
		fi
		case $rc in
		0) echo "ok $i $name" ;;
		4) echo "ok $i $name # SKIP (the program skipped itself)" ;;
		137) echo "not ok $i $name # TIMEOUT after ${tmo}s"; bad=$((bad + 1)) ;;
		left) echo "not ok $i $name # left nptpool unloaded (reloaded with its defaults)"; bad=$((bad + 1)) ;;
		*) echo "not ok $i $name # exit status $rc"; bad=$((bad + 1)) ;;
		esac
	done
	[ "$bad" -eq 0 ]
}
