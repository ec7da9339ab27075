// SPDX-License-Identifier: GPL-2.0
/*
 * pool_reuse_test: a VM's pool use is bounded by the tables it holds at once, not by its
 * history.  KVM gives back each table it gives up and nptpool hands it out again, so
 * cycles that empty and refill the same tables leave the pages used from the pool where
 * the first cycle put them.  Each cycle the guest writes one page in each of -b memslot
 * blocks (one last-level table span each, a new table each) after the host made KVM give
 * the tables up:
 *
 *   dontneed  MADV_DONTNEED over the whole memslot (-c: in chunks of one block), which
 *             unmaps it from stage 2 and empties every table
 *   slot      the memslot deleted and added again
 *   move      the memslot moved to other guest physical addresses, back and forth
 *   dirty     a hugetlb memslot mapped as blocks; dirty logging on (the writes split
 *             each block with a table), then off (a write to another page of each block
 *             maps it as a block again, and the table goes back after an RCU grace
 *             period); with -e, eager splitting (KVM_CAP_ARM_EAGER_SPLIT_CHUNK_SIZE)
 *             splits every block as logging is turned on, from the tables given back
 *             once their grace period is over, and the writes take none
 *   numa      nothing but NUMA balancing, turned on after the first cycle, for -t
 *             seconds (default 60) with a fast scan, while the thread spins between
 *             cycles (a scan is due after so much of the thread's own CPU time): each
 *             scan makes KVM unmap the memslot's range, whether or not a page moves.
 *             With two nodes (run-qemu.sh NUMA=2) the memslot is first touched on node
 *             1 by a thread pinned to a CPU of node 0, so balancing migrates pages too
 *             (/proc/vmstat numa_pages_migrated, shown)
 *   ksm       KSM with use_zero_pages: the host zeroes each page the guest wrote (as
 *             every cycle does, after checking it), and ksmd merges it with the zero
 *             page (or, if two meet in its unstable tree first, with a KSM page), which
 *             makes KVM unmap it (an idle guest's zero pages); the cycle waits until
 *             every page is merged and every table came back
 *
 * Asserted: the pmd region's used pages never exceed those after the first of -n cycles
 * (dirty: each cycle waits for the previous one's tables to come back, where the region
 * has room for more; where it has none, the faults wait for them and the VM must not
 * halt), the pud and pmd pages ever handed out stay within the bound debugfs computes from
 * the memslots ("footprint"; dirty: the pages not given back, once the grace period of
 * the last cycle's is over), the guest's writes land in the memslot (a reused table is
 * empty), the VM never halts, and the tables given back show in debugfs ("free").
 * Needs nptpool loaded; dirty needs -b free huge pages.
 */
#include <linux/mempolicy.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "nptpool_kvm.h"

#define TEST_GVA2	0x100000000UL

enum mode { DONTNEED, SLOT, MOVE, DIRTY, NUMA, KSM };
static const char * const mode_names[] = { "dontneed", "slot", "move", "dirty", "numa", "ksm" };

/* ksmd to scan as fast as it can, merging zero pages with the zero page; put back at exit. */
#define KSM_DIR		"/sys/kernel/mm/ksm/"
static const char * const ksm_knobs[] = { "use_zero_pages", "sleep_millisecs", "pages_to_scan",
					   "run" };
/* ksmd runs only while a cycle waits for it: none of the guest's writes races a merge. */
static const char * const ksm_fast[] = { "1", "0", "4096", "0" };
static char ksm_saved[ARRAY_SIZE(ksm_knobs)][32];
/* How long a cycle waits for ksmd; cycles that found it had not merged every page. */
#define KSM_WAIT_MS	10000
static u64 ksm_short;

static void ksm_restore(void)
{
	char path[128];
	int i;

	for (i = ARRAY_SIZE(ksm_knobs) - 1; i >= 0; i--) {
		if (!ksm_saved[i][0])
			continue;
		snprintf(path, sizeof(path), KSM_DIR "%s", ksm_knobs[i]);
		write_file_ok(path, ksm_saved[i]);
	}
}

