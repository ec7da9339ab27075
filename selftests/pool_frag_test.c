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
 * 2 MiB of RAM that the test's memory or the root's files occupy, and most of the memory
 * free, its first KVM_RUN fails with ENOMEM and a line
 * naming the fragmentation, while a small VM still runs; once the pins go, the same VM's
 * next KVM_RUN gets its pool and runs.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <ftw.h>
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

static char saved_hugepages[32];

static void restore_hugepages(void)
{
	if (saved_hugepages[0])
		write_file_ok(NR_HUGEPAGES, saved_hugepages);
}

/* The VM of the test: a sparse memslot of `gib` GiB, 16 pages touched. */
static void big_vm(struct vm_under_test *t, u64 gib)
{
	vm_setup(t, (gib << 30) / getpagesize(), 16, 32);
}

/*
 * Anonymous memory, no THP (a pinned 4 KiB page must not hold 2 MiB), touched until the
 * host has `keep_mib` MiB available; its size in *len.
 */
static char *fill_host(u64 keep_mib, size_t *len)
{
	const size_t chunk = 16UL << 20;
	size_t max = meminfo_kib("MemTotal") << 10, off;
	char *p = mmap(NULL, max, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	TEST_ASSERT(p != MAP_FAILED, "mmap %zu bytes: %s", max, strerror(errno));
	TEST_ASSERT(!madvise(p, max, MADV_NOHUGEPAGE), "MADV_NOHUGEPAGE: %s", strerror(errno));
	for (off = 0; off + chunk <= max && meminfo_kib("MemAvailable") > (keep_mib + 16) << 10;
	     off += chunk)
		memset(p + off, 0x5a, chunk);
	*len = off;
	return p;
}

/* The physical frame of each page of [p, p + len), 0 where none is present. */
static u64 *frames_of(const char *p, size_t len)
{
	size_t n = len / getpagesize(), i;
	u64 *pfn = calloc(n ? n : 1, sizeof(*pfn));
	int fd = open("/proc/self/pagemap", O_RDONLY);

	TEST_ASSERT(pfn && fd >= 0, "open /proc/self/pagemap: %s", strerror(errno));
	TEST_ASSERT(pread(fd, pfn, n * sizeof(*pfn), (u64)(uintptr_t)p / getpagesize() * 8) ==
		    (ssize_t)(n * sizeof(*pfn)), "read pagemap: %s", strerror(errno));
	close(fd);
	for (i = 0; i < n; i++)
		pfn[i] = pfn[i] >> 63 ? pfn[i] & ((1ULL << 55) - 1) : 0;
	return pfn;
}

/*
 * System RAM's lowest and one past its highest frame (/proc/iomem, as root); with
 * `mark`, each `span` of it that the kernel keeps for itself (the ranges listed inside
 * System RAM: its code, data and memblock reservations, never movable) set in `mark`.
 */
static void ram_frames(u64 *lo, u64 *hi, unsigned char *mark, u64 span)
{
	unsigned long long start, end;
	char line[256];
	FILE *f = fopen("/proc/iomem", "r");
	u64 b;

	TEST_ASSERT(f, "open /proc/iomem: %s", strerror(errno));
	if (!mark) {
		*lo = ~0ULL;
		*hi = 0;
	}
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, " %llx-%llx", &start, &end) != 2)
			continue;
		start /= getpagesize();
		end = (end + 1) / getpagesize();
		if (!mark && line[0] != ' ' && strstr(line, ": System RAM")) {
			*lo = start < *lo ? start : *lo;
			*hi = end > *hi ? end : *hi;
		} else if (mark && !strncmp(line, "  ", 2) && line[2] != ' ' &&
			   start >= *lo && end <= *hi) {
			for (b = (start - *lo) / span; b < (end - *lo + span - 1) / span; b++)
				mark[b] = 1;
		}
	}
	fclose(f);
	TEST_ASSERT(*hi > *lo + 1, "no System RAM in /proc/iomem (root?)");
}

struct pins {
	int pipes[MAX_PIPES][2];
	int npipes, slots;
	u64 pinned;
	/* RAM's frames, and whether each 2 MiB of it has a pin or kernel memory. */
	u64 lo, hi;
	unsigned char *seen;
};

