// SPDX-License-Identifier: GPL-2.0
/*
 * pool_ipa_test: KVM_CREATE_VM refuses IPA sizes below 32 bits or above the host's, and
 * unknown type bits, with EINVAL and no pool.  For every 4K-granule IPA size from 32 to
 * 52 bits the host supports (so every stage-2 start level KVM picks, with up to 16
 * concatenated root pages), a VM built by hand whose guest stores to pages at the top of
 * the IPA space runs, its stores land, and its pool is laid out as KVM laid out the
 * tables: start level and root pages as KVM computes them, the root filling the pgd
 * region, every handed-out table in the region of its level, tables one level below the
 * root from the pud region and deeper ones from the pmd region.  For the sizes of the
 * KVM selftest library's guest modes (36, 40, 48, 52 bits) a library VM, its guest
 * running with stage 1 on, must also run, on the same line, with every table in the
 * region of its level, the root filling the pgd region and pud and pmd tables live.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nptpool_kvm.h"
#include "raw_vm.h"

/* KVM's stage-2 shape for an IPA size with 4 KiB pages (kvm_get_vtcr(), kvm_pgd_pages()). */
static void expected_shape(unsigned int ipa, int *start_level, u64 *root_pages)
{
	int levels = (ipa - 8) / 9;	/* ARM64_HW_PGTABLE_LEVELS(ipa - 4) */
	int root_bits;

	if (levels < 2)
		levels = 2;
	*start_level = 4 - levels;
	root_bits = 12 + 9 * (4 - *start_level);	/* what one root page maps */
	*root_pages = ipa > root_bits ? 1UL << (ipa - root_bits) : 1;
}

/*
 * One VM of `ipa` bits, built by hand (raw_vm.h; the library's guest modes cover four
 * sizes), whose guest runs with its MMU off and stores to 8 pages 2 MiB apart at the top
 * of the IPA space; whether it ran and its pool looks as it must.
 */
static bool raw_ipa_vm(unsigned int ipa)
{
	const u64 count = 8, size = count * BLOCK_SIZE;
	u64 live[NR_REGIONS], root_pages;
	struct raw_vm r;
	struct pool p;
	int want_level, err;
	bool ok;

	err = raw_vm_create(&r, KVM_VM_TYPE_ARM_IPA_SIZE(ipa));
	TEST_ASSERT(!err, "KVM_CREATE_VM(%u-bit IPA): %s", ipa, strerror(err));
	TEST_ASSERT(newest_vm_id(p.dir, sizeof(p.dir)) >= 0, "no pool for the %u-bit VM", ipa);
	err = raw_vm_setup(&r, (1UL << ipa) - size, size, count, BLOCK_SIZE);
	TEST_ASSERT(!err, "setting up the %u-bit VM: %s", ipa, strerror(err));
	err = raw_vm_run(&r);
	ok = !err && raw_vm_done(&r);
	if (!ok)
		ksft_print_msg("%u-bit IPA: KVM_RUN %s, exit reason %u, MMIO at 0x%llx of 0x%lx (0: the guest took an exception)\n",
			       ipa, err ? strerror(err) : "returned", r.run->exit_reason,
			       r.run->mmio.phys_addr, *(u64 *)r.run->mmio.data);

	read_pool(&p);
	expected_shape(ipa, &want_level, &root_pages);
	ok = ok && tables_in_regions(&p, live);
	ok = ok && start_level(&p) == want_level && p.pages[PGD] == root_pages &&
	     live[PGD] == root_pages;
	/* Tables one level below the root come from the pud region, deeper ones from pmd. */
	ok = ok && live[PUD] >= 1 && (want_level == 2 ? p.used[PMD] == 0 : live[PMD] >= 1);
	ksft_print_msg("%u-bit IPA: start level %d, root %lu pages (KVM: %d, %lu); tables handed out: pud %lu, pmd %lu\n",
		       ipa, start_level(&p), p.pages[PGD], want_level, root_pages, p.used[PUD],
		       p.used[PMD]);
	raw_vm_destroy(&r);
	return ok;
}

