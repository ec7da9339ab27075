// SPDX-License-Identifier: GPL-2.0
/*
 * pool_test: what nptpool promises about a VM's stage-2 table pool, checked from the
 * outside through KVM and nptpool's debugfs.
 *
 *   -m layout   every table of a running VM lies in its pool, in the region of its level;
 *               the root fills the pgd region; the pools of two live VMs are disjoint
 *   -m exhaust  (module loaded with a small pud_pages or pmd_pages) a VM that outgrows
 *               the region halts: KVM_RUN fails with ENOMEM, then EIO, debugfs says
 *               halted; a second VM keeps running and faulting (-s: in a memslot far
 *               larger than the pool can map)
 *   -m ipa      VMs of every 4K-granule IPA size the host supports (so every stage-2
 *               start level KVM picks) run with their tables in the right regions
 *   -m churn    creating and destroying VMs leaves nptpool's counters and MemFree where
 *               they began
 *   -m hold     keep one VM alive until SIGUSR1, then fault more pages (for scripts)
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#include "nptpool_util.h"

/* Touch half the pages, wait for the host, touch the other half. */
static void guest_touch_halves(gva_t base, u64 count, u64 page_size)
{
	u64 i;

	for (i = 0; i < count; i++) {
		if (i == count / 2)
			GUEST_SYNC(1);
		*(volatile u64 *)(base + i * page_size) = i + 1;
	}
	GUEST_DONE();
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

/* One VM that faults a few pages, created and destroyed. */
static int churn_one(void)
{
	struct vm_under_test t;
	int err;

	vm_setup(&t, 512, 16, 32);
	err = vm_run(&t);
	kvm_vm_free(t.vm);
	return err;
}

/*
 * One VM per IPA size of the 4K granule that the host supports: KVM picks the stage-2
 * start level from it (concatenating up to 16 root pages), and each VM must run with its
 * tables in the regions of their levels.
 */
static void test_ipa(void)
{
	static const struct { enum vm_guest_mode mode; unsigned int ipa; } modes[] = {
		{ VM_MODE_P36V48_4K, 36 }, { VM_MODE_P40V48_4K, 40 },
		{ VM_MODE_P48V48_4K, 48 }, { VM_MODE_P52V48_4K, 52 },
	};
	unsigned int max_ipa = kvm_check_cap(KVM_CAP_ARM_VM_IPA_SIZE);
	u64 live[NR_REGIONS];
	size_t i;

	ksft_set_plan(ARRAY_SIZE(modes));
	for (i = 0; i < ARRAY_SIZE(modes); i++) {
		struct vm_under_test t;
		bool ok;

		if (modes[i].ipa > max_ipa) {
			ksft_test_result_skip("%u-bit IPA: the host supports %u bits\n",
					      modes[i].ipa, max_ipa);
			continue;
		}
		vm_setup_shape(&t, VM_SHAPE(modes[i].mode), 1024, 64, 16);
		ok = vm_run(&t) == 0;
		read_pool(&t.pool);
		ok &= tables_in_regions(&t.pool, live);
		ok &= live[PGD] == t.pool.pages[PGD] && live[PUD] >= 1 && live[PMD] >= 1;
		ksft_test_result(ok, "%u-bit IPA: start level %d, root of %lu pages, tables in their regions\n",
				 modes[i].ipa, start_level(&t.pool), t.pool.pages[PGD]);
		kvm_vm_free(t.vm);
	}
}

static void test_churn(int nr_vms)
{
	u64 free_before, free_after, s2_before, s2_after, vms, reserved, in_use;
	int i, failed = 0;

	ksft_set_plan(3);
	/* Warm up: let KVM's and the selftest's slabs reach their steady state. */
	for (i = 0; i < 20; i++)
		failed += churn_one() != 0;
	settle();
	free_before = meminfo_kib("MemFree");
	s2_before = meminfo_kib("SecPageTables");
	for (i = 0; i < nr_vms; i++)
		failed += churn_one() != 0;
	settle();
	free_after = meminfo_kib("MemFree");
	s2_after = meminfo_kib("SecPageTables");
	vms = read_u64(DEBUGFS "/vms");
	reserved = read_u64(DEBUGFS "/pages_reserved");
	in_use = read_u64(DEBUGFS "/pages_in_use");
	ksft_print_msg("%d VMs: MemFree %lu -> %lu kB, SecPageTables %lu -> %lu kB; vms=%lu pages_reserved=%lu pages_in_use=%lu\n",
		       nr_vms, free_before, free_after, s2_before, s2_after, vms, reserved, in_use);
	ksft_test_result(!failed && !vms && !reserved && !in_use,
			 "after %d VMs every pool is returned (counters at 0)\n", nr_vms);
	/* Every pool page is counted there from reservation to release: exact. */
	ksft_test_result(s2_after == s2_before,
			 "SecPageTables is back where it began (%lu kB)\n", s2_after);
	/*
	 * Tolerance 32 MiB: between identical rounds of 200 VMs in a 2 GiB test host, after
	 * a warm-up and dropping caches, MemFree moved by -19.4 to +29.6 MB, stock KVM
	 * alone by +0.6 and +1.6 MB (per-CPU free lists, slab and caches). The exact
	 * SecPageTables check above is what catches a leaked pool page; this one bounds
	 * everything else, and a pool leaked per VM would cost 200 x 4 MiB.
	 */
	ksft_test_result(free_after + 32768 >= free_before,
			 "MemFree is back within 32 MiB (%ld kB)\n",
			 (long)free_after - (long)free_before);
}

static volatile sig_atomic_t resumed;

static void on_usr1(int sig)
{
	resumed = 1;
}

static void test_hold(u64 npages)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	struct ucall uc;
	gpa_t gpa;

	ksft_set_plan(1);
	signal(SIGUSR1, on_usr1);
	vm = vm_create_with_one_vcpu(&vcpu, guest_touch_halves);
	gpa = ((vm->max_gfn - npages) * vm->page_size) & ~((1UL << 30) - 1);
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, gpa, TEST_SLOT, npages, 0);
	virt_map(vm, TEST_GVA, gpa, npages);
	vcpu_args_set(vcpu, 3, TEST_GVA, npages, (u64)vm->page_size);
	vcpu_run(vcpu);
	TEST_ASSERT_EQ(get_ucall(vcpu, &uc), UCALL_SYNC);
	ksft_print_msg("ready\n");
	fflush(stdout);
	while (!resumed)
		pause();
	vcpu_run(vcpu);
	ksft_test_result(get_ucall(vcpu, &uc) == UCALL_DONE,
			 "the held VM faults %lu more pages after resuming\n", npages / 2);
	kvm_vm_free(vm);
}