/*
 * Pins one page of [p, p + len) in every 2 MiB of RAM that has one, by splicing it into a
 * pipe: the pipe's reference keeps the page where it is (migration needs the page to
 * have no references but the ones it moves), after its mapping goes too.
 */
static void pin_spread(struct pins *pins, const char *p, size_t len)
{
	const u64 span = PIN_SPAN / getpagesize();
	size_t n = len / getpagesize(), i;
	u64 *pfn = frames_of(p, len);
	struct iovec iov;
	int *fds = pins->npipes ? pins->pipes[pins->npipes - 1] : NULL;

	if (!pins->seen) {
		ram_frames(&pins->lo, &pins->hi, NULL, span);
		pins->seen = calloc((pins->hi - pins->lo + span - 1) / span, 1);
		TEST_ASSERT(pins->seen, "calloc");
		ram_frames(&pins->lo, &pins->hi, pins->seen, span);
	}
	for (i = 0; i < n; i++) {
		if (!pfn[i] || pfn[i] < pins->lo || pfn[i] >= pins->hi ||
		    pins->seen[(pfn[i] - pins->lo) / span])
			continue;
		if (!pins->slots) {
			TEST_ASSERT(pins->npipes < MAX_PIPES, "more than %d pipes", MAX_PIPES);
			fds = pins->pipes[pins->npipes++];
			TEST_ASSERT(!pipe(fds), "pipe: %s", strerror(errno));
			pins->slots = fcntl(fds[1], F_SETPIPE_SZ, 256 * getpagesize());
			TEST_ASSERT(pins->slots > 0, "F_SETPIPE_SZ: %s", strerror(errno));
			pins->slots /= getpagesize();
		}
		iov.iov_base = (char *)p + i * getpagesize();
		iov.iov_len = getpagesize();
		TEST_ASSERT(vmsplice(fds[1], &iov, 1, SPLICE_F_NONBLOCK) == (ssize_t)getpagesize(),
			    "vmsplice: %s", strerror(errno));
		pins->slots--;
		pins->pinned++;
		pins->seen[(pfn[i] - pins->lo) / span] = 1;
	}
	free(pfn);
}

/*
 * The longest range of RAM, in pages, that may hold neither a pin nor kernel memory: k
 * 2 MiB spans without either between two that have one leave up to k + 2 spans, less a
 * page, between them.
 */
static u64 longest_gap(const struct pins *pins, u64 *at)
{
	const u64 span = PIN_SPAN / getpagesize();
	u64 b, run = 0, longest = 0;

	for (b = 0; b < (pins->hi - pins->lo + span - 1) / span; b++) {
		run = pins->seen[b] ? 0 : run + 1;
		if ((run + 2) * span - 1 > longest) {
			longest = (run + 2) * span - 1;
			*at = pins->lo + (b + 1 - run) * span;
		}
	}
	return longest;
}

static struct pins *walk_pins;

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
		pin_spread(walk_pins, p, len);
		munmap(p, len);
	}
	close(fd);
	return 0;
}

/*
 * The test host's root is a tmpfs (the initramfs): its pages can be migrated too, and
 * they sit together, where a pool could fit once they moved.  Pin them as well.
 */
static void pin_root_files(struct pins *pins)
{
	walk_pins = pins;
	TEST_ASSERT(!nftw("/", pin_file, 16, FTW_PHYS | FTW_MOUNT), "walk /: %s", strerror(errno));
}

static void unpin(struct pins *pins)
{
	int i;

	for (i = 0; i < pins->npipes; i++) {
		close(pins->pipes[i][0]);
		close(pins->pipes[i][1]);
	}
	pins->npipes = 0;
	pins->slots = 0;
	free(pins->seen);
	pins->seen = NULL;
}

