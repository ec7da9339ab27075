// SPDX-License-Identifier: GPL-2.0
/*
 * pool_split_test: blocks that dirty logging splits need tables of the pmd region.  A VM
 * whose splits fit has its hugetlb memory mapped as blocks; enabling dirty logging splits
 * nothing yet (-e, eager splitting with KVM_CAP_ARM_EAGER_SPLIT_CHUNK_SIZE: splits each
 * block with a pmd-region table in that ioctl); the guest's writes split each block with
 * a pmd-region table (-e: need no new table); the dirty log holds exactly the written
 * pages.  A VM with more blocks to split than its pmd region has tables halts on the
 * first write fault that finds the region empty: KVM_RUN failing with ENOMEM, later
 * KVM_RUNs too, debugfs showing it halted with its pmd region used up; another VM is
 * not halted and still runs and faults.  With -e the ioctl's eager splitting, best effort
 * in KVM, first splits what the region has room for and stops softly where it has none:
 * the ioctl succeeds, as when KVM's split cache runs short, the VM is neither dead nor
 * halted, and the guest writes every block eager splitting split before its first write
 * to an unsplit one halts it.  Needs nptpool loaded with a small pmd_pages and enough
 * free 2 MiB huge pages (SKIP otherwise).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nptpool_kvm.h"

/*
 * Dirty-logging splits.  The guest maps its code first, then writes one word per 2 MiB
 * block of a hugetlb memslot (mapped as blocks, which need no pmd-region table), then,
 * once the host enabled dirty logging, writes them again, reporting each block written
 * (SPLIT_WROTE + i): each write fault splits a write-protected block into a table of the
 * pmd region, unless eager splitting already did, in the ioctl.
 */
#define SPLIT_WROTE	100

static void guest_split(gva_t base, u64 nblocks)
{
	u64 i;

	GUEST_SYNC(0);
	for (i = 0; i < nblocks; i++)
		*(volatile u64 *)(base + i * BLOCK_SIZE) = i + 1;
	GUEST_SYNC(1);
	for (i = 0; i < nblocks; i++) {
		*(volatile u64 *)(base + i * BLOCK_SIZE + 8) = i + 2;
		GUEST_SYNC(SPLIT_WROTE + i);
	}
	GUEST_DONE();
}

struct split_vm {
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpu;
	gpa_t gpa;
	u64 nblocks;
	struct pool pool;
};

static void split_vm_create(struct split_vm *s, u64 nblocks, bool eager)
{
	long before = newest_vm_id(NULL, 0);
	u64 psz, slot_pages, i;

	s->vm = vm_create_with_one_vcpu(&s->vcpu, guest_split);
	if (eager)
		vm_enable_eager_split(s->vm, BLOCK_SIZE);
	psz = s->vm->page_size;
	s->nblocks = nblocks;
	slot_pages = nblocks * BLOCK_SIZE / psz;
	s->gpa = top_gpa(s->vm, slot_pages);
	vm_userspace_mem_region_add(s->vm, VM_MEM_SRC_ANONYMOUS_HUGETLB, s->gpa, TEST_SLOT,
				    slot_pages, 0);
	for (i = 0; i < nblocks; i++)
		virt_pg_map(s->vm, TEST_GVA + i * BLOCK_SIZE, s->gpa + i * BLOCK_SIZE);
	vcpu_args_set(s->vcpu, 2, TEST_GVA, nblocks);
	TEST_ASSERT(newest_vm_id(s->pool.dir, sizeof(s->pool.dir)) > before,
		    "no nptpool debugfs directory for the new VM");
	read_pool(&s->pool);
}

/* Run to the next ucall: its number (UCALL_SYNC's argument, or -1 for DONE), or -errno. */
static int split_run(struct split_vm *s)
{
	struct ucall uc;

	if (_vcpu_run(s->vcpu))
		return -errno;
	TEST_ASSERT_KVM_EXIT_REASON(s->vcpu, KVM_EXIT_MMIO);
	switch (get_ucall(s->vcpu, &uc)) {
	case UCALL_SYNC:
		return uc.args[1];
	case UCALL_DONE:
		return -1000;
	case UCALL_ABORT:
		REPORT_GUEST_ASSERT(uc);
	default:
		TEST_FAIL("unexpected ucall %lu", uc.cmd);
	}
	return 0;
}

