// SPDX-License-Identifier: GPL-2.0
/*
 * pool_fit_test: with nptpool fitting pools (fit=1, the default), a VM's pool holds its
 * root alone until the VM first runs; then it holds the tables the VM's memslots can
 * need (the bound its debugfs `footprint` shows, which memslots_bound() computes again
 * here) plus the headroom: an eighth more, at least 2 pud-region and 8 pmd-region tables.
 *
 * The VM's memslot is half again as large as the built-in pmd region maps page by page,
 * so a fixed pool of the built-in size would halt it; its guest touches one page per pmd-region
 * table span across all of it, and must finish.  Once it ran, a memslot that needs more
 * tables than the pool has spare is refused with ENOSPC and a kernel log line naming the
 * VM and the memslot; one that fits is accepted, and the VM's second vCPU maps it.
 *
 * A VMM may name a range it will map later (KVM_CAP_ARM_S2_TABLE_RANGE, patch 7) before
 * the VM runs: the pool is fitted to it too, and a memslot over it is accepted later.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "nptpool_kvm.h"

#define REFUSED_SLOT	(TEST_SLOT + 1)
#define FITTING_SLOT	(TEST_SLOT + 2)
#define FITTING_GVA	(TEST_GVA - (1UL << 30))

/* The module's default pmd region: 1920 MiB mapped page by page, at least 16 pages. */
static u64 default_pmd_pages(void)
{
	u64 pages = (1920UL << 20) / nptpool_last_table_span();

	return pages > 16 ? pages : 16;
}

/* What nptpool fits a region to: the bound plus an eighth, at least `min` more. */
static u64 fitted(u64 bound, u64 min)
{
	return bound + (bound / 8 > min ? bound / 8 : min);
}

/*
 * KVM's references on the root, the first page of the pgd region (`tables`): 1 for the
 * table and 1 per live entry, so 2 or more once KVM links a table under it.
 */
static int root_refs(const struct pool *p)
{
	unsigned long long phys;
	char path[352], region[8];
	int count = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/tables", p->dir);
	f = fopen(path, "r");
	TEST_ASSERT(f, "open %s", path);
	if (fscanf(f, "0x%llx %7s %d", &phys, region, &count) != 3 || strcmp(region, "pgd") ||
	    phys != p->rstart[PGD])
		count = -1;
	fclose(f);
	return count;
}

static void *anon(u64 size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	TEST_ASSERT(p != MAP_FAILED, "mmap %lu bytes", size);
	return p;
}

