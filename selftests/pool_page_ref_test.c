// SPDX-License-Identifier: GPL-2.0
/*
 * pool_page_ref_test: a pool page stays the pool's whoever else holds a reference on it.
 * Anyone may take a transient reference on any page (a speculative folio_try_get(),
 * memory-failure handling); one taken after KVM found a table empty and before its last
 * put must neither let that put nor the other holder's free the pool's page.
 *
 * A guest writes to hugetlb memory (mapped as 2 MiB blocks), dirty logging splits each
 * block on the guest's next write into a table from the pmd region, and the page_pin test
 * module is armed on the first of those tables.  With logging off, the guest writes to
 * another page of each block: KVM maps the block again, unlinks the table and, in an RCU
 * callback, finds it empty and drops its last reference; page_pin takes its reference
 * right between the two.  Asserted: the page keeps the pool's reference (count 2 with the
 * pin, so not freed) and 1 once the pin is dropped, never in the buddy allocator; KVM
 * shows it given up in debugfs `tables`; the guest's data is intact, the VM not halted,
 * and the next splits take the tables KVM gave back, then fresh pool pages, but never
 * the pinned page, whose last put was not KVM's.  The runner's leak check then shows
 * the pool released whole, and kernel_log_clean that nothing warned.  Needs nptpool
 * loaded, /selftests/kmod/page_pin.ko (a kretprobe: CONFIG_KPROBES) and 4 free 2 MiB
 * huge pages (SKIP otherwise).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "nptpool_kvm.h"

#define NBLOCKS		4
/* The page of each block the guest writes once the block is mapped again. */
#define OTHER_PAGE	(3 * 4096UL)
#define PAGE_PIN_KO	"/selftests/kmod/page_pin.ko"
#define PAGE_PIN	"/sys/kernel/debug/page_pin/page"
/*
 * The pool mm_ops' page_count callback that page_pin probes: patch 4's, or, on a kernel
 * whose allocator patch predates it, the one the pool shared with stock KVM.
 */
static const char * const page_count_symbols[] = {
	"kvm_s2_alloc_page_count", "kvm_host_page_count",
};

/*
 * 0: blocks mapped; 1: each split by a write under dirty logging; 2: each mapped as a
 * block again by a write to another of its pages; 3: each split again; then the data.
 */
static void guest_code(gva_t base)
{
	u64 i;

	for (i = 0; i < NBLOCKS; i++)
		*(volatile u64 *)(base + i * BLOCK_SIZE) = i + 1;
	GUEST_SYNC(0);
	for (i = 0; i < NBLOCKS; i++)
		*(volatile u64 *)(base + i * BLOCK_SIZE + 8) = i + 2;
	GUEST_SYNC(1);
	for (i = 0; i < NBLOCKS; i++)
		*(volatile u64 *)(base + i * BLOCK_SIZE + OTHER_PAGE) = i + 3;
	GUEST_SYNC(2);
	for (i = 0; i < NBLOCKS; i++)
		*(volatile u64 *)(base + i * BLOCK_SIZE + 16) = i + 4;
	GUEST_SYNC(3);
	for (i = 0; i < NBLOCKS; i++) {
		GUEST_ASSERT_EQ(*(volatile u64 *)(base + i * BLOCK_SIZE), i + 1);
		GUEST_ASSERT_EQ(*(volatile u64 *)(base + i * BLOCK_SIZE + 8), i + 2);
		GUEST_ASSERT_EQ(*(volatile u64 *)(base + i * BLOCK_SIZE + OTHER_PAGE), i + 3);
		GUEST_ASSERT_EQ(*(volatile u64 *)(base + i * BLOCK_SIZE + 16), i + 4);
	}
	GUEST_DONE();
}

/* Run to the next ucall: UCALL_SYNC's argument, or -1 for DONE. */
static int run(struct kvm_vcpu *vcpu)
{
	struct ucall uc;

	vcpu_run(vcpu);
	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_MMIO);
	switch (get_ucall(vcpu, &uc)) {
	case UCALL_SYNC:
		return uc.args[1];
	case UCALL_DONE:
		return -1;
	case UCALL_ABORT:
		REPORT_GUEST_ASSERT(uc);
	default:
		TEST_FAIL("unexpected ucall %lu", uc.cmd);
	}
	return 0;
}

static void log_dirty(struct kvm_vm *vm, bool on)
{
	struct userspace_mem_region *r = memslot2region(vm, TEST_SLOT);

	r->region.flags = on ? KVM_MEM_LOG_DIRTY_PAGES : 0;
	vm_ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &r->region);
}

struct pin {
	unsigned long long phys;
	int count, buddy, held;
};