static void ksm_fast_on(void)
{
	char path[128];
	size_t i;

	if (access(KSM_DIR "run", W_OK))
		ksft_exit_skip("no %srun: the kernel has no KSM (CONFIG_KSM)\n", KSM_DIR);
	atexit(ksm_restore);
	for (i = 0; i < ARRAY_SIZE(ksm_knobs); i++) {
		snprintf(path, sizeof(path), KSM_DIR "%s", ksm_knobs[i]);
		read_file(path, ksm_saved[i], sizeof(ksm_saved[i]));
		write_file(path, ksm_fast[i]);
	}
}

/*
 * NUMA balancing's scheduler knobs (debugfs) set to scan the VMM's memory every 100 ms
 * to 1 s of its CPU time (by default the period backs off to a minute when nothing is
 * misplaced); balancing itself is turned on later (numa_balancing_on()).  Both put
 * back as they were at exit.
 */
#define NUMA_BALANCING		"/proc/sys/kernel/numa_balancing"
#define NUMA_KNOBS		"/sys/kernel/debug/sched/numa_balancing/"
static const char * const numa_knobs[] = { "scan_delay_ms", "scan_period_min_ms",
					   "scan_period_max_ms" };
static const char * const numa_fast[] = { "0", "100", "1000" };
static char numa_saved[ARRAY_SIZE(numa_knobs)][32], numa_was[32];

static void numa_balancing_restore(void)
{
	char path[128];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(numa_knobs); i++) {
		snprintf(path, sizeof(path), NUMA_KNOBS "%s", numa_knobs[i]);
		if (numa_saved[i][0])
			write_file_ok(path, numa_saved[i]);
	}
	if (numa_was[0])
		write_file_ok(NUMA_BALANCING, numa_was);
}

/* Whether node 1 is online: then the memslot is first touched there, from node 0. */
static bool numa_two_nodes;

static void numa_balancing_fast(void)
{
	char path[128], online[64] = "";
	size_t i;

	if (access(NUMA_BALANCING, W_OK))
		ksft_exit_skip("no %s: a kernel without CONFIG_NUMA_BALANCING\n", NUMA_BALANCING);
	read_file("/sys/devices/system/node/online", online, sizeof(online));
	numa_two_nodes = !access("/sys/devices/system/node/node1", F_OK);
	ksft_print_msg("NUMA nodes online: %s\n", strtok(online, "\n"));
	read_file(NUMA_BALANCING, numa_was, sizeof(numa_was));
	atexit(numa_balancing_restore);
	for (i = 0; i < ARRAY_SIZE(numa_knobs); i++) {
		snprintf(path, sizeof(path), NUMA_KNOBS "%s", numa_knobs[i]);
		if (access(path, W_OK)) {
			ksft_print_msg("no %s: NUMA balancing scans at its own pace\n", path);
			continue;
		}
		read_file(path, numa_saved[i], sizeof(numa_saved[i]));
		write_file(path, numa_fast[i]);
	}
	if (numa_two_nodes) {
		unsigned long node1 = 1UL << 1;
		cpu_set_t cpu0;

		/* A CPU of node 0 (run-qemu.sh puts the first half there), memory of node 1. */
		CPU_ZERO(&cpu0);
		CPU_SET(0, &cpu0);
		TEST_ASSERT(!sched_setaffinity(0, sizeof(cpu0), &cpu0), "sched_setaffinity: %s",
			    strerror(errno));
		TEST_ASSERT(!syscall(__NR_set_mempolicy, MPOL_PREFERRED, &node1,
				     8 * sizeof(node1)), "set_mempolicy: %s", strerror(errno));
	}
}

/* After the first cycle: new memory where it is wanted again, and balancing on. */
static void numa_balancing_on(void)
{
	if (numa_two_nodes)
		TEST_ASSERT(!syscall(__NR_set_mempolicy, MPOL_DEFAULT, NULL, 0),
			    "set_mempolicy: %s", strerror(errno));
	write_file(NUMA_BALANCING, "1");
}