/*
 * One VM of the library's guest `mode` whose guest touches 64 pages 16 pages apart in a
 * memslot at the top of the IPA space: whether it ran and its tables lie in the regions
 * of their levels, the root filling the pgd region, with pud and pmd tables live.
 */
static bool library_ipa_vm(enum vm_guest_mode mode, unsigned int ipa)
{
	struct vm_under_test t;
	u64 live[NR_REGIONS];
	bool ok;

	vm_setup_shape(&t, VM_SHAPE(mode), 1024, 64, 16);
	ok = vm_run(&t) == 0;
	read_pool(&t.pool);
	ok &= tables_in_regions(&t.pool, live);
	ok &= live[PGD] == t.pool.pages[PGD] && live[PUD] >= 1 && live[PMD] >= 1;
	ksft_print_msg("%u-bit IPA, library VM (%s): %s; start level %d, root of %lu pages, live tables pgd %lu, pud %lu, pmd %lu\n",
		       ipa, vm_guest_mode_string(mode), ok ? "ran, tables in their regions" : "FAILED",
		       start_level(&t.pool), t.pool.pages[PGD], live[PGD], live[PUD], live[PMD]);
	kvm_vm_free(t.vm);
	return ok;
}

/* The library's guest mode for an IPA size, or -1. */
static int library_mode(unsigned int ipa)
{
	switch (ipa) {
	case 36:
		return VM_MODE_P36V48_4K;
	case 40:
		return VM_MODE_P40V48_4K;
	case 48:
		return VM_MODE_P48V48_4K;
	case 52:
		return VM_MODE_P52V48_4K;
	default:
		return -1;
	}
}

static void test_ipa(void)
{
	unsigned int max_ipa = kvm_check_cap(KVM_CAP_ARM_VM_IPA_SIZE), ipa, bad_ipas[] = {
		1, 31, max_ipa + 1, 63 };
	unsigned long bad_types[ARRAY_SIZE(bad_ipas) + 1];
	struct counters base, now;
	int i, mode, refused = 0;

	ksft_set_plan(52 - 32 + 1 + 1);
	counters_read(&base);
	for (i = 0; i < (int)ARRAY_SIZE(bad_ipas); i++)
		bad_types[i] = KVM_VM_TYPE_ARM_IPA_SIZE(bad_ipas[i]);
	bad_types[i] = 1UL << 8;	/* outside KVM_VM_TYPE_ARM_IPA_SIZE_MASK */
	for (i = 0; i < (int)ARRAY_SIZE(bad_types); i++) {
		int fd = create_vm_raw(bad_types[i]);

		if (fd >= 0)
			close(fd);
		else if (errno == EINVAL)
			refused++;
		ksft_print_msg("VM type 0x%lx: %s\n", bad_types[i],
			       fd >= 0 ? "created" : strerror(errno));
	}
	counters_read(&now);
	ksft_test_result(refused == ARRAY_SIZE(bad_types) && counters_equal(&now, &base),
			 "IPA sizes below 32 bits or above the host's %u, and unknown type bits: EINVAL, no pool\n",
			 max_ipa);
	for (ipa = 32; ipa <= 52; ipa++) {
		bool ok;

		if (ipa > max_ipa) {
			ksft_test_result_skip("%u-bit IPA: the host supports %u bits\n", ipa, max_ipa);
			continue;
		}
		ok = raw_ipa_vm(ipa);
		mode = library_mode(ipa);
		if (mode < 0) {
			ksft_test_result(ok, "%u-bit IPA: the guest's stores land; root, levels and regions as KVM laid them out\n",
					 ipa);
			continue;
		}
		ok &= library_ipa_vm(mode, ipa);
		ksft_test_result(ok, "%u-bit IPA: the guest's stores land; root, levels and regions as KVM laid them out; a library VM (VM_MODE_P%uV48_4K) runs with its tables in their regions\n",
				 ipa, ipa);
	}
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
	test_ipa();
	ksft_finished();
}
