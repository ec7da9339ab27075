#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# with_pool.sh PARAM=VALUE... -- COMMAND [ARGS...]: run COMMAND with nptpool reloaded
# with those parameters, then reload it with its defaults.  For workloads that need a
# larger pool than the default: a bump allocator never reuses a table, so a VM that
# maps, unmaps and remaps GiBs needs room for every table it ever had.
params=
while [ $# -gt 0 ] && [ "$1" != -- ]; do params="$params $1"; shift; done
[ "$1" = -- ] && [ $# -gt 1 ] || { echo "usage: $0 PARAM=VALUE... -- COMMAND [ARGS...]" >&2; exit 2; }
shift
# A stock run (module not loaded) stays stock.
[ -d /sys/module/nptpool ] || exec "$@"
rmmod nptpool
# shellcheck disable=SC2086 # a list of param=value words
insmod /nptpool.ko $params || exit 1
"$@"
rc=$?
rmmod nptpool && insmod /nptpool.ko || exit 1
exit $rc
