#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# nested_stock.sh: nested_el2_test on stock KVM, nptpool unloaded for the run (a VM then
# gets no pool and may have vCPUs with EL2); the module is loaded again, with its
# defaults, if it was loaded.
. /selftests/test_host_lib.sh
[ $# -eq 0 ] || { echo "usage: $0" >&2; exit 2; }
loaded=0
if [ -d /sys/module/nptpool ]; then
	rmmod nptpool || exit 1
	loaded=1
fi
/selftests/nptpool/nested_el2_test
rc=$?
if [ $loaded -eq 1 ]; then
	insmod $NPTPOOL_KO || rc=1
fi
exit $rc
