// SPDX-License-Identifier: GPL-2.0
/*
 * pool_inject_test: with page allocation fault injection failing the pool's reservation
 * once, in this thread only, KVM_CREATE_VM fails with ENOMEM and uses up the one injected
 * failure; nptpool logs the VMM's pid and the pool's size; no pool is left behind (its
 * counters are where they began); the next VM gets its pool and runs.  SKIP without
 * fail_page_alloc, or when the pool comes from alloc_contig_pages(), which it does not
 * cover.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault_inject.h"
#include "nptpool_kvm.h"

static void test_inject(void)
{
	char line[512], times[16], kib[64];
	struct counters base, now;
	int fd, err, kmsg;
	u64 reserved, pool_kib;
	struct pool p;
	bool logged;

	if (access(FAIL_PAGE_ALLOC, F_OK))
		ksft_exit_skip("no %s: the kernel has no page allocation fault injection (CONFIG_FAIL_PAGE_ALLOC, CONFIG_FAULT_INJECTION_DEBUG_FS)\n",
			       FAIL_PAGE_ALLOC);
	counters_read(&base);

	/* A first VM shows the pool's size, and so the order of its allocation. */
	pool_now(&p);
	reserved = p.reserved_pages;
	/* The size the log names is the pool's (README: root + slack + pud + pmd), not the block's. */
	pool_kib = (2 * p.pages[PGD] - 1 + p.pages[PUD] + p.pages[PMD]) *
		   (nptpool_page_size() >> 10);
	if (reserved > 1024)
		ksft_exit_skip("a pool of %lu pages comes from alloc_contig_pages(), which fail_page_alloc does not cover\n",
			       reserved);

	ksft_set_plan(5);
	ksft_print_msg("pool of %lu pages: the buddy allocation of order %u fails once, in this thread only\n",
		       reserved, order_of(reserved));
	snprintf(line, sizeof(line), "%u", order_of(reserved));
	set_knob(FAIL_PAGE_ALLOC, "task-filter", "Y");
	set_knob(FAIL_PAGE_ALLOC, "min-order", line);
	set_knob(FAIL_PAGE_ALLOC, "ignore-gfp-wait", "N");
	set_knob(FAIL_PAGE_ALLOC, "verbose", "0");
	set_knob(FAIL_PAGE_ALLOC, "space", "0");
	set_knob(FAIL_PAGE_ALLOC, "interval", "1");
	set_knob(FAIL_PAGE_ALLOC, "times", "1");
	set_knob(FAIL_PAGE_ALLOC, "probability", "100");

	kmsg = kmsg_open();
	write_file("/proc/thread-self/make-it-fail", "1");
	fd = create_vm_raw(0);
	err = errno;
	write_file("/proc/thread-self/make-it-fail", "0");
	read_file(FAIL_PAGE_ALLOC "/times", times, sizeof(times));
	restore_knobs();
	if (fd >= 0)
		close(fd);

	ksft_print_msg("KVM_CREATE_VM: %s; fail_page_alloc times left %s\n",
		       fd >= 0 ? "succeeded" : strerror(err), times);
	ksft_test_result(fd < 0 && err == ENOMEM,
			 "KVM_CREATE_VM fails with ENOMEM when the pool cannot be reserved\n");
	ksft_test_result(!strcmp(times, "0"), "the one injected failure was used\n");
	snprintf(kib, sizeof(kib), "cannot reserve a %lu KiB ", pool_kib);
	logged = reserve_failure_logged(kmsg, getpid(), line, sizeof(line));
	if (logged)
		ksft_print_msg("dmesg: %s\n", line);
	ksft_test_result(logged && strstr(line, kib),
			 "nptpool logs the VMM's pid and the pool's size (%lu KiB)\n", pool_kib);
	counters_read(&now);
	ksft_test_result(counters_equal(&now, &base),
			 "no pool is left behind (vms %lu, pages_reserved %lu)\n", now.vms,
			 now.reserved);
	ksft_test_result(small_vm_runs(), "the next VM gets its pool and runs\n");
	close(kmsg);
}

static void usage(const char *name)
{
	printf("usage: %s [-h]\n", name);
}

int main(int argc, char *argv[])
{
	int opt;

	while ((opt = getopt(argc, argv, "h")) != -1) {
		switch (opt) {
		case 'h':
			usage(argv[0]);
			exit(KSFT_PASS);
		default:
			usage(argv[0]);
			exit(KSFT_FAIL);
		}
	}

	ksft_print_header();
	NPTPOOL_REQUIRE();
	test_inject();
	ksft_finished();
}
