// SPDX-License-Identifier: GPL-2.0
/*
 * pool_frag_test: -c VMs created and destroyed one after another, each running a guest,
 * each get their pool, and leave the host at least 90% of the free 4 MiB (order-10)
 * blocks it had before: a pool is one such block of unmovable memory, and a pool returned
 * must leave a block that the next VM, or anyone else, can have again.
 *
 * With -H, a fragmented host (README: Fragmented hosts): a VM whose fitted pool is larger
 * than the buddy allocator's largest block (alloc_contig_pages()) gets it with the host's
 * memory filled with anonymous pages, which can be migrated; with a page pinned in every
 * 2 MiB of RAM that the test's memory or the root's files occupy (checked to leave no
 * pool-sized range free of pinned and kernel pages), and most of the memory free, its
 * first KVM_RUN fails with ENOMEM and a line naming the fragmentation, while a small VM
 * still runs; once the pins go, the same VM's next KVM_RUN gets its pool and runs.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <ftw.h>
#include <linux/kernel-page-flags.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nptpool_kvm.h"

/* Free blocks of `order` in every zone (/proc/buddyinfo). */
static u64 free_blocks(unsigned int order)
{
	char line[512], *tok, *save;
	FILE *f = fopen("/proc/buddyinfo", "r");
	u64 total = 0;
	unsigned int col;

	TEST_ASSERT(f, "open /proc/buddyinfo: %s", strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		/* Node 0, zone      DMA      3      2 ... */
		tok = strtok_r(line, " \n", &save);
		for (col = 0; tok; tok = strtok_r(NULL, " \n", &save), col++)
			if (col == 4 + order)
				total += strtoull(tok, NULL, 10);
	}
	fclose(f);
	return total;
}

/*
 * VMs created and destroyed one after another must leave the host the free memory it
 * had, in the shape it had it: a pool is one order-10 block of unmovable memory, and a
 * pool returned must leave a block that the next VM, or anyone else, can have again.
 */