#define SPLIT_DONE	(-1000)

/*
 * After the second sync: run while the guest reports blocks written, in order; how many
 * it wrote in *@wrote, and what ended the run (SPLIT_DONE or -errno).
 */
static int split_run_writes(struct split_vm *s, u64 *wrote)
{
	int ret;

	for (*wrote = 0; (ret = split_run(s)) >= SPLIT_WROTE; (*wrote)++)
		TEST_ASSERT_EQ(ret, SPLIT_WROTE + *wrote);
	return ret;
}

static const char *run_str(int ret)
{
	return ret == SPLIT_DONE ? "the guest finished" : ret < 0 ? strerror(-ret) : "a sync";
}

/* Map the blocks: run to the second sync; whether they took no pmd-region table each. */
static bool split_map_blocks(struct split_vm *s)
{
	u64 code_pmd;

	TEST_ASSERT_EQ(split_run(s), 0);
	read_pool(&s->pool);
	code_pmd = s->pool.used[PMD];
	TEST_ASSERT_EQ(split_run(s), 1);
	read_pool(&s->pool);
	ksft_print_msg("%s: %lu hugetlb blocks touched: pmd region used %lu -> %lu of %lu\n",
		       s->pool.dir, s->nblocks, code_pmd, s->pool.used[PMD], s->pool.pages[PMD]);
	return s->pool.used[PMD] - code_pmd < s->nblocks / 2;
}

/* Enable dirty logging on the hugetlb slot: the ioctl's errno, or 0. */
static int split_log_dirty(struct split_vm *s)
{
	struct userspace_mem_region *r = memslot2region(s->vm, TEST_SLOT);

	r->region.flags = KVM_MEM_LOG_DIRTY_PAGES;
	return __vm_ioctl(s->vm, KVM_SET_USER_MEMORY_REGION2, &r->region) ? errno : 0;
}

static u64 hugepages_free(void)
{
	return meminfo_kib("HugePages_Free");
}

