// SPDX-License-Identifier: GPL-2.0
/*
 * pool_memcache_test: a pool VM's stage-2 faults take nothing from the page allocator.
 * Stock KVM tops up each vCPU's memcache before a fault that may need tables; a VM whose
 * tables come from nptpool would keep those pages for its life and never use them, so
 * KVM tops up nothing for it.
 *
 * vCPU 0 runs first, and with it what a VM sets up once at its first KVM_RUN.  Then the
 * first KVM_RUN of vCPU 1, whose guest touches -n pages one last-level table apart, in
 * host memory already populated, runs with fail-nth armed on the thread's first page
 * allocation: KVM_RUN must succeed, pass no fault-injection point, and take a table from
 * the pool's pmd region for each touch; SecPageTables is then exactly the pool.  With
 * -s, nptpool unloaded, the same run on stock KVM must fail with ENOMEM at the vCPU's
 * memcache top-up (to show that the check bites).
 * SKIP without page allocation fault injection.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fault_inject.h"
#include "nptpool_kvm.h"

#define NR_VCPUS	2

static void test_memcache(u64 count, bool stock)
{
	u64 span = nptpool_table_span(3), slot, i, pmd_before = 0;
	struct kvm_vcpu *vcpus[NR_VCPUS];
	struct pool pool = {};
	char buf[16] = {};
	struct kvm_vm *vm;
	struct ucall uc;
	int nth, err, v;
	long before = -1;
	struct counters c;
	bool injected;
	u64 sec_kib;
	gpa_t gpa;

	if (access(FAIL_PAGE_ALLOC, F_OK) || access("/proc/thread-self/fail-nth", F_OK))
		ksft_exit_skip("no page allocation fault injection in this kernel\n");
	if (stock && nptpool_loaded())
		ksft_exit_fail_msg("-s is for stock KVM: unload nptpool first\n");
	if (!stock)
		NPTPOOL_REQUIRE();
	ksft_set_plan(stock ? 2 : 4);
	if (!stock)
		before = newest_vm_id(NULL, 0);

	/* vCPU v touches `count` pages in its own part of the memslot. */
	vm = __vm_create_with_vcpus(VM_SHAPE_DEFAULT, NR_VCPUS, NR_VCPUS * count * 512,
				    guest_touch, vcpus);
	slot = NR_VCPUS * count * span;
	gpa = top_gpa_aligned(vm, slot / vm->page_size, span > (1UL << 30) ? span : 1UL << 30);
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, gpa, TEST_SLOT,
				    slot / vm->page_size, 0);
	for (v = 0; v < NR_VCPUS; v++) {
		for (i = 0; i < count; i++) {
			u64 off = (v * count + i) * span;

			virt_pg_map(vm, TEST_GVA + off, gpa + off);
			/* Populated now: the fault's GUP finds the page, allocates nothing. */
			*(volatile u64 *)addr_gpa2hva(vm, gpa + off) = 0;
		}
		vcpu_args_set(vcpus[v], 3, TEST_GVA + v * count * span, count, span);
	}
	if (!stock)
		TEST_ASSERT(newest_vm_id(pool.dir, sizeof(pool.dir)) > before,
			    "no nptpool debugfs directory for the VM");

	vcpu_run(vcpus[0]);
	TEST_ASSERT_EQ(get_ucall(vcpus[0], &uc), UCALL_DONE);
	if (!stock) {
		read_pool(&pool);
		pmd_before = pool.used[PMD];
	}

	/*
	 * Every page allocation is a fault-injection point; sleeping slab allocations are
	 * not, so that the kernel's own bookkeeping cannot fail the run by chance.
	 */
	set_knob(FAIL_PAGE_ALLOC, "ignore-gfp-wait", "N");
	set_knob(FAIL_PAGE_ALLOC, "min-order", "0");
	set_knob(FAIL_PAGE_ALLOC, "verbose", "0");
	if (!access(FAILSLAB, F_OK))
		set_knob(FAILSLAB, "ignore-gfp-wait", "Y");
	nth = open("/proc/thread-self/fail-nth", O_RDWR);
	TEST_ASSERT(nth >= 0, "open fail-nth: %s", strerror(errno));
	TEST_ASSERT(pwrite(nth, "1", 1, 0) == 1, "arm fail-nth");
	err = _vcpu_run(vcpus[1]) ? errno : 0;
	TEST_ASSERT(pread(nth, buf, sizeof(buf) - 1, 0) > 0, "read fail-nth");
	TEST_ASSERT(pwrite(nth, "0", 1, 0) == 1, "disarm fail-nth");
	close(nth);
	restore_knobs();
	/* fail-nth reads 0 once the armed point failed. */
	injected = atoi(buf) == 0;
	ksft_print_msg("vCPU 1's first KVM_RUN, %lu touches %lu KiB apart, fail-nth armed: %s, %s\n",
		       count, span >> 10, err ? strerror(err) : "succeeded",
		       injected ? "a page allocation was failed" : "no fault-injection point passed");

	if (stock) {
		ksft_test_result(err == ENOMEM,
				 "stock KVM: the run fails with ENOMEM (the memcache top-up)\n");
		ksft_test_result(injected, "stock KVM: the run allocated a page\n");
	} else {
		if (!err)
			TEST_ASSERT_EQ(get_ucall(vcpus[1], &uc), UCALL_DONE);
		read_pool(&pool);
		ksft_test_result(!err, "the run succeeds with fail-nth armed\n");
		ksft_test_result(!injected,
				 "it allocates no page: no memcache top-up for a pool VM\n");
		ksft_test_result(pool.used[PMD] - pmd_before >= count,
				 "its faults took their tables from the pool (%lu pmd-region pages for %lu touches)\n",
				 pool.used[PMD] - pmd_before, count);
		/*
		 * The pool is the VM's only stage-2 memory: stock KVM counts each table it
		 * takes from a memcache in SecPageTables, nptpool the pool as it reserves it.
		 * The runner checks SecPageTables is 0 between tests, so this VM is all of it.
		 */
		counters_read(&c);
		sec_kib = meminfo_kib("SecPageTables");
		ksft_test_result(c.vms == 1 && sec_kib == pool.reserved_pages * (nptpool_page_size() >> 10),
				 "SecPageTables %lu KiB is the VM's pool, %lu pages of %lu KiB (%lu VMs with a pool)\n",
				 sec_kib, pool.reserved_pages, nptpool_page_size() >> 10, c.vms);
	}
	kvm_vm_free(vm);
}

static void usage(const char *name)
{
	printf("usage: %s [-h] [-s] [-n touches]\n", name);
	printf(" -n: pages vCPU 1 touches, one last-level table apart (default 16)\n");
	printf(" -s: stock KVM (nptpool unloaded): expect the memcache top-up to fail the run\n");
}

int main(int argc, char *argv[])
{
	bool stock = false;
	u64 count = 16;
	int opt;

	while ((opt = getopt(argc, argv, "hsn:")) != -1) {
		switch (opt) {
		case 's':
			stock = true;
			break;
		case 'n':
			count = atoi_positive("Touches", optarg);
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
	test_memcache(count, stock);
	ksft_finished();
}
