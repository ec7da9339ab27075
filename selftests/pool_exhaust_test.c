// SPDX-License-Identifier: GPL-2.0
/*
 * pool_exhaust_test: with nptpool loaded with a small pud_pages or pmd_pages, a VM whose
 * guest outgrows that region (-r) halts: its faulting KVM_RUN fails with ENOMEM, later
 * ones with EIO, and debugfs shows it halted with the region used up; a second VM is not
 * halted and keeps running and faulting.  With -s, the guest touches a memslot far larger
 * than the pool can map, across its whole length.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nptpool_kvm.h"

/*
 * Outgrow `region`: with 4K pages and a 40-bit IPA the root is at level 1, pud tables
 * map 1 GiB each and pmd tables 2 MiB each, so touching one page per 1 GiB (per 2 MiB)
 * needs one new table of the region per page.
 */
static void test_exhaust(enum region region, u64 slot_gib)
{
	struct vm_under_test a, b;
	u64 span, count, stride, slot;
	int err;

	ksft_set_plan(5);
	span = region == PUD ? 1UL << 30 : 2UL << 20;
	vm_setup(&b, 1, 1, 1);		/* the bystander */
	count = b.pool.pages[region] + 2;
	/*
	 * With -s, a memslot far larger than the pool maps, touched across its whole length:
	 * still one new table of the region per touch.
	 */
	slot = slot_gib ? slot_gib << 30 : count * span;
	stride = slot / count / span * span;
	TEST_ASSERT(stride >= span, "a %lu GiB memslot cannot hold %lu touches %lu KiB apart",
		    slot_gib, count, span >> 10);
	vm_setup_pt(&a, VM_SHAPE_DEFAULT, slot / b.vm->page_size, count, stride / b.vm->page_size,
		    slot_gib ? 2 * count : 0);
	ksft_print_msg("memslot of %lu MiB at 0x%lx, %lu touches %lu MiB apart\n", slot >> 20,
		       a.gpa, count, stride >> 20);
	dump_pool(&a.pool, "before the run");

	err = vm_run(&a);
	ksft_print_msg("%s region of %lu pages, guest touched %lu pages %lu KiB apart: KVM_RUN %s\n",
		       region_names[region], a.pool.pages[region], count, stride >> 10,
		       err ? strerror(err) : "succeeded");
	ksft_test_result(err == ENOMEM, "the faulting KVM_RUN fails with ENOMEM\n");
	err = vm_run(&a);
	ksft_test_result(err == EIO, "later KVM_RUNs of the halted VM fail with EIO (%s)\n",
			 strerror(err));
	read_pool(&a.pool);
	dump_pool(&a.pool, "after the halt");
	ksft_test_result(vm_halted(&a.pool) &&
			 a.pool.used[region] == a.pool.pages[region],
			 "debugfs shows the VM halted with its %s region used up\n",
			 region_names[region]);
	ksft_test_result(!vm_halted(&b.pool), "the other VM is not halted\n");
	ksft_test_result(vm_run(&b) == 0, "the other VM still runs and faults\n");
	kvm_vm_free(a.vm);
	kvm_vm_free(b.vm);
}

static void usage(const char *name)
{
	printf("usage: %s [-h] [-r pud|pmd] [-s GiB]\n", name);
	printf(" -r: the region to exhaust (default pmd)\n");
	printf(" -s: a memslot of this many GiB, touched across its length (default: just\n"
	       "     large enough for the touches)\n");
}

int main(int argc, char *argv[])
{
	enum region region = PMD;
	u64 slot_gib = 0;
	int opt;

	while ((opt = getopt(argc, argv, "hr:s:")) != -1) {
		switch (opt) {
		case 'r':
			if (!strcmp(optarg, "pud")) {
				region = PUD;
			} else if (!strcmp(optarg, "pmd")) {
				region = PMD;
			} else {
				usage(argv[0]);
				exit(KSFT_FAIL);
			}
			break;
		case 's':
			slot_gib = atoi_positive("Memslot GiB", optarg);
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
	test_exhaust(region, slot_gib);
	ksft_finished();
}
