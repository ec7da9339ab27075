// SPDX-License-Identifier: GPL-2.0
/*
 * pool_layout_test: a running VM whose guest touches -n pages has every handed-out table
 * in its pool, in the region of its level; its root fills the pgd region; the pages it
 * touched are mapped by tables of the pud and pmd regions; a second live VM's pool is
 * disjoint from the first's and its tables lie in its own regions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "nptpool_kvm.h"

static bool overlaps(const struct pool *a, const struct pool *b)
{
	return a->start < b->end && b->start < a->end;
}

static void test_layout(u64 npages)
{
	struct vm_under_test a, b;
	u64 live[NR_REGIONS];
	bool ok;

	ksft_set_plan(5);
	vm_setup(&a, npages, npages, 1);
	TEST_ASSERT_EQ(vm_run(&a), 0);
	read_pool(&a.pool);

	ok = tables_in_regions(&a.pool, live);
	ksft_test_result(ok, "every handed-out table lies in the region of its level\n");
	ksft_test_result(a.pool.used[PGD] == a.pool.pages[PGD] && live[PGD] == a.pool.pages[PGD],
			 "the root fills the pgd region (%lu of %lu pages)\n",
			 a.pool.used[PGD], a.pool.pages[PGD]);
	ksft_print_msg("live tables: pud %lu, pmd %lu; handed out: pud %lu, pmd %lu\n",
		       live[PUD], live[PMD], a.pool.used[PUD], a.pool.used[PMD]);
	ksft_test_result(live[PUD] >= 1 && live[PMD] >= npages / SZ_2M_PAGES(a.vm->page_size),
			 "tables mapping %lu touched pages came from the pud and pmd regions\n",
			 npages);

	vm_setup(&b, npages, npages, 1);
	TEST_ASSERT_EQ(vm_run(&b), 0);
	read_pool(&b.pool);
	ksft_test_result(!overlaps(&a.pool, &b.pool),
			 "pools of two live VMs are disjoint ([0x%lx,0x%lx) [0x%lx,0x%lx))\n",
			 a.pool.start, a.pool.end, b.pool.start, b.pool.end);
	ok = tables_in_regions(&b.pool, live);
	ksft_test_result(ok, "the second VM's tables lie in its own regions\n");
	kvm_vm_free(b.vm);
	kvm_vm_free(a.vm);
}

static void usage(const char *name)
{
	printf("usage: %s [-h] [-n pages]\n", name);
	printf(" -n: guest pages to touch (default 4096)\n");
}

int main(int argc, char *argv[])
{
	u64 npages = 4096;
	int opt;

	while ((opt = getopt(argc, argv, "hn:")) != -1) {
		switch (opt) {
		case 'n':
			npages = atoi_positive("Number of pages", optarg);
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
	test_layout(npages);
	ksft_finished();
}