static void test_frag(int nvms)
{
	u64 before, after, *done;
	int status, i;
	pid_t pid;

	ksft_set_plan(2);
	done = mmap(NULL, sizeof(*done), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	TEST_ASSERT(done != MAP_FAILED, "mmap");
	settle();
	before = free_blocks(10);
	fflush(stdout);
	pid = fork();
	TEST_ASSERT(pid >= 0, "fork");
	if (!pid) {
		for (i = 0; i < nvms; i++) {
			TEST_ASSERT(small_vm_runs(), "VM %d did not run its guest", i);
			(*done)++;
		}
		exit(KSFT_PASS);
	}
	TEST_ASSERT(waitpid(pid, &status, 0) == pid, "waitpid");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != KSFT_PASS)
		ksft_print_msg("the process creating the VMs %s %d\n",
			       WIFSIGNALED(status) ? "was killed by signal" : "exited with",
			       WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	settle();
	after = free_blocks(10);
	ksft_print_msg("free 4 MiB (order-10) blocks: %lu before %lu VMs, %lu after %lu\n", before,
		       (u64)nvms, after, *done);
	ksft_test_result(WIFEXITED(status) && WEXITSTATUS(status) == KSFT_PASS && *done == nvms,
			 "%d VMs one after another each got their pool (%lu did)\n", nvms, *done);
	ksft_test_result(after * 10 >= before * 9,
			 "the host keeps at least 90%% of its free 4 MiB blocks (%lu of %lu)\n",
			 after, before);
}

#define NR_HUGEPAGES	"/proc/sys/vm/nr_hugepages"
#define PIN_SPAN	(2UL << 20)	/* one pinned page per 2 MiB of RAM */
#define MAX_PIPES	256
/* PG_reserved in /proc/kpageflags: a kernel-internal bit, not in the uapi header */
#define KPF_RESERVED	32

/*
 * The pins: pipes holding a reference on one page in each 2 MiB span of RAM that has
 * one of the test's pages, which keeps it where it is (migration needs a page to have no
 * references but the ones it moves), after its mapping goes too.
 */
static struct pins {
	int pipes[MAX_PIPES][2];
	int npipes, slots;
	u64 pinned;
	/* RAM's frames; per span, whether it has a pin, and kernel pages */
	u64 lo, hi, spans;
	unsigned char *pin, *kernel;
} pins;

static char saved_hugepages[32];

/* Exit and error paths too: without the pins, the huge pages can be had again. */
static void unpin(void)
{
	int i;

	for (i = 0; i < pins.npipes; i++) {
		close(pins.pipes[i][0]);
		close(pins.pipes[i][1]);
	}
	pins.npipes = 0;
	pins.slots = 0;
}

static void restore_host(void)
{
	char now[32];

	unpin();
	if (!saved_hugepages[0])
		return;
	write_file_ok(NR_HUGEPAGES, saved_hugepages);
	read_file(NR_HUGEPAGES, now, sizeof(now));
	if (strcmp(now, saved_hugepages))
		ksft_print_msg("vm.nr_hugepages is %s, was %s\n", now, saved_hugepages);
	saved_hugepages[0] = 0;
}

/* The VM of the test: a sparse memslot of `gib` GiB, 16 pages touched. */
#define BIG_VM_PAGES(gib)	(((u64)(gib) << 30) / getpagesize())
#define BIG_VM_TOUCHES		16
#define BIG_VM_STRIDE		32

static void big_vm(struct vm_under_test *t, u64 gib)
{
	vm_setup(t, BIG_VM_PAGES(gib), BIG_VM_TOUCHES, BIG_VM_STRIDE);
}

struct fill {
	char *p;
	size_t mapped, len;
};

/*
 * Anonymous memory, no THP (a pinned 4 KiB page must not hold 2 MiB), touched until the
 * host has about `keep_mib` MiB available.
 */
static void fill_host(struct fill *f, u64 keep_mib)
{
	const size_t chunk = 16UL << 20;

	f->mapped = meminfo_kib("MemTotal") << 10;
	f->p = mmap(NULL, f->mapped, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	TEST_ASSERT(f->p != MAP_FAILED, "mmap %zu bytes: %s", f->mapped, strerror(errno));
	TEST_ASSERT(!madvise(f->p, f->mapped, MADV_NOHUGEPAGE), "MADV_NOHUGEPAGE: %s",
		    strerror(errno));
	for (f->len = 0; f->len + chunk <= f->mapped &&
	     meminfo_kib("MemAvailable") > (keep_mib + 16) << 10; f->len += chunk)
		memset(f->p + f->len, 0x5a, chunk);
}

/* The physical frames of `n` pages from `p` (0 where none is present) into `pfn`. */
static void frames_of(const char *p, size_t n, u64 *pfn)
{
	int fd = open("/proc/self/pagemap", O_RDONLY);
	size_t i;

	TEST_ASSERT(fd >= 0, "open /proc/self/pagemap: %s", strerror(errno));
	TEST_ASSERT(pread(fd, pfn, n * sizeof(*pfn), (u64)(uintptr_t)p / getpagesize() * 8) ==
		    (ssize_t)(n * sizeof(*pfn)), "read pagemap: %s", strerror(errno));
	close(fd);
	for (i = 0; i < n; i++)
		pfn[i] = pfn[i] >> 63 ? pfn[i] & ((1ULL << 55) - 1) : 0;
}

/* System RAM's lowest and one past its highest frame (/proc/iomem, as root). */
static void ram_frames(u64 *lo, u64 *hi)
{
	unsigned long long start, end;
	char line[256];
	FILE *f = fopen("/proc/iomem", "r");

	TEST_ASSERT(f, "open /proc/iomem: %s", strerror(errno));
	*lo = ~0ULL;
	*hi = 0;
	while (fgets(line, sizeof(line), f)) {
		if (line[0] == ' ' || !strstr(line, ": System RAM") ||
		    sscanf(line, "%llx-%llx", &start, &end) != 2)
			continue;
		start /= getpagesize();
		end = (end + 1) / getpagesize();
		*lo = start < *lo ? start : *lo;
		*hi = end > *hi ? end : *hi;
	}
	fclose(f);
	TEST_ASSERT(*hi > *lo + 1, "no System RAM in /proc/iomem (root?)");
}

static u64 span_of(u64 pfn)
{
	return (pfn - pins.lo) / (PIN_SPAN / getpagesize());
}

/* Pins a page of [p, p + len) in each span of RAM that has one and no pin yet. */
static void pin_spread(const char *p, size_t len)
{
	size_t n = len / getpagesize(), i;
	u64 *pfn = calloc(n ? n : 1, sizeof(*pfn)), now;
	struct iovec iov;
	int *fds = pins.npipes ? pins.pipes[pins.npipes - 1] : NULL;

	TEST_ASSERT(pfn, "calloc");
	frames_of(p, n, pfn);
	for (i = 0; i < n; i++) {
		if (!pfn[i] || pfn[i] < pins.lo || pfn[i] >= pins.hi || pins.pin[span_of(pfn[i])])
			continue;
		if (!pins.slots) {
			TEST_ASSERT(pins.npipes < MAX_PIPES, "more than %d pipes", MAX_PIPES);
			fds = pins.pipes[pins.npipes++];
			TEST_ASSERT(!pipe(fds), "pipe: %s", strerror(errno));
			pins.slots = fcntl(fds[1], F_SETPIPE_SZ, 256 * getpagesize());
			TEST_ASSERT(pins.slots > 0, "F_SETPIPE_SZ: %s", strerror(errno));
			pins.slots /= getpagesize();
		}
		iov.iov_base = (char *)p + i * getpagesize();
		iov.iov_len = getpagesize();
		TEST_ASSERT(vmsplice(fds[1], &iov, 1, SPLICE_F_NONBLOCK) == (ssize_t)getpagesize(),
			    "vmsplice: %s", strerror(errno));
		pins.slots--;
		pins.pinned++;
		/* Where the page is now that it is pinned: it may have moved since. */
		frames_of(iov.iov_base, 1, &now);
		if (now >= pins.lo && now < pins.hi)
			pins.pin[span_of(now)] = 1;
	}
	free(pfn);
}

static int pin_file(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	size_t len = (st->st_size + getpagesize() - 1) / getpagesize() * getpagesize();
	void *p;
	int fd;

	if (type != FTW_F || !S_ISREG(st->st_mode) || !len)
		return 0;
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	p = mmap(NULL, len, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
	if (p != MAP_FAILED) {
		pin_spread(p, len);
		munmap(p, len);
	}
	close(fd);
	return 0;
}

/*
 * The spans that hold a page the kernel keeps and never moves (/proc/kpageflags: slab,
 * page tables, reserved), as of now.
 */
static void mark_kernel_spans(void)
{
	const u64 unmovable = 1ULL << KPF_SLAB | 1ULL << KPF_PGTABLE | 1ULL << KPF_RESERVED;
	int fd = open("/proc/kpageflags", O_RDONLY);
	u64 flags[512], pfn, i;
	ssize_t got;

	TEST_ASSERT(fd >= 0, "open /proc/kpageflags: %s", strerror(errno));
	for (pfn = pins.lo; pfn < pins.hi; pfn += got / sizeof(*flags)) {
		got = pread(fd, flags, sizeof(flags), pfn * sizeof(*flags));
		TEST_ASSERT(got > 0 && !(got % sizeof(*flags)), "read kpageflags: %s",
			    strerror(errno));
		for (i = 0; i < got / sizeof(*flags) && pfn + i < pins.hi; i++)
			if (flags[i] & unmovable)
				pins.kernel[span_of(pfn + i)] = 1;
	}
	close(fd);
}

/*
 * The longest range of RAM, in pages, that may hold neither a pin nor a page the kernel
 * keeps: k spans without either between two that have one leave up to k + 2 spans, less
 * a page, between those pages.  Where the longest such run of spans starts, in *at.
 */
static u64 longest_gap(u64 *at)
{
	const u64 span = PIN_SPAN / getpagesize();
	u64 b, run = 0, longest = 0;

	for (b = 0; b < pins.spans; b++) {
		run = pins.pin[b] || pins.kernel[b] ? 0 : run + 1;
		if ((run + 2) * span - 1 > longest) {
			longest = (run + 2) * span - 1;
			*at = pins.lo + (b + 1 - run) * span;
		}
	}
	return longest;
}

static void test_fragmented_host(u64 gib)
{
	u64 reserved, migrated, free_kib, pool_kib, gap, gap_at = 0;
	struct vm_under_test t;
	struct fill a, b;
	struct counters base;
	char line[512], needle[128];
	int err, kmsg;

	if (getpagesize() != 4096)
		ksft_exit_skip("written for 4 KiB host pages (2 MiB pin spacing, 4 MiB buddy blocks)\n");
	ram_frames(&pins.lo, &pins.hi);
	pins.spans = (pins.hi - pins.lo + PIN_SPAN / getpagesize() - 1) / (PIN_SPAN / getpagesize());
	pins.pin = calloc(pins.spans, 1);
	pins.kernel = calloc(pins.spans, 1);
	TEST_ASSERT(pins.pin && pins.kernel, "calloc");
	/* Free huge pages would be dissolved to make room: take them out of the picture. */
	read_file(NR_HUGEPAGES, saved_hugepages, sizeof(saved_hugepages));
	atexit(restore_host);
	write_file(NR_HUGEPAGES, "0");
	settle();
	counters_read(&base);

	reserved = fitted_pool_pages(BIG_VM_PAGES(gib), BIG_VM_TOUCHES, BIG_VM_STRIDE);
	if (reserved <= 1024)
		ksft_exit_fail_msg("a %lu GiB memslot got a pool of %lu pages, which the buddy allocator serves\n",
				   gib, reserved);
	pool_kib = reserved * getpagesize() >> 10;
	ksft_print_msg("a VM with a %lu GiB memslot gets a fitted pool of %lu pages (%lu KiB) from alloc_contig_pages()\n",
		       gib, reserved, pool_kib);
	ksft_set_plan(7);

	/* A host whose memory is anonymous pages: they move out of the pool's way. */
	fill_host(&a, 2 * pool_kib / 1024 + 64);
	migrated = vmstat("pgmigrate_success");
	big_vm(&t, gib);
	err = vm_run(&t);
	kvm_vm_free(t.vm);
	migrated = vmstat("pgmigrate_success") - migrated;
	ksft_print_msg("%zu MiB of anonymous memory, %lu MiB available: first KVM_RUN %s, %lu pages migrated (host-wide count)\n",
		       a.len >> 20, meminfo_kib("MemAvailable") >> 10, err ? strerror(err) : "ran",
		       migrated);
	ksft_test_result(!err && migrated,
			 "with the host's memory in anonymous pages, the VM gets its %lu KiB pool, by migrating %lu of them, and runs\n",
			 pool_kib, migrated);

	/* A page pinned in every 2 MiB, and the rest freed. */
	fill_host(&b, 48);
	pin_spread(a.p, a.len);
	pin_spread(b.p, b.len);
	/* The root is a tmpfs (the initramfs): its pages could move out of the way too. */
	TEST_ASSERT(!nftw("/", pin_file, 16, FTW_PHYS | FTW_MOUNT), "walk /: %s", strerror(errno));
	munmap(a.p, a.mapped);
	munmap(b.p, b.mapped);
	settle();
	mark_kernel_spans();
	free_kib = meminfo_kib("MemFree");
	gap = longest_gap(&gap_at);
	ksft_print_msg("%lu pages pinned in %d pipes, one per 2 MiB of RAM; %lu MiB free; at most %lu KiB of RAM with neither a pin nor a page the kernel keeps (the most from 0x%lx)\n",
		       pins.pinned, pins.npipes, free_kib >> 10, gap * getpagesize() >> 10,
		       gap_at * getpagesize());
	ksft_test_result(gap < reserved,
			 "the host is fragmented: no range of RAM as long as the pool is free of pinned and kernel pages\n");

	kmsg = kmsg_open();
	big_vm(&t, gib);
	err = vm_run(&t);
	read_footprint(&t.pool);
	ksft_print_msg("first KVM_RUN: %s; sizing %s\n", err ? strerror(err) : "ran",
		       t.pool.sizing);
	ksft_test_result(err == ENOMEM && !strcmp(t.pool.sizing, "root-until-first-run"),
			 "with %lu MiB free and pages pinned 2 MiB apart, the first KVM_RUN fails with ENOMEM and the VM keeps its root-only pool\n",
			 free_kib >> 10);
	snprintf(needle, sizeof(needle),
		 "stage-2 table pool for the VM of pid %d, its first KVM_RUN fails with ENOMEM",
		 getpid());
	line[0] = 0;
	if (kmsg_find(kmsg, needle, line, sizeof(line)))
		ksft_print_msg("dmesg: %s\n", line);
	ksft_test_result(strstr(line, " KiB free, but no physically contiguous range") &&
			 strstr(line, "fragmented by unmovable pages"),
			 "nptpool's line names the pid, the free memory and the fragmentation\n");
	ksft_test_result(small_vm_runs(),
			 "a VM whose pool the buddy allocator serves still runs\n");

	unpin();
	settle();
	/* A guest that ran has nothing left to run. */
	if (err == ENOMEM) {
		err = vm_run(&t);
		read_footprint(&t.pool);
		ksft_test_result(!err && !strcmp(t.pool.sizing, "fitted"),
				 "once the pins are gone, the same VM's next KVM_RUN gets its pool and runs (%s, sizing %s)\n",
				 err ? strerror(err) : "ran", t.pool.sizing);
	} else {
		ksft_test_result_fail("once the pins are gone, the same VM's next KVM_RUN gets its pool and runs: its first did not fail\n");
	}
	kvm_vm_free(t.vm);
	close(kmsg);
	restore_host();
	ksft_test_result(counters_back(&base, 5), "no pool is left behind\n");
}

static void usage(const char *name)
{
	printf("usage: %s [-h] [-c vms | -H gib]\n", name);
	printf(" -c: VMs to create and destroy (default 200)\n");
	printf(" -H: a fragmented host, with a VM of a memslot of this many GiB (e.g. 64)\n");
}

int main(int argc, char *argv[])
{
	int nvms = 200, opt;
	u64 gib = 0;

	while ((opt = getopt(argc, argv, "hc:H:")) != -1) {
		switch (opt) {
		case 'c':
			nvms = atoi_positive("Number of VMs", optarg);
			break;
		case 'H':
			gib = atoi_positive("Memslot GiB", optarg);
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
	if (gib)
		test_fragmented_host(gib);
	else
		test_frag(nvms);
	ksft_finished();
}
