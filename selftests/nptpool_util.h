/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What nptpool's selftests share: reading the module's debugfs and /proc/meminfo, and a
 * VM whose guest touches pages of a memslot at the top of its IPA space.
 */
#ifndef NPTPOOL_UTIL_H
#define NPTPOOL_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#define DEBUGFS		"/sys/kernel/debug/nptpool"
#define TEST_SLOT	10
#define TEST_GVA	0xc0000000UL
#define SZ_2M_PAGES(psz)	((2UL << 20) / (psz))

enum region { PGD, PUD, PMD, NR_REGIONS };
static const char * const region_names[] = { "pgd", "pud", "pmd" };

struct pool {
	char dir[320];
	u64 start, end, reserved_pages;
	int memcg_charged;
	u64 rstart[NR_REGIONS], rend[NR_REGIONS], pages[NR_REGIONS], used[NR_REGIONS];
};

/* One guest: touch `count` pages, `stride` pages apart, then report. */
static inline void guest_touch(gva_t base, u64 count, u64 stride_bytes)
{
	u64 i;

	for (i = 0; i < count; i++)
		*(volatile u64 *)(base + i * stride_bytes) = i + 1;
	GUEST_DONE();
}

struct vm_under_test {
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpu;
	gpa_t gpa;
	u64 count, stride;
	struct pool pool;
};

static inline u64 read_u64(const char *path)
{
	FILE *f = fopen(path, "r");
	unsigned long long v = 0;

	TEST_ASSERT(f, "open %s: %s", path, strerror(errno));
	TEST_ASSERT(fscanf(f, "%llu", &v) == 1, "parse %s", path);
	fclose(f);
	return v;
}

/* A /proc/meminfo field, in kB. */
static inline u64 meminfo_kib(const char *field)
{
	unsigned long long kib = 0;
	char line[128], fmt[64];
	FILE *f = fopen("/proc/meminfo", "r");

	TEST_ASSERT(f, "open /proc/meminfo");
	snprintf(fmt, sizeof(fmt), "%s: %%llu kB", field);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, fmt, &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/*
 * The highest id among the VM directories of process `pid`, or -1; -1 also when nptpool
 * is not loaded, if `may_be_unloaded`.
 */
static inline long newest_vm_id_of(pid_t pid, char *dir, size_t len, bool may_be_unloaded)
{
	char prefix[32];
	struct dirent *e;
	long best = -1;
	DIR *d;

	snprintf(prefix, sizeof(prefix), "vm-%d-", pid);
	d = opendir(DEBUGFS);
	if (!d && may_be_unloaded)
		return -1;
	TEST_ASSERT(d, "open %s: %s (is nptpool loaded?)", DEBUGFS, strerror(errno));
	while ((e = readdir(d))) {
		long id;

		if (strncmp(e->d_name, prefix, strlen(prefix)))
			continue;
		id = strtol(e->d_name + strlen(prefix), NULL, 10);
		if (id > best) {
			best = id;
			if (dir)
				snprintf(dir, len, "%s/%s", DEBUGFS, e->d_name);
		}
	}
	closedir(d);
	return best;
}

/* The highest id among this process's VM directories, or -1. */
static inline long newest_vm_id(char *dir, size_t len)
{
	return newest_vm_id_of(getpid(), dir, len, false);
}

static inline void read_pool(struct pool *p)
{
	char path[352], name[8];
	unsigned long long s, e, n, u;
	char line[256];
	FILE *f;
	int r, seen = 0;

	snprintf(path, sizeof(path), "%s/regions", p->dir);
	f = fopen(path, "r");
	TEST_ASSERT(f, "open %s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "pool start=0x%llx end=0x%llx reserved_start=0x%*x reserved_pages=%llu memcg_charged=%d",
			   &s, &e, &n, &p->memcg_charged) == 4) {
			p->start = s;
			p->end = e;
			p->reserved_pages = n;
			continue;
		}
		if (sscanf(line, "%7s start=0x%llx end=0x%llx pages=%llu used=%llu",
			   name, &s, &e, &n, &u) != 5)
			continue;
		for (r = 0; r < NR_REGIONS; r++) {
			if (strcmp(name, region_names[r]))
				continue;
			p->rstart[r] = s;
			p->rend[r] = e;
			p->pages[r] = n;
			p->used[r] = u;
			seen++;
		}
	}
	fclose(f);
	TEST_ASSERT(seen == NR_REGIONS && p->end > p->start, "cannot parse %s", path);
}

/* Show one of a VM's debugfs files as TAP comments. */
static inline void dump_file(const struct pool *p, const char *file)
{
	char path[352], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", p->dir, file);
	f = fopen(path, "r");
	TEST_ASSERT(f, "open %s", path);
	while (fgets(line, sizeof(line), f))
		ksft_print_msg("  %s: %s", file, line);
	fclose(f);
}