static void test_fragmented_host(u64 gib)
{
	u64 reserved, migrated, free_kib, pool_kib, gap, gap_at = 0;
	struct vm_under_test probe, t;
	struct pins pins = { 0 };
	struct counters base;
	char line[512], needle[128];
	size_t len_a, len_b;
	char *a, *b;
	int err, kmsg;

	if (getpagesize() != 4096)
		ksft_exit_skip("written for 4 KiB host pages (2 MiB pin spacing, 4 MiB buddy blocks)\n");
	/* Free huge pages would be dissolved to make room: take them out of the picture. */
	read_file(NR_HUGEPAGES, saved_hugepages, sizeof(saved_hugepages));
	atexit(restore_hugepages);
	write_file(NR_HUGEPAGES, "0");
	settle();
	counters_read(&base);

	big_vm(&probe, gib);
	TEST_ASSERT(!vm_run(&probe), "the probe VM runs");
	read_pool(&probe.pool);
	read_footprint(&probe.pool);
	reserved = probe.pool.reserved_pages;
	kvm_vm_free(probe.vm);
	if (strcmp(probe.pool.sizing, "fitted"))
		ksft_exit_fail_msg("nptpool does not fit pools (fit=1): the sizing is '%s'\n",
				   probe.pool.sizing);
	if (reserved <= 1024)
		ksft_exit_fail_msg("a %lu GiB memslot got a pool of %lu pages, which the buddy allocator serves\n",
				   gib, reserved);
	pool_kib = reserved * getpagesize() >> 10;
	ksft_print_msg("a VM with a %lu GiB memslot gets a fitted pool of %lu pages (%lu KiB) from alloc_contig_pages()\n",
		       gib, reserved, pool_kib);
	ksft_set_plan(7);

	/* A host whose memory is anonymous pages: they move out of the pool's way. */
	a = fill_host(2 * pool_kib / 1024 + 64, &len_a);
	migrated = vmstat("pgmigrate_success");
	big_vm(&t, gib);
	err = vm_run(&t);
	kvm_vm_free(t.vm);
	ksft_print_msg("%zu MiB of anonymous memory, %lu MiB available: first KVM_RUN %s, %lu pages migrated\n",
		       len_a >> 20, meminfo_kib("MemAvailable") >> 10, err ? strerror(err) : "ran",
		       vmstat("pgmigrate_success") - migrated);
	ksft_test_result(!err, "with the host's memory in anonymous pages, the VM gets its %lu KiB pool and runs\n",
			 pool_kib);

	/* A page pinned in every 2 MiB, and the rest freed. */
	/* Down to what reclaim keeps free: no pool-sized range of free memory is left. */
	b = fill_host(16, &len_b);
	pin_spread(&pins, a, len_a);
	pin_spread(&pins, b, len_b);
	pin_root_files(&pins);
	munmap(a, meminfo_kib("MemTotal") << 10);
	munmap(b, meminfo_kib("MemTotal") << 10);
	settle();
	free_kib = meminfo_kib("MemFree");
	gap = longest_gap(&pins, &gap_at);
	ksft_print_msg("%lu pages pinned in %d pipes, one per 2 MiB of RAM; %lu MiB free; at most %lu KiB of RAM with neither a pin nor the kernel's memory (the most before 0x%lx)\n",
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
			 "with %lu MiB free and a page pinned in every 2 MiB, the first KVM_RUN fails with ENOMEM and the VM keeps its root-only pool\n",
			 free_kib >> 10);
	snprintf(needle, sizeof(needle),
		 "stage-2 table pool for the VM of pid %d, its first KVM_RUN fails with ENOMEM",
		 getpid());
	line[0] = 0;
	if (kmsg_find(kmsg, needle, line, sizeof(line)))
		ksft_print_msg("dmesg: %s\n", line);
	ksft_test_result(strstr(line, "memory fragmented by unmovable pages"),
			 "nptpool's line names the pid, the free memory and the fragmentation\n");
	ksft_test_result(small_vm_runs(),
			 "a VM whose pool the buddy allocator serves still runs\n");

	unpin(&pins);
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
	restore_hugepages();
	ksft_test_result(counters_back(&base, 5), "no pool is left behind\n");
}

static void usage(const char *name)
{
	printf("usage: %s [-h] [-c vms | -H gib]\n", name);
	printf(" -c: VMs to create and destroy (default 200)\n");
	printf(" -H: a fragmented host, with a VM of a memslot of this many GiB (e.g. 32)\n");
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
