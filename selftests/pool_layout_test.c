// SPDX-License-Identifier: GPL-2.0
/*
 * pool_layout_test: a running VM whose guest touches -n pages has every handed-out table
 * in its pool, in the region of its level; its root fills the pgd region; the pages it
 * touched are mapped by last-level tables of the pmd region (one per 2 MiB, 32 MiB or
 * 512 MiB touched, with 4K, 16K or 64K host pages) and, where the stage-2 has three
 * levels or more, tables of the pud region; where it has two (16K and 64K pages at the
 * default 40 bits) there is no pud region and nothing came from one; a second live VM's
 * pool is disjoint from the first's and its tables lie in its own regions.
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
	u64 live[NR_REGIONS], span = nptpool_last_table_span(), want_pmd;
	int level;
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
	level = start_level(&a.pool);
	/* The memslot starts 1 GiB aligned: its touched pages span this many tables. */
	want_pmd = (npages * a.vm->page_size + span - 1) / span;
	ksft_print_msg("%lu KiB pages, start level %d: live tables: pud %lu, pmd %lu (%lu wanted); handed out: pud %lu of %lu, pmd %lu\n",
		       nptpool_page_size() >> 10, level, live[PUD], live[PMD], want_pmd,
		       a.pool.used[PUD], a.pool.pages[PUD], a.pool.used[PMD]);
	if (nptpool_s2_has_pud(level))
		ok = live[PUD] >= 1;
	else
		ok = !a.pool.pages[PUD] && !a.pool.used[PUD];
	ksft_test_result(ok && live[PMD] >= want_pmd,
			 "tables mapping %lu touched pages came from the pmd region (%lu MiB per table)%s\n",
			 npages, span >> 20, nptpool_s2_has_pud(level) ?
			 " and the pud region" : ", the two-level stage-2 has no pud region");

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