static inline void dump_pool(const struct pool *p, const char *when)
{
	ksft_print_msg("%s: %s\n", p->dir, when);
	dump_file(p, "regions");
	dump_file(p, "halted");
}

static inline bool vm_halted(const struct pool *p)
{
	char path[352];

	snprintf(path, sizeof(path), "%s/halted", p->dir);
	return read_u64(path) == 1;
}

/*
 * Create a VM whose guest touches `count` pages `stride` pages apart in a memslot of
 * `slot_pages` at the top of the IPA space; find its pool in debugfs.  Touches far apart
 * need a guest page table each: `pt_pages` more of them than the library budgets.
 */
static inline void vm_setup_pt(struct vm_under_test *t, struct vm_shape shape, u64 slot_pages,
			       u64 count, u64 stride, u64 pt_pages)
{
	long before = newest_vm_id(NULL, 0);
	u64 psz, i;

	/* The library sizes memslot 0 for the page tables of its "extra" memory. */
	t->vm = __vm_create_shape_with_one_vcpu(shape, &t->vcpu, pt_pages * 512 / 2,
						guest_touch);
	psz = t->vm->page_size;
	t->count = count;
	t->stride = stride * psz;
	t->gpa = ((t->vm->max_gfn - slot_pages) * psz) & ~((1UL << 30) - 1);
	vm_userspace_mem_region_add(t->vm, VM_MEM_SRC_ANONYMOUS, t->gpa, TEST_SLOT,
				    slot_pages, 0);
	for (i = 0; i < count; i++)
		virt_pg_map(t->vm, TEST_GVA + i * t->stride, t->gpa + i * t->stride);
	vcpu_args_set(t->vcpu, 3, TEST_GVA, count, t->stride);

	TEST_ASSERT(newest_vm_id(t->pool.dir, sizeof(t->pool.dir)) > before,
		    "no nptpool debugfs directory for the new VM");
	read_pool(&t->pool);
}

static inline void vm_setup_shape(struct vm_under_test *t, struct vm_shape shape, u64 slot_pages,
				  u64 count, u64 stride)
{
	vm_setup_pt(t, shape, slot_pages, count, stride, 0);
}

static inline void vm_setup(struct vm_under_test *t, u64 slot_pages, u64 count, u64 stride)
{
	vm_setup_shape(t, VM_SHAPE_DEFAULT, slot_pages, count, stride);
}

/* The stage-2 start level nptpool saw for the VM. */
static inline int start_level(const struct pool *p)
{
	char path[352];
	int level = -9;
	FILE *f;

	snprintf(path, sizeof(path), "%s/regions", p->dir);
	f = fopen(path, "r");
	TEST_ASSERT(f, "open %s", path);
	TEST_ASSERT(fscanf(f, "start_level %d", &level) == 1, "parse %s", path);
	fclose(f);
	return level;
}

/* Run the guest; 0 when it finished, else KVM_RUN's errno. */
static inline int vm_run(struct vm_under_test *t)
{
	struct ucall uc;

	if (_vcpu_run(t->vcpu))
		return errno;
	TEST_ASSERT_KVM_EXIT_REASON(t->vcpu, KVM_EXIT_MMIO);
	if (get_ucall(t->vcpu, &uc) == UCALL_ABORT)
		REPORT_GUEST_ASSERT(uc);
	TEST_ASSERT_EQ(uc.cmd, UCALL_DONE);
	return 0;
}

static inline bool overlaps(const struct pool *a, const struct pool *b)
{
	return a->start < b->end && b->start < a->end;
}

/* Check every handed-out table of `p` against its region; count live ones per region. */
static inline bool tables_in_regions(struct pool *p, u64 live[NR_REGIONS])
{
	unsigned long long phys;
	char path[352], name[8];
	bool ok = true;
	int r, count;
	FILE *f;

	memset(live, 0, NR_REGIONS * sizeof(live[0]));
	snprintf(path, sizeof(path), "%s/tables", p->dir);
	f = fopen(path, "r");
	TEST_ASSERT(f, "open %s: %s", path, strerror(errno));
	while (fscanf(f, "0x%llx %7s %d\n", &phys, name, &count) == 3) {
		for (r = 0; r < NR_REGIONS; r++)
			if (!strcmp(name, region_names[r]))
				break;
		if (r == NR_REGIONS || phys < p->rstart[r] || phys >= p->rend[r] ||
		    phys % 4096) {
			ksft_print_msg("table 0x%llx (%s) outside its region\n", phys, name);
			ok = false;
			continue;
		}
		if (count > 1 || r == PGD)
			live[r]++;
	}
	fclose(f);
	return ok;
}

/* Let RCU-deferred table frees run and drop reclaimable caches before a reading. */
static inline void settle(void)
{
	FILE *f;

	sleep(1);
	f = fopen("/proc/sys/vm/drop_caches", "w");
	if (f) {
		fputs("3\n", f);
		fclose(f);
	}
}

#endif /* NPTPOOL_UTIL_H */
