// SPDX-License-Identifier: GPL-2.0
/*
 * pool_failnth_test: each allocation of KVM_CREATE_VM failed in turn (fail-nth, for up to
 * -c allocations, -r sweeps): the VM is created or KVM_CREATE_VM fails with ENOMEM,
 * nothing else; nptpool's counters are exactly back after every failure (a failure that
 * puts them off is shown with its stack); the sweep failed the pool's reservation too, as
 * nptpool's log says; a VM created after the sweep runs.  SKIP without slab and page
 * allocation fault injection, or when the pool comes from alloc_contig_pages(), which
 * fail_page_alloc does not cover.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault_inject.h"
#include "nptpool_kvm.h"

/*
 * fail-nth: the n-th fault-injection point this thread passes fails.  With the filters
 * off (every order, reclaiming allocations too) every slab and page allocation of
 * KVM_CREATE_VM is such a point, the pool's own among them.
 *
 * One KVM_CREATE_VM with its n-th point failing: the VM fd or -1 (errno in *err);
 * *injected tells whether creation got as far as the n-th point.  `nth` stays open:
 * pread() and pwrite() of it pass no fault-injection point.
 */
static int failnth_create(int kvm, int nth, int n, int *err, bool *injected)
{
	char buf[16];
	int fd;

	snprintf(buf, sizeof(buf), "%d", n);
	TEST_ASSERT(pwrite(nth, buf, strlen(buf), 0) > 0, "arm fail-nth");
	fd = ioctl(kvm, KVM_CREATE_VM, 0);
	*err = errno;
	memset(buf, 0, sizeof(buf));
	TEST_ASSERT(pread(nth, buf, sizeof(buf) - 1, 0) > 0, "read fail-nth");
	TEST_ASSERT(pwrite(nth, "0", 1, 0) == 1, "disarm fail-nth");
	/* It reads 0 once the n-th point failed. */
	*injected = atoi(buf) == 0;
	return fd;
}

/*
 * Find the allocation whose failure put the counters off: the numbering can shift a
 * little between runs, so fail the ones around n again, with fault-injection's stack
 * dump on, until one puts the counters off again; print that one's stack.
 */
static void failnth_show(int kvm, int nth, int n)
{
	struct counters before, after;
	int kmsg, fd, err, k, lines;
	char rec[2048], *msg;
	bool injected;
	ssize_t len;

	for (k = n > 8 ? n - 8 : 1; k <= n + 8; k++) {
		counters_read(&before);
		kmsg = kmsg_open();
		write_file(FAILSLAB "/verbose", "2");
		write_file(FAIL_PAGE_ALLOC "/verbose", "2");
		fd = failnth_create(kvm, nth, k, &err, &injected);
		write_file(FAILSLAB "/verbose", "0");
		write_file(FAIL_PAGE_ALLOC "/verbose", "0");
		if (fd >= 0)
			close(fd);
		counters_read(&after);
		if (counters_equal(&before, &after)) {
			close(kmsg);
			continue;
		}
		ksft_print_msg("failing allocation %d again puts them off again; it is:\n", k);
		for (lines = 0; lines < 40;) {
			len = read(kmsg, rec, sizeof(rec) - 1);
			if (len < 0 && errno == EPIPE)
				continue;
			if (len <= 0)
				break;
			rec[len] = 0;
			msg = strchr(rec, ';');
			msg = msg ? msg + 1 : rec;
			if (!lines && !strstr(msg, "FAULT_INJECTION"))
				continue;
			ksft_print_msg("  %s", msg);
			lines++;
		}
		close(kmsg);
		return;
	}
	ksft_print_msg("failing the allocations around %d again did not put them off again\n", n);
}

/*
 * One sweep: fail allocation 1, 2, ... of KVM_CREATE_VM until creation passes fewer
 * points.  Returns the number of points; counts outcomes; `outcomes` gets one letter per
 * point (n: ENOMEM, c: created anyway, x: another errno, ! counters off).
 */
