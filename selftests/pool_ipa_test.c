// SPDX-License-Identifier: GPL-2.0
/*
 * pool_ipa_test: KVM_CREATE_VM refuses IPA sizes below 32 bits or above the host's, and
 * unknown type bits, with EINVAL and no pool.  For every IPA size from 32 to 52 bits the
 * host supports, with the host's page size (4, 16 or 64 KiB: so every stage-2 start
 * level KVM picks for that granule, with up to 16 concatenated root pages), a VM built by
 * hand whose guest stores to pages one last-level table span apart at the top of the IPA
 * space runs, its stores land, and its pool is laid out as KVM laid out the tables: start
 * level and root pages as KVM computes them, the root filling the pgd region, every
 * handed-out table in its region, a last-level table from the pmd region for each store,
 * and tables one level below the root from the pud region where that level is not the
 * last; where it is (a two-level stage-2: 16K and 64K pages at 40 bits, 4K at 32) the pool
 * has no pud region at all and nothing was handed out of one.  For the sizes of the KVM
 * selftest library's 4K guest modes (36, 40, 48, 52 bits) a library VM, its guest running
 * with stage 1 on, must also run, on the same line, with the same shape.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "guest_modes.h"
#include "nptpool_kvm.h"
#include "raw_vm.h"

/*
 * The pool of a VM of `ipa` bits against KVM's stage-2 for it on this host: start level,
 * root, and the pud region there exactly when the level below the root is not the last.
 * `live` as tables_in_regions() counted them.
 */
static bool shape_ok(const struct pool *p, unsigned int ipa, const u64 live[NR_REGIONS])
{
	int want_level, level = start_level(p);
	u64 root_pages;
	bool ok;

	nptpool_s2_shape(ipa, &want_level, &root_pages);
	ok = level == want_level && p->pages[PGD] == root_pages && live[PGD] == root_pages &&
	     p->used[PGD] == root_pages;
	if (nptpool_s2_has_pud(want_level))
		ok = ok && p->pages[PUD] > 0 && live[PUD] >= 1;
	else
		ok = ok && p->pages[PUD] == 0 && p->used[PUD] == 0 &&
		     p->rstart[PUD] == p->rend[PUD];
	ksft_print_msg("%u-bit IPA, %lu KiB pages: start level %d, root %lu pages (KVM: %d, %lu); pud region %lu pages (%s), tables handed out: pud %lu, pmd %lu; live: pud %lu, pmd %lu\n",
		       ipa, nptpool_page_size() >> 10, level, p->pages[PGD], want_level,
		       root_pages, p->pages[PUD],
		       nptpool_s2_has_pud(want_level) ? "wanted" : "must be none", p->used[PUD],
		       p->used[PMD], live[PUD], live[PMD]);
	return ok;
}

/*
 * One VM of `ipa` bits, built by hand (raw_vm.h; the library's guest modes cover four
 * sizes), whose guest runs with its MMU off and stores to up to 8 pages one last-level
 * table span apart at the top of the IPA space (at most a quarter of it, clear of the
 * code at 0); whether it ran and its pool looks as it must.
 */
static bool raw_ipa_vm(unsigned int ipa)
{
	u64 live[NR_REGIONS], span = nptpool_last_table_span(), count, size;
	struct raw_vm r;
	struct pool p;
	int err;
	bool ok;

	count = (1ULL << (ipa - 2)) / span;
	count = count > 8 ? 8 : count ? count : 1;
	size = count * span;
	err = raw_vm_create(&r, KVM_VM_TYPE_ARM_IPA_SIZE(ipa));
	TEST_ASSERT(!err, "KVM_CREATE_VM(%u-bit IPA): %s", ipa, strerror(err));
	TEST_ASSERT(newest_vm_id(p.dir, sizeof(p.dir)) >= 0, "no pool for the %u-bit VM", ipa);
	err = raw_vm_setup(&r, (1ULL << ipa) - size, size, count, span);
	TEST_ASSERT(!err, "setting up the %u-bit VM: %s", ipa, strerror(err));
	err = raw_vm_run(&r);
	ok = !err && raw_vm_done(&r);
	if (!ok)
		ksft_print_msg("%u-bit IPA: KVM_RUN %s, exit reason %u, MMIO at 0x%llx of 0x%lx (0: the guest took an exception)\n",
			       ipa, err ? strerror(err) : "returned", r.run->exit_reason,
			       r.run->mmio.phys_addr, *(u64 *)r.run->mmio.data);

	read_pool(&p);
	ok = tables_in_regions(&p, live) && ok;
	ok = shape_ok(&p, ipa, live) && ok;
	/* A last-level table per store (each in a span of its own), and the code's. */
	if (live[PMD] < count + 1) {
		ksft_print_msg("%u-bit IPA: %lu live pmd-region tables for %lu stores %lu MiB apart and the code\n",
			       ipa, live[PMD], count, span >> 20);
		ok = false;
	}
	raw_vm_destroy(&r);
	return ok;
}

/*
 * One VM of the library's guest `mode` whose guest touches 64 pages 16 pages apart in a
 * memslot at the top of the IPA space: whether it ran and its pool has the shape of the
 * `ipa` bits stage-2, with every table in its region and pmd-region tables live.
 */
static bool library_ipa_vm(enum vm_guest_mode mode, unsigned int ipa)
{
	struct vm_under_test t;
	u64 live[NR_REGIONS];
	bool ok;

	vm_setup_shape(&t, VM_SHAPE(mode), 1024, 64, 16);
	ok = vm_run(&t) == 0;
	read_pool(&t.pool);
	ok = tables_in_regions(&t.pool, live) && ok;
	ok = shape_ok(&t.pool, ipa, live) && live[PMD] >= 1 && ok;
	ksft_print_msg("%u-bit IPA, library VM (%s): %s\n", ipa, vm_guest_mode_string(mode),
		       ok ? "ran, tables in their regions" : "FAILED");
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
		/*
		 * A 4K-page guest reaches a 52-bit IPA only with FEAT_LPA2; a 64K host with
		 * FEAT_LPA alone offers 52 bits to VMs whose guests use 64K pages.
		 */
		if (mode >= 0 && !guest_modes[mode].supported) {
			ksft_print_msg("%u-bit IPA: no library VM, the vCPU cannot run %s guests\n",
				       ipa, vm_guest_mode_string(mode));
			mode = -1;
		}
		if (mode < 0) {
			ksft_test_result(ok, "%u-bit IPA, %lu KiB pages: the guest's stores land; root, levels and regions as KVM laid them out\n",
					 ipa, nptpool_page_size() >> 10);
			continue;
		}
		ok &= library_ipa_vm(mode, ipa);
		ksft_test_result(ok, "%u-bit IPA, %lu KiB pages: the guest's stores land; root, levels and regions as KVM laid them out; a library VM (VM_MODE_P%uV48_4K) runs with its tables in their regions\n",
				 ipa, nptpool_page_size() >> 10, ipa);
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