/* The first of `page_count_symbols` in /proc/kallsyms, or NULL. */
static const char *page_count_symbol(void)
{
	char line[256], name[128];
	size_t i, found = ARRAY_SIZE(page_count_symbols);
	FILE *f = fopen("/proc/kallsyms", "r");

	if (!f)
		return NULL;
	while (fgets(line, sizeof(line), f))
		for (i = 0; i < found; i++)
			if (sscanf(line, "%*s %*s %127s", name) == 1 &&
			    !strcmp(name, page_count_symbols[i]))
				found = i;
	fclose(f);
	return found < ARRAY_SIZE(page_count_symbols) ? page_count_symbols[found] : NULL;
}

/*
 * Drop the pin and unload page_pin at exit, however the test ends: unless page_pin holds
 * a reference on a page that lost the pool's (the bug this test is for), when dropping it
 * would free a page the pool still owns and corrupt the rest of the run.
 */
static void page_pin_unload(void)
{
	FILE *f = fopen(PAGE_PIN, "r");
	unsigned long long phys;
	int count, buddy, held;
	char buf[128];
	bool lost;

	if (!f)
		return;
	lost = fgets(buf, sizeof(buf), f) &&
	       sscanf(buf, "phys=0x%llx count=%d buddy=%d held=%d", &phys, &count, &buddy,
		      &held) == 4 && held && count < 2;
	fclose(f);
	if (lost) {
		ksft_print_msg("page_pin keeps its reference on 0x%llx: the page lost the pool's\n",
			       phys);
		return;
	}
	write_file_ok(PAGE_PIN, "0");
	syscall(SYS_delete_module, "page_pin", 0);
}

/* page_pin's view of its page, after an RCU barrier. */
static void pin_read(struct pin *p)
{
	char buf[128];

	read_file(PAGE_PIN, buf, sizeof(buf));
	TEST_ASSERT(sscanf(buf, "phys=0x%llx count=%d buddy=%d held=%d", &p->phys, &p->count,
			   &p->buddy, &p->held) == 4, "parse %s: '%s'", PAGE_PIN, buf);
}

/* KVM's count of the table at `phys`, as nptpool's debugfs `tables` shows it, or -1. */
static int table_count(const struct pool *p, u64 phys)
{
	unsigned long long at;
	char path[352], name[8];
	int count, found = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/tables", p->dir);
	f = fopen(path, "r");
	TEST_ASSERT(f, "open %s", path);
	while (fscanf(f, "0x%llx %7s %d\n", &at, name, &count) == 3)
		if (at == phys)
			found = count;
	fclose(f);
	return found;
}

static void usage(const char *name)
{
	printf("usage: %s [-h]\n", name);
	printf(" (no options: see the head of pool_page_ref_test.c for what it asserts)\n");
}