/* The thread's CPU time is what brings its next scan closer: spin for @ms. */
static void spin_ms(u64 ms)
{
	struct timespec start;

	clock_gettime(CLOCK_MONOTONIC, &start);
	while (elapsed_ms(&start) < ms)
		;
}

/* -e: dirty logging splits the blocks eagerly, in the ioctl that turns it on. */
static bool eager;

/* What the guest writes each cycle: `g_count` pages `g_stride` apart from g_base. */
static u64 g_base, g_count, g_stride, g_offset;

static void guest_code(void)
{
	u64 i;

	for (;;) {
		for (i = 0; i < READ_ONCE(g_count); i++)
			*(volatile u64 *)(READ_ONCE(g_base) + i * READ_ONCE(g_stride) +
					  READ_ONCE(g_offset)) = i + 1;
		GUEST_SYNC(0);
	}
}

struct reuse_vm {
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpu;
	struct pool pool;
	enum vm_mem_backing_src_type src;
	u64 blocks, span, slot_pages;
	gpa_t gpa[2];
};

/*
 * The guest writes page `page` of each block through the mapping at `gva`; the host finds
 * each value in the memslot's memory.  A reused table that kept an old entry would send
 * a write elsewhere.
 */
static void guest_writes(struct reuse_vm *r, u64 gva, u64 page)
{
	struct userspace_mem_region *region;
	struct ucall uc;
	u64 i;

	g_base = gva;
	g_offset = page * r->vm->page_size;
	sync_global_to_guest(r->vm, g_base);
	sync_global_to_guest(r->vm, g_offset);
	vcpu_run(r->vcpu);
	TEST_ASSERT_KVM_EXIT_REASON(r->vcpu, KVM_EXIT_MMIO);
	if (get_ucall(r->vcpu, &uc) == UCALL_ABORT)
		REPORT_GUEST_ASSERT(uc);
	TEST_ASSERT_EQ(uc.cmd, UCALL_SYNC);
	region = memslot2region(r->vm, TEST_SLOT);
	for (i = 0; i < r->blocks; i++) {
		u64 *host = region->host_mem + i * r->span + g_offset;

		TEST_ASSERT(*host == i + 1,
			    "block %lu: the guest wrote %lu, the memslot holds %lu", i, i + 1, *host);
		*host = 0;
	}
}

static void slot_add(struct reuse_vm *r, gpa_t gpa)
{
	vm_userspace_mem_region_add(r->vm, r->src, gpa, TEST_SLOT, r->slot_pages, 0);
}

static void reuse_vm_create(struct reuse_vm *r, enum mode mode, u64 blocks)
{
	long before = newest_vm_id(NULL, 0);
	u64 i, psz;

	r->vm = vm_create_with_one_vcpu(&r->vcpu, guest_code);
	psz = r->vm->page_size;
	r->blocks = blocks;
	r->span = nptpool_table_span(3);
	if (eager)
		vm_enable_eager_split(r->vm, r->span);
	r->src = mode == DIRTY ? VM_MEM_SRC_ANONYMOUS_HUGETLB : VM_MEM_SRC_ANONYMOUS;
	r->slot_pages = blocks * r->span / psz;
	/* Room for two slot positions, for the moves; the second right above the first. */
	r->gpa[0] = top_gpa_aligned(r->vm, 2 * r->slot_pages, 1UL << 30);
	r->gpa[1] = r->gpa[0] + blocks * r->span;
	slot_add(r, r->gpa[0]);
	/* Pages 0 and 1 of each block, at either position. */
	for (i = 0; i < blocks; i++) {
		virt_pg_map(r->vm, TEST_GVA + i * r->span, r->gpa[0] + i * r->span);
		virt_pg_map(r->vm, TEST_GVA + i * r->span + psz, r->gpa[0] + i * r->span + psz);
		virt_pg_map(r->vm, TEST_GVA2 + i * r->span, r->gpa[1] + i * r->span);
	}
	g_count = blocks;
	g_stride = r->span;
	sync_global_to_guest(r->vm, g_count);
	sync_global_to_guest(r->vm, g_stride);
	TEST_ASSERT(newest_vm_id(r->pool.dir, sizeof(r->pool.dir)) > before,
		    "no nptpool debugfs directory for the new VM");
}