static void test_fit(void)
{
	u64 span = nptpool_last_table_span(), psz = nptpool_page_size();
	u64 count = default_pmd_pages() * 3 / 2 + 8, slot, refused, gpa_refused, gpa_fits;
	u64 bound[NR_REGIONS], spare_pmd, want_pud, want_pmd, i;
	struct kvm_vcpu *vcpus[2];
	char line[512] = "", needle[96];
	struct kvm_vm *vm;
	struct pool p = {};
	struct counters c;
	int kmsg, err, level, root_count;
	gpa_t gpa;

	kmsg = kmsg_open();
	vm = __vm_create_with_vcpus(VM_SHAPE_DEFAULT, 2, count * 512, guest_touch, vcpus);
	TEST_ASSERT(newest_vm_id(p.dir, sizeof(p.dir)) >= 0, "no nptpool directory for the VM");
	slot = (count - 1) * span + psz;
	gpa = top_gpa_aligned(vm, slot / vm->page_size, span > (1UL << 30) ? span : 1UL << 30);
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, gpa, TEST_SLOT,
				    slot / vm->page_size, 0);
	for (i = 0; i < count; i++)
		virt_pg_map(vm, TEST_GVA + i * span, gpa + i * span);
	vcpu_args_set(vcpus[0], 3, TEST_GVA, count, span);

	read_pool(&p);
	level = start_level(&p);
	read_footprint(&p);
	/* The list loads nptpool at its default, fit=1: anything else is a harness bug, not a skip. */
	if (strcmp(p.sizing, "root-until-first-run"))
		ksft_exit_fail_msg("nptpool does not fit pools (fit=1): the pool's sizing is '%s'\n",
				   p.sizing);
	ksft_test_result(p.pages[PUD] == 0 && p.pages[PMD] == 0 && p.pages[PGD] >= 1,
			 "before it runs, the pool holds the root alone (%lu pages; pud %lu, pmd %lu)\n",
			 p.pages[PGD], p.pages[PUD], p.pages[PMD]);

	err = vcpu_run_done(vcpus[0]);
	ksft_test_result(!err,
			 "a guest touching %lu pages one pmd-region table apart (%lu MiB memslot, %lu default pmd pages) finishes: KVM_RUN %s\n",
			 count, slot >> 20, default_pmd_pages(), err ? strerror(err) : "succeeded");

	read_pool(&p);
	read_footprint(&p);
	dump_pool(&p, "after the first run");
	memslots_bound(vm, level, NULL, 0, bound);
	ksft_test_result(bound[PUD] == p.bound[PUD] && bound[PMD] == p.bound[PMD],
			 "debugfs's bound is the memslots' (pud %lu pmd %lu; computed here pud %lu pmd %lu)\n",
			 p.bound[PUD], p.bound[PMD], bound[PUD], bound[PMD]);
	want_pud = nptpool_s2_has_pud(level) ? fitted(p.bound[PUD], 2) : 0;
	want_pmd = fitted(p.bound[PMD], 8);
	ksft_test_result(!strcmp(p.sizing, "fitted") && p.pages[PUD] == want_pud &&
			 p.pages[PMD] == want_pmd,
			 "the pool was fitted to the bound and its headroom: %s, pud %lu pmd %lu (want %lu, %lu)\n",
			 p.sizing, p.pages[PUD], p.pages[PMD], want_pud, want_pmd);
	root_count = root_refs(&p);
	counters_read(&c);
	ksft_test_result(root_count >= 2 && c.vms == 1 && c.reserved == p.reserved_pages,
			 "KVM uses the fitted pool's root (%d references beside the pool's) and the first pool went back (%lu pages reserved in all, the fitted pool's %lu)\n",
			 root_count, c.reserved, p.reserved_pages);
	ksft_test_result(p.in_use[PMD] >= count && p.in_use[PMD] <= p.bound[PMD] &&
			 p.in_use[PUD] <= p.bound[PUD] && !vm_halted(&p),
			 "every touch took a table, within the bound: in use pud %lu pmd %lu, not halted\n",
			 p.in_use[PUD], p.in_use[PMD]);

	/* A memslot of one table more than the pool has spare, in spans of its own. */
	spare_pmd = p.pages[PMD] - p.bound[PMD];
	refused = (spare_pmd + 1) * span;
	gpa_refused = (gpa - refused - (1UL << 30)) & ~((1UL << 30) - 1);
	if (span > (1UL << 30))
		gpa_refused = (gpa - refused - span) & ~(span - 1);
	err = __vm_set_user_memory_region(vm, REFUSED_SLOT, 0, gpa_refused, refused,
					  anon(refused)) ? errno : 0;
	ksft_test_result(err == ENOSPC,
			 "a memslot of %lu MiB needing %lu pmd tables, %lu spare: KVM_SET_USER_MEMORY_REGION fails with ENOSPC (%s)\n",
			 refused >> 20, spare_pmd + 1, spare_pmd, err ? strerror(err) : "succeeded");
	snprintf(needle, sizeof(needle), "memslot %d at 0x%lx (%lu KiB) refused with ENOSPC",
		 REFUSED_SLOT, gpa_refused, refused >> 10);
	ksft_test_result(kmsg_find(kmsg, needle, line, sizeof(line)) &&
			 strstr(line, strrchr(p.dir, '/') + 1),
			 "the kernel log names the VM and the memslot: %s\n", line[0] ? line : "(none)");

	/* One host page far from the others: a table of each level below the root. */
	gpa_fits = gpa_refused - (span > (1UL << 30) ? span : 1UL << 30);
	err = __vm_set_user_memory_region(vm, FITTING_SLOT, 0, gpa_fits, psz, anon(psz)) ?
	      errno : 0;
	ksft_test_result(!err, "a memslot of one page that fits is accepted (%s)\n",
			 err ? strerror(err) : "succeeded");
	err = __vm_set_user_memory_region(vm, FITTING_SLOT, 0, gpa_fits, 0, NULL) ? errno : 0;
	TEST_ASSERT(!err, "delete the one-page memslot: %s", strerror(err));
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, gpa_fits, FITTING_SLOT,
				    psz / vm->page_size, 0);
	virt_pg_map(vm, FITTING_GVA, gpa_fits);
	vcpu_args_set(vcpus[1], 3, FITTING_GVA, 1, psz);
	err = vcpu_run_done(vcpus[1]);
	read_pool(&p);
	ksft_test_result(!err && !vm_halted(&p),
			 "the VM keeps running: its other vCPU maps that memslot (KVM_RUN %s)\n",
			 err ? strerror(err) : "succeeded");
	read_footprint(&p);
	ksft_test_result(p.in_use[PMD] <= p.bound[PMD] && p.in_use[PUD] <= p.bound[PUD],
			 "use stays within the bound: pud %lu of %lu, pmd %lu of %lu\n",
			 p.in_use[PUD], p.bound[PUD], p.in_use[PMD], p.bound[PMD]);
	close(kmsg);
	kvm_vm_free(vm);
}

#ifndef KVM_CAP_ARM_S2_TABLE_RANGE
#define KVM_CAP_ARM_S2_TABLE_RANGE	250
#endif

/* KVM_ENABLE_CAP(KVM_CAP_ARM_S2_TABLE_RANGE) for `size` bytes from `base`: its errno. */
static int provision(struct kvm_vm *vm, u64 base, u64 size)
{
	struct kvm_enable_cap cap = {
		.cap = KVM_CAP_ARM_S2_TABLE_RANGE,
		.args = { base, size },
	};

	return __vm_ioctl(vm, KVM_ENABLE_CAP, &cap) ? errno : 0;
}