static void test_split(bool eager)
{
	struct split_vm ctl, big;
	struct vm_under_test by;
	u64 pmd_before, bitmap[4 * 512 / 64], need, i, dirty, want, wrote, split;
	int err, ret;

	/* The eager split chunk is a VM's capability; its default, 0, reads "absent" here. */
	if (eager)
		TEST_REQUIRE(kvm_check_cap(KVM_CAP_ARM_SUPPORTED_BLOCK_SIZES) & BLOCK_SIZE);
	vm_setup(&by, 1, 1, 1);		/* the bystander */
	need = 4 + by.pool.pages[PMD] + 2;
	if (hugepages_free() < need)
		ksft_exit_skip("%lu free 2 MiB huge pages, %lu needed (HUGEPAGES=)\n",
			       hugepages_free(), need);
	ksft_set_plan(eager ? 11 : 9);

	/* A VM whose splits fit: they come from its pmd region, and logging works. */
	split_vm_create(&ctl, 4, eager);
	ksft_test_result(split_map_blocks(&ctl), "hugetlb-backed memory is mapped as blocks\n");
	pmd_before = ctl.pool.used[PMD];
	err = split_log_dirty(&ctl);
	TEST_ASSERT(!err, "enabling dirty logging: %s", strerror(err));
	read_pool(&ctl.pool);
	if (eager)
		ksft_test_result(ctl.pool.used[PMD] - pmd_before == ctl.nblocks && !vm_halted(&ctl.pool),
				 "enabling dirty logging splits each block with a pmd-region table (%lu -> %lu)\n",
				 pmd_before, ctl.pool.used[PMD]);
	else
		ksft_test_result(ctl.pool.used[PMD] == pmd_before,
				 "enabling dirty logging splits nothing yet (%lu -> %lu)\n",
				 pmd_before, ctl.pool.used[PMD]);
	pmd_before = ctl.pool.used[PMD];
	ret = split_run_writes(&ctl, &wrote);
	read_pool(&ctl.pool);
	ksft_test_result(ret == SPLIT_DONE && wrote == ctl.nblocks &&
			 ctl.pool.used[PMD] - pmd_before == (eager ? 0 : ctl.nblocks),
			 "the guest's writes to the %lu blocks %s (pmd region used %lu -> %lu)\n",
			 ctl.nblocks, eager ? "need no new table" : "split each with a pmd-region table",
			 pmd_before, ctl.pool.used[PMD]);
	kvm_vm_get_dirty_log(ctl.vm, TEST_SLOT, bitmap);
	for (i = 0, dirty = 0, want = 0; i < ARRAY_SIZE(bitmap); i++)
		dirty += __builtin_popcountll(bitmap[i]);
	for (i = 0; i < ctl.nblocks; i++)
		want += !!(bitmap[i * 512 / 64] & 1UL << (i * 512 % 64));
	ksft_test_result(dirty == ctl.nblocks && want == ctl.nblocks,
			 "the dirty log holds the %lu written pages and nothing else (%lu bits)\n",
			 ctl.nblocks, dirty);
	kvm_vm_free(ctl.vm);

	/* A VM with more blocks to split than its pmd region has tables. */
	split_vm_create(&big, by.pool.pages[PMD] + 2, eager);
	dump_pool(&big.pool, "before the run");
	ksft_test_result(split_map_blocks(&big), "%lu blocks mapped, pmd region not yet exhausted\n",
			 big.nblocks);
	pmd_before = big.pool.used[PMD];
	err = split_log_dirty(&big);
	read_pool(&big.pool);
	split = big.pool.used[PMD] - pmd_before;
	if (eager) {
		/* Best effort: split what fits, then stop as KVM does when its cache is short. */
		ksft_print_msg("enabling dirty logging: %s; eager splitting split %lu of %lu blocks\n",
			       err ? strerror(err) : "succeeded", split, big.nblocks);
		ksft_test_result(!err && split == big.pool.pages[PMD] - pmd_before &&
				 split < big.nblocks,
				 "the eager split in that ioctl takes the pmd region's room (%lu blocks) and the ioctl succeeds\n",
				 split);
		ksft_test_result(!vm_halted(&big.pool) &&
				 __vm_ioctl(big.vm, KVM_CHECK_EXTENSION, (void *)KVM_CAP_USER_MEMORY) > 0,
				 "running out of room there neither halts the pool's allocator nor kills the VM\n");
	}
	ret = split_run_writes(&big, &wrote);
	ksft_print_msg("%s region of %lu pages, %lu blocks written with dirty logging on, then KVM_RUN: %s\n",
		       region_names[PMD], big.pool.pages[PMD], wrote, run_str(ret));
	if (eager)
		ksft_test_result(wrote == split && ret == -ENOMEM,
				 "the guest writes the %lu blocks eager splitting split; its write fault on the next finds no table and fails KVM_RUN with ENOMEM\n",
				 split);
	else
		ksft_test_result(!err && ret == -ENOMEM && wrote < big.nblocks,
				 "the write fault whose split finds no table fails KVM_RUN with ENOMEM\n");
	ret = split_run(&big);
	ksft_test_result(ret == -ENOMEM, "later KVM_RUNs fail with ENOMEM too (%s)\n",
			 run_str(ret));
	read_pool(&big.pool);
	dump_pool(&big.pool, "after the halt");
	ksft_test_result(vm_halted(&big.pool) && big.pool.used[PMD] == big.pool.pages[PMD],
			 "debugfs shows the VM halted by a %s, pmd region used up\n",
			 eager ? "write fault after the eager split" : "write fault");
	ksft_test_result(!vm_halted(&by.pool) && vm_run(&by) == 0,
			 "another VM is not halted and still runs and faults\n");
	kvm_vm_free(big.vm);
	kvm_vm_free(by.vm);
}

static void usage(const char *name)
{
	printf("usage: %s [-h] [-e]\n", name);
	printf(" -e: eager splitting, in the ioctl that enables dirty logging\n");
}

int main(int argc, char *argv[])
{
	bool eager = false;
	int opt;

	while ((opt = getopt(argc, argv, "he")) != -1) {
		switch (opt) {
		case 'e':
			eager = true;
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
	test_split(eager);
	ksft_finished();
}