/* Wait up to `max_ms` for `pages` free pmd-region pages; how many ms it took. */
static u64 wait_free(struct reuse_vm *r, u64 pages, u64 max_ms)
{
	u64 ms;

	for (ms = 0; ms < max_ms; ms += 10) {
		read_pool(&r->pool);
		if (r->pool.free[PMD] >= pages)
			break;
		usleep(10 * 1000);
	}
	return ms;
}

/*
 * The pages ksmd has merged: with the zero page, or with a KSM page (identical pages
 * may meet in its unstable tree before use_zero_pages takes them; pages_shared counts
 * those KSM pages, pages_sharing the other pages mapping them).
 */
static u64 ksm_merged_pages(void)
{
	return read_u64(KSM_DIR "ksm_zero_pages") + read_u64(KSM_DIR "pages_shared") +
	       read_u64(KSM_DIR "pages_sharing");
}

/*
 * Wait up to KSM_WAIT_MS until ksmd has merged every page the guest wrote and KVM has
 * given every table back (KSM write-protects a page, which makes KVM unmap it, before
 * it replaces it: the two show one after the other).
 */
static bool ksm_merged(struct reuse_vm *r)
{
	int ms;

	for (ms = 0; ms < KSM_WAIT_MS; ms += 10) {
		read_pool(&r->pool);
		if (r->pool.free[PMD] >= r->blocks && ksm_merged_pages() >= r->blocks)
			return true;
		usleep(10 * 1000);
	}
	return false;
}

/*
 * Wait until the pages not given back fit the bound again: the tables the last cycle
 * unlinked come back after their grace period.  Gives up after 5 s.
 */
static void wait_in_use(struct reuse_vm *r)
{
	int ms;

	for (ms = 0; ms < 5000; ms += 10) {
		read_footprint(&r->pool);
		if (r->pool.in_use[PUD] <= r->pool.bound[PUD] &&
		    r->pool.in_use[PMD] <= r->pool.bound[PMD])
			return;
		usleep(10 * 1000);
	}
}

/* Whether @pages (per region) exceed @p's bound, and which. */
static bool check_bound(const struct pool *p, const u64 pages[NR_REGIONS], u64 cycle)
{
	int reg;

	for (reg = PUD; reg < NR_REGIONS; reg++) {
		if (pages[reg] <= p->bound[reg])
			continue;
		ksft_print_msg("cycle %lu: %s region: %lu pages over the bound of %lu for %lu bytes of memslots\n",
			       cycle + 1, region_names[reg], pages[reg], p->bound[reg], p->memory);
		return true;
	}
	return false;
}

/* Make KVM give up the slot's tables, as `mode` does; `cycle` counts from 0. */
static void give_up(struct reuse_vm *r, enum mode mode, u64 chunk, u64 cycle)
{
	struct userspace_mem_region *region = memslot2region(r->vm, TEST_SLOT);
	u64 size = r->blocks * r->span, off;
	bool merged;

	switch (mode) {
	case DONTNEED:
		for (off = 0; off < size; off += chunk)
			TEST_ASSERT(!madvise(region->host_mem + off, chunk, MADV_DONTNEED),
				    "MADV_DONTNEED: %s", strerror(errno));
		break;
	case SLOT:
		vm_mem_region_delete(r->vm, TEST_SLOT);
		slot_add(r, r->gpa[0]);
		break;
	case MOVE:
		vm_mem_region_move(r->vm, TEST_SLOT, r->gpa[(cycle + 1) % 2]);
		break;
	case NUMA:
		/* CPU time towards the next scan; what it unmaps the next writes map again. */
		spin_ms(200);
		break;
	case KSM:
		/*
		 * guest_writes() zeroed the pages: ksmd merges them with the zero page, which
		 * makes KVM unmap them and give the tables up.  Both must show.
		 */
		write_file(KSM_DIR "run", "1");
		merged = ksm_merged(r);
		write_file(KSM_DIR "run", "0");
		if (!merged) {
			ksft_print_msg("ksm: cycle %lu: %lu tables given back, %lu pages merged, after %d ms\n",
				       cycle + 1, r->pool.free[PMD], ksm_merged_pages(), KSM_WAIT_MS);
			ksm_short++;
		}
		break;
	case DIRTY:
		/* Off: a write to page 1 of each block maps the block again. */
		vm_mem_region_set_flags(r->vm, TEST_SLOT, 0);
		guest_writes(r, TEST_GVA, 1);
		/* Eager splitting takes its tables now: from those given back, once back. */
		if (eager)
			wait_free(r, r->blocks, 5000);
		vm_mem_region_set_flags(r->vm, TEST_SLOT, KVM_MEM_LOG_DIRTY_PAGES);
		break;
	}
}