/*
 * A VMM names a range it will map later (KVM_CAP_ARM_S2_TABLE_RANGE) before the VM runs:
 * the pool is fitted to the memslots and that range, and a memslot covering the range,
 * added after the VM ran, is accepted.  Bad ranges fail with EINVAL, and any range once
 * the VM ran with EBUSY.
 */
static void test_provision(void)
{
	u64 span = nptpool_last_table_span(), psz = nptpool_page_size();
	u64 size = 256 * span, extra[1][2], with[NR_REGIONS], without[NR_REGIONS];
	u64 want_pud, want_pmd;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	struct pool p = {};
	int err, err2, err3, err4, level;
	gpa_t base, outside;

	vm = vm_create_with_one_vcpu(&vcpu, guest_touch);
	TEST_ASSERT(newest_vm_id(p.dir, sizeof(p.dir)) >= 0, "no nptpool directory for the VM");
	read_pool(&p);
	level = start_level(&p);
	ksft_test_result(vm_check_cap(vm, KVM_CAP_ARM_S2_TABLE_RANGE) == 1,
			 "KVM_CHECK_EXTENSION(KVM_CAP_ARM_S2_TABLE_RANGE) on the VM is 1\n");

	base = top_gpa_aligned(vm, size / vm->page_size, span > (1UL << 30) ? span : 1UL << 30);
	err = provision(vm, base, 0);
	err2 = provision(vm, base + psz / 2, size);
	err3 = provision(vm, (1UL << vm->pa_bits) - psz, 2 * psz);
	err4 = provision(vm, ~0UL & ~(psz - 1), psz);
	ksft_test_result(err == EINVAL && err2 == EINVAL && err3 == EINVAL && err4 == EINVAL,
			 "an empty, an unaligned, an out-of-IPA and a wrapping range fail with EINVAL (%s, %s, %s, %s)\n",
			 strerror(err), strerror(err2), strerror(err3), strerror(err4));
	/* A range named again replaces the one before: the fit below is for the second. */
	err = provision(vm, base - size, 2 * size);
	if (!err)
		err = provision(vm, base, size);
	ksft_test_result(!err, "a range of %lu MiB at 0x%lx is taken before the VM runs (%s)\n",
			 size >> 20, base, err ? strerror(err) : "succeeded");

	vcpu_args_set(vcpu, 3, 0, 0, 0);
	err = vcpu_run_done(vcpu);
	read_pool(&p);
	read_footprint(&p);
	extra[0][0] = base;
	extra[0][1] = size;
	memslots_bound(vm, level, extra, 1, with);
	memslots_bound(vm, level, NULL, 0, without);
	want_pud = nptpool_s2_has_pud(level) ? fitted(with[PUD], 2) : 0;
	want_pmd = fitted(with[PMD], 8);
	ksft_test_result(!err && !strcmp(p.sizing, "fitted") && p.pages[PUD] == want_pud &&
			 p.pages[PMD] == want_pmd && want_pmd > fitted(without[PMD], 8),
			 "the pool is fitted to the memslots and the range: pud %lu pmd %lu (want %lu, %lu; %lu pmd without the range)\n",
			 p.pages[PUD], p.pages[PMD], want_pud, want_pmd, fitted(without[PMD], 8));

	/*
	 * Outside the range, a memslot of one table more than the pool holds beyond the
	 * memslots and the range is refused: the range keeps its tables.
	 */
	outside = (base - (p.pages[PMD] - with[PMD] + 1) * span) & ~((1UL << 30) - 1);
	outside -= 1UL << 30;
	err = __vm_set_user_memory_region(vm, REFUSED_SLOT, 0, outside,
					  (p.pages[PMD] - with[PMD] + 1) * span,
					  anon((p.pages[PMD] - with[PMD] + 1) * span)) ? errno : 0;
	ksft_test_result(err == ENOSPC,
			 "outside the range, a memslot needing %lu pmd tables, %lu spare beyond the range, fails with ENOSPC (%s)\n",
			 p.pages[PMD] - with[PMD] + 1, p.pages[PMD] - with[PMD],
			 err ? strerror(err) : "succeeded");
	err = __vm_set_user_memory_region(vm, TEST_SLOT, 0, base, size, anon(size)) ? errno : 0;
	ksft_test_result(!err, "a memslot over the whole range, added after the VM ran, is accepted (%s)\n",
			 err ? strerror(err) : "succeeded");
	err = provision(vm, base, size);
	ksft_test_result(err == EBUSY, "a range named after the VM ran fails with EBUSY (%s)\n",
			 err ? strerror(err) : "succeeded");
	kvm_vm_free(vm);
}

static void usage(const char *name)
{
	printf("usage: %s [-h]\n (no options; nptpool loaded fitting pools, its default)\n", name);
}

int main(int argc, char *argv[])
{
	int opt;

	while ((opt = getopt(argc, argv, "h")) != -1) {
		usage(argv[0]);
		exit(opt == 'h' ? KSFT_PASS : KSFT_FAIL);
	}
	NPTPOOL_REQUIRE();
	ksft_print_header();
	ksft_set_plan(18);
	test_fit();
	test_provision();
	ksft_finished();
}