int main(int argc, char *argv[])
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	u64 slot_pages, used_split, used_before, pinned, free_before, i;
	const char *symbol;
	bool unpin_is_safe;
	struct pool pool;
	struct pin pin;
	char buf[160];
	int opt, fd, live;
	long before;
	gpa_t gpa;

	while ((opt = getopt(argc, argv, "h")) != -1) {
		usage(argv[0]);
		exit(opt == 'h' ? KSFT_PASS : KSFT_FAIL);
	}

	ksft_print_header();
	NPTPOOL_REQUIRE();
	if (meminfo_kib("HugePages_Free") < NBLOCKS)
		ksft_exit_skip("%lu free 2 MiB huge pages, %d needed (HUGEPAGES=)\n",
			       meminfo_kib("HugePages_Free"), NBLOCKS);
	fd = open(PAGE_PIN_KO, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		ksft_exit_skip("no %s: %s\n", PAGE_PIN_KO, strerror(errno));
	if (access("/sys/kernel/debug/kprobes", F_OK))
		ksft_exit_skip("no kprobes in this kernel (CONFIG_KPROBES)\n");
	/* From here on, a missing probe point is the test's failure, not the kernel's choice. */
	symbol = page_count_symbol();
	TEST_ASSERT(symbol, "none of the stage-2 page_count callbacks is in /proc/kallsyms");
	snprintf(buf, sizeof(buf), "symbol=%s", symbol);
	TEST_ASSERT(!syscall(SYS_finit_module, fd, buf, 0),
		    "load %s %s: %s (EEXIST: left loaded by an earlier run, which may still hold a page)",
		    PAGE_PIN_KO, buf, strerror(errno));
	close(fd);
	atexit(page_pin_unload);
	ksft_print_msg("page_pin probes %s\n", symbol);
	ksft_set_plan(7);

	before = newest_vm_id(NULL, 0);
	vm = vm_create_with_one_vcpu(&vcpu, guest_code);
	slot_pages = NBLOCKS * BLOCK_SIZE / vm->page_size;
	gpa = top_gpa(vm, slot_pages);
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS_HUGETLB, gpa, TEST_SLOT, slot_pages,
				    0);
	for (i = 0; i < NBLOCKS; i++) {
		virt_pg_map(vm, TEST_GVA + i * BLOCK_SIZE, gpa + i * BLOCK_SIZE);
		virt_pg_map(vm, TEST_GVA + i * BLOCK_SIZE + OTHER_PAGE,
			    gpa + i * BLOCK_SIZE + OTHER_PAGE);
	}
	vcpu_args_set(vcpu, 1, TEST_GVA);
	TEST_ASSERT(newest_vm_id(pool.dir, sizeof(pool.dir)) > before,
		    "no nptpool debugfs directory for the new VM");

	/* Blocks, then each split into a table of its own under dirty logging. */
	TEST_ASSERT_EQ(run(vcpu), 0);
	read_pool(&pool);
	used_before = pool.used[PMD];
	log_dirty(vm, true);
	TEST_ASSERT_EQ(run(vcpu), 1);
	read_pool(&pool);
	used_split = pool.used[PMD];
	TEST_ASSERT(used_split - used_before == NBLOCKS,
		    "%d blocks split with %lu pmd-region tables", NBLOCKS, used_split - used_before);
	/* The bump allocator handed the split tables out in order, the first one first. */
	pinned = pool.rstart[PMD] + used_before * getpagesize();
	live = table_count(&pool, pinned);
	snprintf(buf, sizeof(buf), "0x%lx", pinned);
	write_file(PAGE_PIN, buf);
	pin_read(&pin);
	ksft_print_msg("page_pin armed on the split table at 0x%llx: KVM's count %d, page count %d\n",
		       pin.phys, live, pin.count);

	/* The blocks come back: KVM unlinks each table and drops it through RCU. */
	log_dirty(vm, false);
	TEST_ASSERT_EQ(run(vcpu), 2);
	read_pool(&pool);
	pin_read(&pin);
	ksft_print_msg("blocks mapped again: page count %d, buddy %d, pinned %d; pmd region used %lu\n",
		       pin.count, pin.buddy, pin.held, pool.used[PMD]);
	ksft_test_result(live >= 2 && pin.held && pool.used[PMD] == used_split,
			 "KVM dropped the table (its count was %d), page_pin took its reference in between, no new table\n",
			 live);
	unpin_is_safe = !pin.held || pin.count >= 2;
	ksft_test_result(pin.count == 2 && !pin.buddy,
			 "while pinned, the page keeps the pool's reference (count %d, want 2; buddy %d)\n",
			 pin.count, pin.buddy);

	if (unpin_is_safe)
		write_file(PAGE_PIN, "0");
	pin_read(&pin);
	ksft_test_result(unpin_is_safe && pin.count == 1 && !pin.buddy && !pin.held,
			 "unpinned, the page is the pool's alone (count %d, want 1; buddy %d)\n",
			 pin.count, pin.buddy);
	read_pool(&pool);
	ksft_test_result(!vm_halted(&pool) && table_count(&pool, pinned) == 0 &&
			 pool.used[PMD] == used_split,
			 "the pool is as it was: VM not halted, the table given up (KVM's count %d), pmd region used %lu\n",
			 table_count(&pool, pinned), pool.used[PMD]);

	/*
	 * The pool goes on serving: new splits, from the tables KVM gave back and fresh
	 * pages.  Not from the pinned page, whose last put was page_pin's: KVM never gave
	 * it back.
	 */
	free_before = pool.free[PMD];
	log_dirty(vm, true);
	TEST_ASSERT_EQ(run(vcpu), 3);
	read_pool(&pool);
	ksft_test_result(pool.used[PMD] - used_split + free_before - pool.free[PMD] == NBLOCKS &&
			 table_count(&pool, pinned) == 0 && !vm_halted(&pool),
			 "dirty logging again splits the %d blocks with pool tables: %lu given back before, %lu fresh (used %lu -> %lu), not the pinned page\n",
			 NBLOCKS, free_before - pool.free[PMD], pool.used[PMD] - used_split,
			 used_split, pool.used[PMD]);
	ksft_test_result(run(vcpu) == -1, "the guest finds all it wrote\n");
	pin_read(&pin);
	ksft_test_result(pin.count == 1 && !pin.buddy,
			 "the given-up table page is still the pool's (count %d)\n", pin.count);

	kvm_vm_free(vm);
	ksft_finished();
}
