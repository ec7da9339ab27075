// SPDX-License-Identifier: GPL-2.0
/*
 * pool_inject_test: with page allocation fault injection failing the pool's reservation
 * once, in this thread only, KVM_CREATE_VM fails with ENOMEM and uses up the one injected
 * failure; nptpool logs the VMM's pid and the pool's size; no pool is left behind (its
 * counters are where they began); the next VM gets its pool and runs.  With -r, the
 * fitted pool's reservation at the VM's first KVM_RUN fails the same way: that KVM_RUN
 * fails with ENOMEM and a line, the VM keeps its root-only pool, and the next KVM_RUN
 * gets the pool and runs.  SKIP without fail_page_alloc, or when the pool comes from
 * alloc_contig_pages(), which it does not cover.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault_inject.h"
#include "nptpool_kvm.h"

/* Fail this thread's next page allocation of at least `order`, once. */
static void arm_once(unsigned int order)
{
	char buf[16];

	snprintf(buf, sizeof(buf), "%u", order);
	set_knob(FAIL_PAGE_ALLOC, "task-filter", "Y");
	set_knob(FAIL_PAGE_ALLOC, "min-order", buf);
	set_knob(FAIL_PAGE_ALLOC, "ignore-gfp-wait", "N");
	set_knob(FAIL_PAGE_ALLOC, "verbose", "0");
	set_knob(FAIL_PAGE_ALLOC, "space", "0");
	set_knob(FAIL_PAGE_ALLOC, "interval", "1");
	set_knob(FAIL_PAGE_ALLOC, "times", "1");
	set_knob(FAIL_PAGE_ALLOC, "probability", "100");
}

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
	arm_once(order_of(reserved));

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

/*
 * Fitted pools (fit=1): the pool is reserved at the VM's first KVM_RUN.  A probe VM of
 * the same shape shows the fitted pool's size; then that reservation fails once in this
 * thread: KVM_RUN fails with ENOMEM, nptpool logs the pid, the VM keeps its root-only
 * pool, and the next KVM_RUN reserves the pool and runs the guest.
 */
static void test_inject_first_run(void)
{
	struct vm_under_test t;
	struct counters base;
	char line[512], times[16], needle[128];
	u64 reserved;
	int err, kmsg;

	if (access(FAIL_PAGE_ALLOC, F_OK))
		ksft_exit_skip("no %s: the kernel has no page allocation fault injection (CONFIG_FAIL_PAGE_ALLOC, CONFIG_FAULT_INJECTION_DEBUG_FS)\n",
			       FAIL_PAGE_ALLOC);
	counters_read(&base);
	reserved = fitted_pool_pages(512, 16, 32);
	if (reserved > 1024)
		ksft_exit_skip("a pool of %lu pages comes from alloc_contig_pages(), which fail_page_alloc does not cover\n",
			       reserved);

	ksft_set_plan(5);
	vm_setup(&t, 512, 16, 32);
	ksft_print_msg("fitted pool of %lu pages: the buddy allocation of order %u fails once, in the first KVM_RUN\n",
		       reserved, order_of(reserved));
	kmsg = kmsg_open();
	arm_once(order_of(reserved));
	write_file("/proc/thread-self/make-it-fail", "1");
	err = vm_run(&t);
	write_file("/proc/thread-self/make-it-fail", "0");
	read_file(FAIL_PAGE_ALLOC "/times", times, sizeof(times));
	restore_knobs();
	read_footprint(&t.pool);
	ksft_print_msg("first KVM_RUN: %s; fail_page_alloc times left %s; sizing %s\n",
		       err ? strerror(err) : "succeeded", times, t.pool.sizing);
	ksft_test_result(err == ENOMEM && !strcmp(times, "0"),
			 "the first KVM_RUN fails with ENOMEM when the fitted pool cannot be reserved\n");
	snprintf(needle, sizeof(needle),
		 "stage-2 table pool for the VM of pid %d, its first KVM_RUN fails with ENOMEM",
		 getpid());
	ksft_test_result(kmsg_find(kmsg, needle, line, sizeof(line)),
			 "nptpool logs the VMM's pid and that its first KVM_RUN failed\n");
	ksft_test_result(!strcmp(t.pool.sizing, "root-until-first-run"),
			 "the VM keeps its root-only pool (sizing %s)\n", t.pool.sizing);
	err = vm_run(&t);
	read_footprint(&t.pool);
	ksft_test_result(!err && !strcmp(t.pool.sizing, "fitted"),
			 "the next KVM_RUN reserves the pool and the guest runs (%s, sizing %s)\n",
			 err ? strerror(err) : "ran", t.pool.sizing);
	kvm_vm_free(t.vm);
	close(kmsg);
	ksft_test_result(counters_back(&base, 5), "no pool is left behind\n");
}

static void usage(const char *name)
{
	printf("usage: %s [-h] [-r]\n", name);
	printf(" -r: the fitted pool's reservation at the first KVM_RUN (default: KVM_CREATE_VM's)\n");
}

int main(int argc, char *argv[])
{
	bool first_run = false;
	int opt;

	while ((opt = getopt(argc, argv, "hr")) != -1) {
		switch (opt) {
		case 'r':
			first_run = true;
			break;
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
	if (first_run)
		test_inject_first_run();
	else
		test_inject();
	ksft_finished();
}