static int failnth_sweep(int kvm, int nth, int max_n, char *outcomes, int *other, int *off)
{
	struct counters base, now;
	bool injected = true;
	int n, fd, err;

	counters_read(&base);
	for (n = 1; n <= max_n && injected; n++) {
		fd = failnth_create(kvm, nth, n, &err, &injected);
		outcomes[n - 1] = fd >= 0 ? 'c' : err == ENOMEM ? 'n' : 'x';
		if (fd >= 0) {
			close(fd);
		} else if (err != ENOMEM) {
			(*other)++;
			ksft_print_msg("allocation %d failed: KVM_CREATE_VM: %s\n", n, strerror(err));
		}
		counters_read(&now);
		if (!counters_equal(&now, &base)) {
			(*off)++;
			outcomes[n - 1] = '!';
			ksft_print_msg("allocation %d failed: vms %lu -> %lu, pages_reserved %lu -> %lu, pages_in_use %lu -> %lu\n",
				       n, base.vms, now.vms, base.reserved, now.reserved, base.in_use,
				       now.in_use);
			failnth_show(kvm, nth, n);
			counters_read(&base);
		}
	}
	outcomes[n - 2] = 0;	/* the last one passed fewer points: no outcome */
	return n - 2;
}

static void test_failnth(int max_n, int passes)
{
	int p, kvm, nth, points = 0, other = 0, off = 0, kmsg;
	char line[512], *outcomes, *first;
	u64 pages;

	if (access(FAILSLAB, F_OK) || access(FAIL_PAGE_ALLOC, F_OK) ||
	    access("/proc/thread-self/fail-nth", F_OK))
		ksft_exit_skip("no slab and page allocation fault injection in this kernel\n");
	pages = pool_pages_now();
	if (pages > 1024)
		ksft_exit_skip("a pool of %lu pages comes from alloc_contig_pages(), which fail_page_alloc does not cover\n",
			       pages);
	ksft_set_plan(4);
	/*
	 * Every slab allocation, and page allocations of the pool's order and up: the pool's
	 * reservation, not the slab pages that come and go with the slab caches' state and
	 * would shift the numbering from run to run.
	 */
	snprintf(line, sizeof(line), "%u", order_of(pages));
	set_knob(FAILSLAB, "ignore-gfp-wait", "N");
	set_knob(FAILSLAB, "verbose", "0");
	set_knob(FAIL_PAGE_ALLOC, "ignore-gfp-wait", "N");
	set_knob(FAIL_PAGE_ALLOC, "min-order", line);
	set_knob(FAIL_PAGE_ALLOC, "verbose", "0");

	kmsg = kmsg_open();
	kvm = open_kvm_dev_path_or_exit();
	nth = open("/proc/thread-self/fail-nth", O_RDWR);
	TEST_ASSERT(nth >= 0, "open fail-nth: %s", strerror(errno));
	outcomes = calloc(max_n + 1, 1);
	first = calloc(max_n + 1, 1);
	TEST_ASSERT(outcomes && first, "calloc");
	for (p = 0; p < passes; p++) {
		points = failnth_sweep(kvm, nth, max_n, outcomes, &other, &off);
		ksft_print_msg("pass %d: KVM_CREATE_VM passes %d fault points; failing each (n: ENOMEM, c: created anyway, x: other errno, !: counters off):\n",
			       p + 1, points);
		ksft_print_msg("  %s\n", outcomes);
		if (!p)
			strcpy(first, outcomes);
		else
			ksft_print_msg("  %s as the first pass\n",
				       strcmp(first, outcomes) ? "not the same" : "the same");
	}
	close(nth);
	close(kvm);
	restore_knobs();
	ksft_test_result(points < max_n && !other,
			 "KVM_CREATE_VM fails with ENOMEM or succeeds whichever allocation fails\n");
	ksft_test_result(!off, "nptpool's counters are exactly back after every failure\n");
	ksft_test_result(reserve_failure_logged(kmsg, getpid(), line, sizeof(line)),
			 "the sweep failed the pool's reservation too (%s)\n", line);
	ksft_test_result(small_vm_runs(), "a VM created after the sweep runs\n");
	free(outcomes);
	free(first);
	close(kmsg);
}

static void usage(const char *name)
{
	printf("usage: %s [-h] [-c max_allocations] [-r sweeps]\n", name);
	printf(" -c: fail at most this many allocations of KVM_CREATE_VM per sweep (default 2000)\n");
	printf(" -r: sweeps (default 2)\n");
}

int main(int argc, char *argv[])
{
	int max_n = 2000, passes = 2, opt;

	while ((opt = getopt(argc, argv, "hc:r:")) != -1) {
		switch (opt) {
		case 'c':
			max_n = atoi_positive("Number of allocations", optarg);
			break;
		case 'r':
			passes = atoi_positive("Sweeps", optarg);
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
	test_failnth(max_n, passes);
	ksft_finished();
}