static void test_reuse(enum mode mode, u64 blocks, u64 cycles, bool chunked, u64 seconds)
{
	struct timespec start;
	u64 first = 0, most = 0, freed_seen = 0, migrated = 0, held = 0, c, allowed;
	u64 expected[NR_REGIONS];
	bool halted = false, over_bound = false, bound_right = true, writes_took = false;
	struct reuse_vm r = {};

	NPTPOOL_REQUIRE();
	/* HugePages_Free is a count, of Hugepagesize KiB each. */
	if (mode == DIRTY && meminfo_kib("HugePages_Free") * meminfo_kib("Hugepagesize") <
			     blocks * (nptpool_table_span(3) >> 10))
		ksft_exit_skip("%lu free huge pages of %lu KiB, %lu blocks of %lu KiB needed (HUGEPAGES=)\n",
			       meminfo_kib("HugePages_Free"), meminfo_kib("Hugepagesize"), blocks,
			       nptpool_table_span(3) >> 10);
	if (mode == NUMA)
		numa_balancing_fast();
	if (mode == KSM)
		ksm_fast_on();
	ksft_set_plan(eager ? 6 : 5);
	reuse_vm_create(&r, mode, blocks);
	if (mode == KSM) {
		struct userspace_mem_region *region = memslot2region(r.vm, TEST_SLOT);

		TEST_ASSERT(!madvise(region->host_mem, r.blocks * r.span, MADV_MERGEABLE),
			    "MADV_MERGEABLE: %s", strerror(errno));
	}
	clock_gettime(CLOCK_MONOTONIC, &start);
	if (mode == DIRTY) {
		/* Mapped as blocks first, then logged: the cycles' writes split them. */
		guest_writes(&r, TEST_GVA, 0);
		vm_mem_region_set_flags(r.vm, TEST_SLOT, KVM_MEM_LOG_DIRTY_PAGES);
	}

	for (c = 0; mode == NUMA ? elapsed_ms(&start) < seconds * 1000 : c < cycles && !ksm_short;
	     c++) {
		/* Handed out and not given back: after an eager split the writes take none. */
		if (eager) {
			read_pool(&r.pool);
			held = r.pool.used[PMD] - r.pool.free[PMD];
		}
		guest_writes(&r, mode == MOVE && c % 2 ? TEST_GVA2 : TEST_GVA, 0);
		read_pool(&r.pool);
		if (eager && r.pool.used[PMD] - r.pool.free[PMD] > held) {
			if (!writes_took)
				ksft_print_msg("cycle %lu: the writes after the eager split took %lu pmd pages\n",
					       c + 1, r.pool.used[PMD] - r.pool.free[PMD] - held);
			writes_took = true;
		}
		read_footprint(&r.pool);
		memslots_bound(r.vm, start_level(&r.pool), NULL, 0, expected);
		if (r.pool.bound[PUD] != expected[PUD] || r.pool.bound[PMD] != expected[PMD]) {
			if (bound_right)
				ksft_print_msg("cycle %lu: debugfs bound pud %lu pmd %lu, from the memslots pud %lu pmd %lu\n",
					       c + 1, r.pool.bound[PUD], r.pool.bound[PMD],
					       expected[PUD], expected[PMD]);
			bound_right = false;
		}
		/*
		 * Before the grace period of the last cycle's tables: they add at most one
		 * cycle's tables to what the memslots need.
		 */
		if (mode == DIRTY && !over_bound && r.pool.in_use[PMD] > r.pool.bound[PMD] + blocks) {
			ksft_print_msg("cycle %lu: %lu pmd pages in use, over the bound %lu plus %lu in a grace period\n",
				       c + 1, r.pool.in_use[PMD], r.pool.bound[PMD], blocks);
			over_bound = true;
		}
		/*
		 * Without tables in a grace period (all but dirty logging give tables back
		 * at once), the pages ever handed out stay within what the memslots can
		 * need at once; with them, the pages not given back do once they are back.
		 */
		if (mode == DIRTY && c)
			wait_in_use(&r);
		if (!over_bound)
			over_bound = check_bound(&r.pool, mode == DIRTY ? r.pool.in_use : r.pool.used,
						 c);
		if (!c)
			first = r.pool.used[PMD];
		if (!c && mode == NUMA) {
			migrated = vmstat("numa_pages_migrated");
			numa_balancing_on();
		}
		if (r.pool.used[PMD] > most)
			most = r.pool.used[PMD];
		halted |= vm_halted(&r.pool);
		if (c == 0 || (mode != NUMA && c + 1 == cycles))
			ksft_print_msg("%s: cycle %lu: pmd region used %lu of %lu, %lu of them free\n",
				       mode_names[mode], c + 1, r.pool.used[PMD], r.pool.pages[PMD],
				       r.pool.free[PMD]);
		give_up(&r, mode, chunked ? r.span : r.blocks * r.span, c);
		/*
		 * Where the region has room for another cycle's tables, let the grace period
		 * end first: the next faults then need no fresh page.  Where it has none,
		 * they wait for the tables themselves.
		 */
		if (mode == DIRTY && first + blocks < r.pool.pages[PMD])
			wait_free(&r, blocks, 5000);
		if (mode != DIRTY) {
			/* Before the next cycle's writes take them again. */
			read_pool(&r.pool);
			if (r.pool.free[PMD] > freed_seen)
				freed_seen = r.pool.free[PMD];
		}
	}

	allowed = first;
	/* Eager: each cycle waited for the tables before logging on again. */
	if (mode != DIRTY || eager || first + blocks < r.pool.pages[PMD])
		ksft_test_result(most <= allowed,
				 "%s, %lu cycles of %lu blocks: pmd region used at most %lu, after the first cycle %lu (allowed %lu)\n",
				 mode_names[mode], c, blocks, most, first, allowed);
	else
		/* Too small to hold two cycles' tables: each cycle had to wait for reuse. */
		ksft_test_result(c == cycles && first + blocks >= r.pool.pages[PMD],
				 "%s: all %lu cycles ran with a pmd region of %lu pages, too small for two cycles' tables (%lu after the first)\n",
				 mode_names[mode], cycles, r.pool.pages[PMD], first);
	ksft_test_result(bound_right,
			 "%s: debugfs's bound is what the memslots need, every cycle (last: pud %lu, pmd %lu for %lu bytes)\n",
			 mode_names[mode], r.pool.bound[PUD], r.pool.bound[PMD], r.pool.memory);
	ksft_test_result(!over_bound,
			 "%s: pud and pmd pages %s stay within the memslots' bound (last: pud %lu of %lu, pmd %lu of %lu)\n",
			 mode_names[mode], mode == DIRTY ? "not given back" : "ever used",
			 mode == DIRTY ? r.pool.in_use[PUD] : r.pool.used[PUD], r.pool.bound[PUD],
			 mode == DIRTY ? r.pool.in_use[PMD] : r.pool.used[PMD], r.pool.bound[PMD]);
	ksft_test_result(!halted, "the VM never halts\n");
	if (eager)
		ksft_test_result(!writes_took,
				 "dirty, eager: the splits in the ioctls took every table, the guest's writes none\n");
	if (mode == DIRTY) {
		/*
		 * The last cycle's tables were unlinked: they come back after a grace period.
		 * With eager splitting, turning logging back on took them again: off for good.
		 */
		if (eager) {
			vm_mem_region_set_flags(r.vm, TEST_SLOT, 0);
			guest_writes(&r, TEST_GVA, 1);
		}
		c = wait_free(&r, blocks, 5000);
		ksft_test_result(r.pool.free[PMD] >= blocks,
				 "dirty: the tables that blocks replaced come back after their grace period (%lu free after %lu ms)\n",
				 r.pool.free[PMD], c);
	} else if (mode == NUMA) {
		ksft_print_msg("numa: %lu pages migrated between nodes meanwhile (%s)\n",
			       vmstat("numa_pages_migrated") - migrated,
			       numa_two_nodes ? "memory first touched on node 1, from node 0" :
			       "one node");
		/* A scan window may end inside the memslot: some of its tables, not all. */
		ksft_test_result(freed_seen > 0,
				 "numa: balancing's scans made KVM give tables back (debugfs showed up to %lu of %lu free)\n",
				 freed_seen, blocks);
	} else if (mode == KSM) {
		ksft_print_msg("ksm: %lu full scans; merged now: %lu with the zero page, %lu with %lu KSM pages\n",
			       read_u64(KSM_DIR "full_scans"), read_u64(KSM_DIR "ksm_zero_pages"),
			       read_u64(KSM_DIR "pages_sharing") + read_u64(KSM_DIR "pages_shared"),
			       read_u64(KSM_DIR "pages_shared"));
		ksft_test_result(!ksm_short && c == cycles,
				 "ksm: in each of %lu cycles ksmd merged the %lu zeroed pages and KVM gave every table back\n",
				 c, blocks);
	} else {
		ksft_test_result(freed_seen >= blocks,
				 "%s gives the %lu tables back (debugfs shows %lu free)\n",
				 mode_names[mode], blocks, freed_seen);
	}
	kvm_vm_free(r.vm);
}