static void usage(const char *name)
{
	printf("usage: %s [-h] [-m layout|exhaust|ipa|churn|hold] [-r pud|pmd] [-n pages] [-c vms]\n"
	       "       [-s GiB]\n", name);
	printf(" -m: what to test (default layout), see the head of pool_test.c\n");
	printf(" -r: region to exhaust with -m exhaust (default pmd)\n");
	printf(" -n: guest pages to touch with -m layout/hold (default 4096)\n");
	printf(" -c: VMs to create and destroy with -m churn (default 200)\n");
	printf(" -s: with -m exhaust, a memslot of this many GiB, touched across its length\n");
}

int main(int argc, char *argv[])
{
	const char *mode = "layout";
	enum region region = PMD;
	u64 npages = 4096;
	int nr_vms = 200, opt;
	u64 slot_gib = 0;

	while ((opt = getopt(argc, argv, "hm:r:n:c:s:")) != -1) {
		switch (opt) {
		case 'm':
			mode = optarg;
			break;
		case 'r':
			region = !strcmp(optarg, "pud") ? PUD : PMD;
			break;
		case 'n':
			npages = atoi_positive("Number of pages", optarg);
			break;
		case 'c':
			nr_vms = atoi_positive("Number of VMs", optarg);
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
	/* hold also serves VMs created before nptpool is loaded */
	if (strcmp(mode, "hold") && access(DEBUGFS, F_OK))
		ksft_exit_skip("nptpool is not loaded (no %s)\n", DEBUGFS);
	if (!strcmp(mode, "layout"))
		test_layout(npages);
	else if (!strcmp(mode, "exhaust"))
		test_exhaust(region, slot_gib);
	else if (!strcmp(mode, "ipa"))
		test_ipa();
	else if (!strcmp(mode, "churn"))
		test_churn(nr_vms);
	else if (!strcmp(mode, "hold"))
		test_hold(npages);
	else
		ksft_exit_fail_msg("unknown mode %s\n", mode);
	ksft_finished();
}
