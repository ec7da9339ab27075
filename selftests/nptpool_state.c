// SPDX-License-Identifier: GPL-2.0
/*
 * nptpool_state: the shell tests' way to nptpool's global state, through the same library
 * code as the C tests (libc only: it runs whether or not a VM can be created).
 *
 *   counters  print "vms N pages_reserved N pages_in_use N" (exit 1, with a message on
 *             stderr, when nptpool's debugfs is missing)
 *   settle    before a reading: sync, sleep 1 s, drop caches (exit 1 if they could not
 *             be dropped)
 *   page_size print the host's page size in bytes (4096, 16384 or 65536): the unit of
 *             nptpool's parameters and pools (busybox has no getconf)
 */
#include <stdio.h>
#include <string.h>

#include "nptpool.h"

static int usage(FILE *f, const char *name, int ret)
{
	fprintf(f, "usage: %s [-h] counters|settle|page_size\n", name);
	return ret;
}

int main(int argc, char *argv[])
{
	struct counters c;
	char buf[128];

	if (argc != 2)
		return usage(stderr, argv[0], 2);
	if (!strcmp(argv[1], "-h"))
		return usage(stdout, argv[0], 0);
	if (!strcmp(argv[1], "counters")) {
		if (!counters_try_read(&c)) {
			fprintf(stderr, "%s: cannot read nptpool's counters in %s (is nptpool loaded?)\n",
				argv[0], NPTPOOL_DEBUGFS);
			return 1;
		}
		counters_str(&c, buf, sizeof(buf));
		printf("%s\n", buf);
		return 0;
	}
	if (!strcmp(argv[1], "page_size")) {
		printf("%lu\n", nptpool_page_size());
		return 0;
	}
	if (!strcmp(argv[1], "settle")) {
		if (!settle()) {
			fprintf(stderr, "%s: cannot drop caches (/proc/sys/vm/drop_caches)\n",
				argv[0]);
			return 1;
		}
		return 0;
	}
	return usage(stderr, argv[0], 2);
}