static void usage(const char *name)
{
	printf("usage: %s [-h] [-m dontneed|slot|move|dirty|numa|ksm] [-c] [-e] [-b blocks] [-n cycles] [-t seconds]\n",
	       name);
	printf(" -m: how KVM is made to give its tables up each cycle (default dontneed)\n");
	printf(" -c: dontneed in chunks of one block (default: the whole memslot at once)\n");
	printf(" -e: dirty with eager splitting, one block per chunk\n");
	printf(" -b: memslot blocks, one last-level table each (default 32)\n");
	printf(" -n: cycles (default 1000; 100 for slot and move, 20 for dirty and ksm)\n");
	printf(" -t: numa: seconds of cycles (default 60)\n");
}

int main(int argc, char *argv[])
{
	u64 blocks = 32, cycles = 0, seconds = 60;
	enum mode mode = DONTNEED;
	bool chunked = false;
	int opt, m;

	while ((opt = getopt(argc, argv, "hm:ceb:n:t:")) != -1) {
		switch (opt) {
		case 'm':
			for (m = 0; m < (int)ARRAY_SIZE(mode_names); m++)
				if (!strcmp(optarg, mode_names[m]))
					break;
			if (m == (int)ARRAY_SIZE(mode_names)) {
				usage(argv[0]);
				exit(KSFT_FAIL);
			}
			mode = m;
			break;
		case 'c':
			chunked = true;
			break;
		case 'e':
			eager = true;
			break;
		case 'b':
			blocks = atoi_positive("Blocks", optarg);
			break;
		case 'n':
			cycles = atoi_positive("Cycles", optarg);
			break;
		case 't':
			seconds = atoi_positive("Seconds", optarg);
			break;
		case 'h':
			usage(argv[0]);
			exit(KSFT_PASS);
		default:
			usage(argv[0]);
			exit(KSFT_FAIL);
		}
	}
	if (!cycles)
		cycles = mode == DONTNEED ? 1000 : mode == DIRTY || mode == KSM ? 20 : 100;
	if (eager && mode != DIRTY) {
		usage(argv[0]);
		exit(KSFT_FAIL);
	}

	ksft_print_header();
	test_reuse(mode, blocks, cycles, chunked, seconds);
	ksft_finished();
}
