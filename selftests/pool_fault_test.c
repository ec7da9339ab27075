// SPDX-License-Identifier: GPL-2.0
/*
 * pool_fault_test: nptpool under faults and bad input, each scenario with its expected
 * outcome asserted (errno, VM dead or alive, counters back where they began).  The
 * scripts around it (pool_fault.sh and friends) load nptpool with the parameters a
 * scenario needs and check the host for leaks afterwards (lib.sh).
 *
 *   -m inject    fault injection fails the pool's reservation: KVM_CREATE_VM fails with
 *                ENOMEM, nptpool logs the pid and the size; the next VM works
 *   -m failnth   each allocation of KVM_CREATE_VM failed in turn (fail-nth): the VM is
 *                created or KVM_CREATE_VM fails with ENOMEM, and nptpool's counters are
 *                exactly back; a failure that puts them off is shown with its stack
 *   -m split     blocks that dirty logging splits need tables of the pmd region: a VM
 *                that splits more blocks than the region holds halts on the write fault;
 *                -e: eager splitting (KVM_CAP_ARM_EAGER_SPLIT_CHUNK_SIZE), where the
 *                split, and the halt, happen in the ioctl that enables dirty logging
 *   -m kill      VMMs SIGKILLed while their vCPUs fault; -k close: the VMM closes every
 *                fd of the VM while its vCPUs fault, the last vCPU thread destroys it
 *   -m storm     VMs of several vCPUs each created and destroyed from several processes,
 *                for -t seconds
 *   -m frag      VMs created and destroyed one after another leave the host its free
 *                4 MiB blocks (a pool is one): at least 90% of them
 *   -m reload    VMs created while another process reloads nptpool: each gets a pool or
 *                stock KVM, and runs
 *   -m pressure  a VMM holds VMs until KVM_CREATE_VM fails, then faults in a guest with
 *                the host (or its memory cgroup) out of memory: creation fails with
 *                ENOMEM, the guest runs or its VMM is OOM-killed; never a halt
 *   -m ipa       a VM of every IPA size, and types KVM must refuse: the start level and
 *                root size nptpool sees are KVM's, and a guest's stores reach memory
 */
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

#include "nptpool_util.h"
#include "raw_vm.h"

#define FAIL_PAGE_ALLOC	"/sys/kernel/debug/fail_page_alloc"
#define FAILSLAB	"/sys/kernel/debug/failslab"
#define BLOCK_SIZE	(2UL << 20)
#define MAX_VCPUS	16

/* nptpool's global counters. */
struct counters {
	u64 vms, reserved, in_use;
};

static void read_counters(struct counters *c)
{
	c->vms = read_u64(DEBUGFS "/vms");
	c->reserved = read_u64(DEBUGFS "/pages_reserved");
	c->in_use = read_u64(DEBUGFS "/pages_in_use");
}

static bool counters_equal(const struct counters *a, const struct counters *b)
{
	return a->vms == b->vms && a->reserved == b->reserved && a->in_use == b->in_use;
}

/* Poll until the counters are back to `base`, for up to `seconds`; whether they are. */
static bool counters_back(const struct counters *base, int seconds)
{
	struct counters now;
	int i;

	for (i = 0; i <= seconds * 10; i++) {
		read_counters(&now);
		if (counters_equal(&now, base))
			return true;
		usleep(100000);
	}
	ksft_print_msg("counters: vms %lu pages_reserved %lu pages_in_use %lu, began at %lu %lu %lu\n",
		       now.vms, now.reserved, now.in_use, base->vms, base->reserved, base->in_use);
	return false;
}

static bool write_file_ok(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY);
	bool ok;

	if (fd < 0)
		return false;
	ok = write(fd, val, strlen(val)) == (ssize_t)strlen(val);
	close(fd);
	return ok;
}

static void write_file(const char *path, const char *val)
{
	TEST_ASSERT(write_file_ok(path, val), "write '%s' to %s: %s", val, path, strerror(errno));
}

static void read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	TEST_ASSERT(fd >= 0, "open %s: %s", path, strerror(errno));
	n = read(fd, buf, len - 1);
	TEST_ASSERT(n >= 0, "read %s: %s", path, strerror(errno));
	close(fd);
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
}

/* KVM_CREATE_VM of `type` on a fresh /dev/kvm fd: the VM fd, or -1 with errno set. */
static int create_vm_raw(unsigned long type)
{
	int kvm = open_kvm_dev_path_or_exit();
	int fd = ioctl(kvm, KVM_CREATE_VM, type);
	int err = errno;

	close(kvm);
	errno = err;
	return fd;
}

/* /dev/kmsg from now on: the kernel messages logged after this call. */
static int kmsg_open(void)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);

	TEST_ASSERT(fd >= 0, "open /dev/kmsg: %s", strerror(errno));
	lseek(fd, 0, SEEK_END);
	return fd;
}

/* Whether a message logged since kmsg_open() contains `needle`; it goes to `line`. */
static bool kmsg_find(int fd, const char *needle, char *line, size_t len)
{
	char rec[2048];
	ssize_t n;

	for (;;) {
		n = read(fd, rec, sizeof(rec) - 1);
		if (n < 0 && errno == EPIPE)	/* overwritten before we read it */
			continue;
		if (n <= 0)
			return false;
		rec[n] = 0;
		if (strstr(rec, needle)) {
			char *msg = strchr(rec, ';');

			msg = msg ? msg + 1 : rec;
			msg[strcspn(msg, "\n")] = 0;
			strncpy(line, msg, len - 1);
			line[len - 1] = 0;
			return true;
		}
	}
}

static u64 elapsed_ms(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

/* The pool nptpool logs for a VM whose KVM_CREATE_VM failed: its line, if any. */
static bool reserve_failure_logged(int kmsg, pid_t pid, char *line, size_t len)
{
	char needle[96];

	snprintf(needle, sizeof(needle), "stage-2 table pool for the VM of pid %d,", pid);
	return kmsg_find(kmsg, needle, line, len) && strstr(line, "cannot reserve a ") &&
	       strstr(line, "VM creation fails with ENOMEM");
}

/*
 * Fault-injection knobs (debugfs), set for a scenario and put back as they were at exit,
 * also when an assertion ends the test early.
 */
struct knob {
	char path[128];
	char saved[64];
};
static struct knob knobs[32];
static int nr_knobs;

static void restore_knobs(void)
{
	while (nr_knobs > 0) {
		nr_knobs--;
		write_file_ok(knobs[nr_knobs].path, knobs[nr_knobs].saved);
	}
	write_file_ok("/proc/thread-self/make-it-fail", "0");
	write_file_ok("/proc/thread-self/fail-nth", "0");
}

static void set_knob(const char *dir, const char *name, const char *val)
{
	struct knob *k;

	TEST_ASSERT(nr_knobs < (int)ARRAY_SIZE(knobs), "too many knobs");
	if (!nr_knobs)
		atexit(restore_knobs);
	k = &knobs[nr_knobs++];
	snprintf(k->path, sizeof(k->path), "%s/%s", dir, name);
	read_file(k->path, k->saved, sizeof(k->saved));
	write_file(k->path, val);
}

/* The order of the buddy allocation that serves `pages` pages. */
static unsigned int order_of(u64 pages)
{
	unsigned int order = 0;

	while ((1UL << order) < pages)
		order++;
	return order;
}

/* The pool nptpool gives a new VM of the default type, read from a VM made for it. */
static void pool_now(struct pool *p)
{
	int fd;

	fd = create_vm_raw(0);
	TEST_ASSERT(fd >= 0, "KVM_CREATE_VM: %s", strerror(errno));
	TEST_ASSERT(newest_vm_id(p->dir, sizeof(p->dir)) >= 0, "no pool for the VM");
	read_pool(p);
	close(fd);
}

static u64 pool_pages_now(void)
{
	struct pool p;

	pool_now(&p);
	return p.reserved_pages;
}

/* A VM created through the library that gets a pool and runs a guest touching pages. */
static bool next_vm_runs(void)
{
	struct vm_under_test t;
	int err;

	vm_setup(&t, 512, 16, 32);
	err = vm_run(&t);
	kvm_vm_free(t.vm);
	return !err;
}

static void test_inject(void)
{
	char line[512], times[16], kib[64];
	struct counters base, now;
	int fd, err, kmsg;
	u64 reserved, pool_kib;
	struct pool p;
	bool logged;

	if (access(FAIL_PAGE_ALLOC, F_OK))
		ksft_exit_skip("no %s: the kernel has no page allocation fault injection (CONFIG_FAIL_PAGE_ALLOC, CONFIG_FAULT_INJECTION_DEBUG_FS)\n",
			       FAIL_PAGE_ALLOC);
	read_counters(&base);

	/* A first VM shows the pool's size, and so the order of its allocation. */
	pool_now(&p);
	reserved = p.reserved_pages;
	/* The size the log names is the pool's (README: root + slack + pud + pmd), not the block's. */
	pool_kib = (2 * p.pages[PGD] - 1 + p.pages[PUD] + p.pages[PMD]) * 4;
	if (reserved > 1024)
		ksft_exit_skip("a pool of %lu pages comes from alloc_contig_pages(), which fail_page_alloc does not cover\n",
			       reserved);

	ksft_set_plan(5);
	ksft_print_msg("pool of %lu pages: the buddy allocation of order %u fails once, in this thread only\n",
		       reserved, order_of(reserved));
	snprintf(line, sizeof(line), "%u", order_of(reserved));
	set_knob(FAIL_PAGE_ALLOC, "task-filter", "Y");
	set_knob(FAIL_PAGE_ALLOC, "min-order", line);
	set_knob(FAIL_PAGE_ALLOC, "ignore-gfp-wait", "N");
	set_knob(FAIL_PAGE_ALLOC, "verbose", "0");
	set_knob(FAIL_PAGE_ALLOC, "space", "0");
	set_knob(FAIL_PAGE_ALLOC, "interval", "1");
	set_knob(FAIL_PAGE_ALLOC, "times", "1");
	set_knob(FAIL_PAGE_ALLOC, "probability", "100");

	kmsg = kmsg_open();
	write_file("/proc/thread-self/make-it-fail", "1");
	fd = create_vm_raw(0);
	err = errno;
	write_file("/proc/thread-self/make-it-fail", "0");
	read_file(FAIL_PAGE_ALLOC "/times", times, sizeof(times));
	restore_knobs();
	if (fd >= 0)
		close(fd);

	ksft_print_msg("KVM_CREATE_VM: %s; fail_page_alloc times left %s\n",
		       fd >= 0 ? "succeeded" : strerror(err), times);
	ksft_test_result(fd < 0 && err == ENOMEM,
			 "KVM_CREATE_VM fails with ENOMEM when the pool cannot be reserved\n");
	ksft_test_result(!strcmp(times, "0"), "the one injected failure was used\n");
	snprintf(kib, sizeof(kib), "cannot reserve a %lu KiB ", pool_kib);
	logged = reserve_failure_logged(kmsg, getpid(), line, sizeof(line));
	if (logged)
		ksft_print_msg("dmesg: %s\n", line);
	ksft_test_result(logged && strstr(line, kib),
			 "nptpool logs the VMM's pid and the pool's size (%lu KiB)\n", pool_kib);
	read_counters(&now);
	ksft_test_result(counters_equal(&now, &base),
			 "no pool is left behind (vms %lu, pages_reserved %lu)\n", now.vms,
			 now.reserved);
	ksft_test_result(next_vm_runs(), "the next VM gets its pool and runs\n");
	close(kmsg);
}

/*
 * fail-nth: the n-th fault-injection point this thread passes fails.  With the filters
 * off (every order, reclaiming allocations too) every slab and page allocation of
 * KVM_CREATE_VM is such a point, the pool's own among them.
 *
 * One KVM_CREATE_VM with its n-th point failing: the VM fd or -1 (errno in *err);
 * *injected tells whether creation got as far as the n-th point.  `nth` stays open:
 * pread() and pwrite() of it pass no fault-injection point.
 */
static int failnth_create(int kvm, int nth, int n, int *err, bool *injected)
{
	char buf[16];
	int fd;

	snprintf(buf, sizeof(buf), "%d", n);
	TEST_ASSERT(pwrite(nth, buf, strlen(buf), 0) > 0, "arm fail-nth");
	fd = ioctl(kvm, KVM_CREATE_VM, 0);
	*err = errno;
	memset(buf, 0, sizeof(buf));
	TEST_ASSERT(pread(nth, buf, sizeof(buf) - 1, 0) > 0, "read fail-nth");
	TEST_ASSERT(pwrite(nth, "0", 1, 0) == 1, "disarm fail-nth");
	/* It reads 0 once the n-th point failed. */
	*injected = atoi(buf) == 0;
	return fd;
}

/*
 * Find the allocation whose failure put the counters off: the numbering can shift a
 * little between runs, so fail the ones around n again, with fault-injection's stack
 * dump on, until one puts the counters off again; print that one's stack.
 */
static void failnth_show(int kvm, int nth, int n)
{
	struct counters before, after;
	int kmsg, fd, err, k, lines;
	char rec[2048], *msg;
	bool injected;
	ssize_t len;

	for (k = n > 8 ? n - 8 : 1; k <= n + 8; k++) {
		read_counters(&before);
		kmsg = kmsg_open();
		write_file(FAILSLAB "/verbose", "2");
		write_file(FAIL_PAGE_ALLOC "/verbose", "2");
		fd = failnth_create(kvm, nth, k, &err, &injected);
		write_file(FAILSLAB "/verbose", "0");
		write_file(FAIL_PAGE_ALLOC "/verbose", "0");
		if (fd >= 0)
			close(fd);
		read_counters(&after);
		if (counters_equal(&before, &after)) {
			close(kmsg);
			continue;
		}
		ksft_print_msg("failing allocation %d again puts them off again; it is:\n", k);
		for (lines = 0; lines < 40;) {
			len = read(kmsg, rec, sizeof(rec) - 1);
			if (len < 0 && errno == EPIPE)
				continue;
			if (len <= 0)
				break;
			rec[len] = 0;
			msg = strchr(rec, ';');
			msg = msg ? msg + 1 : rec;
			if (!lines && !strstr(msg, "FAULT_INJECTION"))
				continue;
			ksft_print_msg("  %s", msg);
			lines++;
		}
		close(kmsg);
		return;
	}
	ksft_print_msg("failing the allocations around %d again did not put them off again\n", n);
}

/*
 * One sweep: fail allocation 1, 2, ... of KVM_CREATE_VM until creation passes fewer
 * points.  Returns the number of points; counts outcomes; `outcomes` gets one letter per
 * point (n: ENOMEM, c: created anyway, x: another errno, ! counters off).
 */
static int failnth_sweep(int kvm, int nth, int max_n, char *outcomes, int *other, int *off)
{
	struct counters base, now;
	bool injected = true;
	int n, fd, err;

	read_counters(&base);
	for (n = 1; n <= max_n && injected; n++) {
		fd = failnth_create(kvm, nth, n, &err, &injected);
		outcomes[n - 1] = fd >= 0 ? 'c' : err == ENOMEM ? 'n' : 'x';
		if (fd >= 0) {
			close(fd);
		} else if (err != ENOMEM) {
			(*other)++;
			ksft_print_msg("allocation %d failed: KVM_CREATE_VM: %s\n", n, strerror(err));
		}
		read_counters(&now);
		if (!counters_equal(&now, &base)) {
			(*off)++;
			outcomes[n - 1] = '!';
			ksft_print_msg("allocation %d failed: vms %lu -> %lu, pages_reserved %lu -> %lu, pages_in_use %lu -> %lu\n",
				       n, base.vms, now.vms, base.reserved, now.reserved, base.in_use,
				       now.in_use);
			failnth_show(kvm, nth, n);
			read_counters(&base);
		}
	}
	outcomes[n - 2] = 0;	/* the last one passed fewer points: no outcome */
	return n - 2;
}

static void test_failnth(int max_n, int passes)
{
	int p, kvm, nth, points, other = 0, off = 0, kmsg;
	char line[512], *outcomes, *first;
	u64 pages;

	if (access(FAILSLAB, F_OK) || access(FAIL_PAGE_ALLOC, F_OK) ||
	    access("/proc/thread-self/fail-nth", F_OK))
		ksft_exit_skip("no slab and page allocation fault injection in this kernel\n");
	pages = pool_pages_now();
	if (pages > 1024)
		ksft_exit_skip("a pool of %lu pages comes from alloc_contig_pages(), which fail_page_alloc does not cover\n",
			       pages);
	ksft_set_plan(4);
	/*
	 * Every slab allocation, and page allocations of the pool's order and up: the pool's
	 * reservation, not the slab pages that come and go with the slab caches' state and
	 * would shift the numbering from run to run.
	 */
	snprintf(line, sizeof(line), "%u", order_of(pages));
	set_knob(FAILSLAB, "ignore-gfp-wait", "N");
	set_knob(FAILSLAB, "verbose", "0");
	set_knob(FAIL_PAGE_ALLOC, "ignore-gfp-wait", "N");
	set_knob(FAIL_PAGE_ALLOC, "min-order", line);
	set_knob(FAIL_PAGE_ALLOC, "verbose", "0");

	kmsg = kmsg_open();
	kvm = open_kvm_dev_path_or_exit();
	nth = open("/proc/thread-self/fail-nth", O_RDWR);
	TEST_ASSERT(nth >= 0, "open fail-nth: %s", strerror(errno));
	outcomes = calloc(max_n + 1, 1);
	first = calloc(max_n + 1, 1);
	TEST_ASSERT(outcomes && first, "calloc");
	for (p = 0; p < passes; p++) {
		points = failnth_sweep(kvm, nth, max_n, outcomes, &other, &off);
		ksft_print_msg("pass %d: KVM_CREATE_VM passes %d fault points; failing each (n: ENOMEM, c: created anyway, x: other errno, !: counters off):\n",
			       p + 1, points);
		ksft_print_msg("  %s\n", outcomes);
		if (!p)
			strcpy(first, outcomes);
		else
			ksft_print_msg("  %s as the first pass\n",
				       strcmp(first, outcomes) ? "not the same" : "the same");
	}
	close(nth);
	close(kvm);
	restore_knobs();
	ksft_test_result(points < max_n && !other,
			 "KVM_CREATE_VM fails with ENOMEM or succeeds whichever allocation fails\n");
	ksft_test_result(!off, "nptpool's counters are exactly back after every failure\n");
	ksft_test_result(reserve_failure_logged(kmsg, getpid(), line, sizeof(line)),
			 "the sweep failed the pool's reservation too (%s)\n", line);
	ksft_test_result(next_vm_runs(), "a VM created after the sweep runs\n");
	free(outcomes);
	free(first);
	close(kmsg);
}

/*
 * Dirty-logging splits.  The guest maps its code first, then writes one word per 2 MiB
 * block of a hugetlb memslot (mapped as blocks, which need no pmd-region table), then,
 * once the host enabled dirty logging, writes them again: each write fault splits a
 * write-protected block into a table of the pmd region, unless eager splitting already
 * did, in the ioctl.
 */
static void guest_split(gva_t base, u64 nblocks)
{
	u64 i;

	GUEST_SYNC(0);
	for (i = 0; i < nblocks; i++)
		*(volatile u64 *)(base + i * BLOCK_SIZE) = i + 1;
	GUEST_SYNC(1);
	for (i = 0; i < nblocks; i++)
		*(volatile u64 *)(base + i * BLOCK_SIZE + 8) = i + 2;
	GUEST_DONE();
}

struct split_vm {
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpu;
	gpa_t gpa;
	u64 nblocks;
	struct pool pool;
};

/* KVM takes the eager split chunk size only while the VM has no memslot. */
static void enable_eager_split(struct kvm_vm *vm)
{
	struct userspace_mem_region *slot0 = memslot2region(vm, 0);
	struct kvm_userspace_memory_region2 gone = slot0->region;

	gone.memory_size = 0;
	vm_ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &gone);
	vm_enable_cap(vm, KVM_CAP_ARM_EAGER_SPLIT_CHUNK_SIZE, BLOCK_SIZE);
	vm_ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &slot0->region);
}

static void split_vm_create(struct split_vm *s, u64 nblocks, bool eager)
{
	long before = newest_vm_id(NULL, 0);
	u64 psz, slot_pages, i;

	s->vm = vm_create_with_one_vcpu(&s->vcpu, guest_split);
	if (eager)
		enable_eager_split(s->vm);
	psz = s->vm->page_size;
	s->nblocks = nblocks;
	slot_pages = nblocks * BLOCK_SIZE / psz;
	s->gpa = ((s->vm->max_gfn - slot_pages) * psz) & ~((1UL << 30) - 1);
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
	const char *how = eager ? "eager split" : "write fault";
	struct split_vm ctl, big;
	struct vm_under_test by;
	u64 pmd_before, bitmap[4 * 512 / 64], need, i, dirty, want;
	int err, ret;

	/* The eager split chunk is a VM's capability; its default, 0, reads "absent" here. */
	if (eager)
		TEST_REQUIRE(kvm_check_cap(KVM_CAP_ARM_SUPPORTED_BLOCK_SIZES) & BLOCK_SIZE);
	vm_setup(&by, 1, 1, 1);		/* the bystander */
	need = 4 + by.pool.pages[PMD] + 2;
	if (hugepages_free() < need)
		ksft_exit_skip("%lu free 2 MiB huge pages, %lu needed (HUGEPAGES=)\n",
			       hugepages_free(), need);
	ksft_set_plan(9);

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
	ret = split_run(&ctl);
	read_pool(&ctl.pool);
	ksft_test_result(ret == SPLIT_DONE && ctl.pool.used[PMD] - pmd_before == (eager ? 0 : ctl.nblocks),
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
	err = split_log_dirty(&big);
	read_pool(&big.pool);
	if (eager) {
		ksft_print_msg("enabling dirty logging: %s\n", err ? strerror(err) : "succeeded");
		ksft_test_result(!err && vm_halted(&big.pool) &&
				 big.pool.used[PMD] == big.pool.pages[PMD],
				 "the eager split in that ioctl exhausts the pmd region and halts the VM\n");
		ret = split_run(&big);
		ksft_test_result(ret == -EIO, "KVM_RUN of the halted VM fails with EIO (%s)\n",
				 ret < 0 && ret != SPLIT_DONE ? strerror(-ret) : "it ran");
	} else {
		ret = split_run(&big);
		ksft_print_msg("%s region of %lu pages, %lu blocks written with dirty logging on: KVM_RUN %s\n",
			       region_names[PMD], big.pool.pages[PMD], big.nblocks,
			       ret < 0 && ret != SPLIT_DONE ? strerror(-ret) : "succeeded");
		ksft_test_result(!err && ret == -ENOMEM,
				 "the write fault whose split finds no table fails KVM_RUN with ENOMEM\n");
		ret = split_run(&big);
		ksft_test_result(ret == -EIO, "later KVM_RUNs fail with EIO (%s)\n",
				 ret < 0 && ret != SPLIT_DONE ? strerror(-ret) : "it ran");
	}
	read_pool(&big.pool);
	dump_pool(&big.pool, "after the halt");
	ksft_test_result(vm_halted(&big.pool) && big.pool.used[PMD] == big.pool.pages[PMD],
			 "debugfs shows the VM halted by a %s, pmd region used up\n", how);
	ksft_test_result(!vm_halted(&by.pool) && vm_run(&by) == 0,
			 "another VM is not halted and still runs and faults\n");
	kvm_vm_free(big.vm);
	kvm_vm_free(by.vm);
}

/*
 * VMs with several vCPUs: vCPU i touches `count` pages 2 MiB apart (each needs a new
 * pmd-region table) in its own part of one memslot.
 */
static void guest_fault_loop(gva_t base, u64 count)
{
	u64 pass, i;

	GUEST_SYNC(0);
	for (pass = 1;; pass++) {
		for (i = 0; i < count; i++)
			*(volatile u64 *)(base + i * BLOCK_SIZE) = pass;
		GUEST_SYNC(pass);
	}
}

static void guest_fault_once(gva_t base, u64 count)
{
	u64 i;

	for (i = 0; i < count; i++)
		*(volatile u64 *)(base + i * BLOCK_SIZE) = i + 1;
	GUEST_DONE();
}

static struct kvm_vm *vm_with_vcpus(int nvcpus, struct kvm_vcpu **vcpus, void *guest,
				    u64 count)
{
	u64 per = count * BLOCK_SIZE, psz, slot_pages, i;
	struct kvm_vm *vm;
	gpa_t gpa;
	int v;

	/* Counted as extra memory, the touched pages get room for their guest page tables. */
	vm = __vm_create_with_vcpus(VM_SHAPE_DEFAULT, nvcpus, nvcpus * count * 512, guest, vcpus);
	psz = vm->page_size;
	slot_pages = nvcpus * per / psz;
	gpa = ((vm->max_gfn - slot_pages) * psz) & ~((1UL << 30) - 1);
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, gpa, TEST_SLOT, slot_pages, 0);
	for (v = 0; v < nvcpus; v++) {
		for (i = 0; i < count; i++)
			virt_pg_map(vm, TEST_GVA + v * per + i * BLOCK_SIZE, gpa + v * per + i * BLOCK_SIZE);
		vcpu_args_set(vcpus[v], 2, TEST_GVA + v * per, count);
	}
	return vm;
}

static int kill_nvcpus, kill_ready_fd, kill_in_guest;
static long kill_mmap_sz;
static volatile bool kill_closing;

/*
 * A vCPU that faults until its VMM dies or closes its fds.  Raw KVM_RUN: the library's
 * would issue a second KVM_RUN to complete the ucall's MMIO, which may find the fd closed.
 * Every exit is the guest's GUEST_SYNC, an MMIO write that the next KVM_RUN completes.
 */
static void *kill_vcpu_thread(void *arg)
{
	struct kvm_vcpu *vcpu = arg;
	bool entered = false;

	for (;;) {
		if (__vcpu_run(vcpu)) {
			TEST_ASSERT(errno == EINTR || (kill_closing && errno == EBADF),
				    "KVM_RUN: %s", strerror(errno));
			if (errno == EINTR)
				continue;
			break;
		}
		if (kill_closing)
			break;
		TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_MMIO);
		if (!entered &&
		    __atomic_add_fetch(&kill_in_guest, 1, __ATOMIC_SEQ_CST) == kill_nvcpus)
			TEST_ASSERT(write(kill_ready_fd, "r", 1) == 1, "ready");
		entered = true;
	}
	/* Its fds are closed: this drops the vCPU's last reference, the VM's with the last. */
	munmap(vcpu->run, kill_mmap_sz);
	return NULL;
}

/*
 * The VMM of one round.  kill: fault until SIGKILLed.  close: `delay_ms` after every vCPU
 * entered the guest, close the VM's fds under the faulting vCPUs; each vCPU thread stops
 * at its next exit and unmaps its kvm_run, the last one taking the VM down; exit 0 once
 * the VM is gone.
 */
static void kill_child(int ready_fd, int nvcpus, u64 count, bool close_fds, int delay_ms)
{
	struct kvm_vcpu *vcpus[MAX_VCPUS];
	pthread_t threads[MAX_VCPUS];
	struct kvm_vm *vm;
	int v, kvm;

	kill_nvcpus = nvcpus;
	kill_ready_fd = ready_fd;
	kvm = open_kvm_dev_path_or_exit();
	kill_mmap_sz = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, NULL);
	close(kvm);
	vm = vm_with_vcpus(nvcpus, vcpus, guest_fault_loop, count);
	TEST_ASSERT(newest_vm_id(NULL, 0) >= 0, "the VM has no pool");
	for (v = 0; v < nvcpus; v++)
		pthread_create(&threads[v], NULL, kill_vcpu_thread, vcpus[v]);
	if (!close_fds) {
		for (v = 0; v < nvcpus; v++)
			pthread_join(threads[v], NULL);
		exit(KSFT_FAIL);	/* only SIGKILL ends this one */
	}

	while (__atomic_load_n(&kill_in_guest, __ATOMIC_SEQ_CST) < nvcpus)
		usleep(1000);
	usleep(delay_ms * 1000);
	kill_closing = true;
	/* Every fd that holds a reference on the VM: vCPUs, stats, the vGIC device, the VM. */
	for (v = 0; v < nvcpus; v++) {
		close(vcpus[v]->fd);
		if (vcpus[v]->stats.fd >= 0)
			close(vcpus[v]->stats.fd);
	}
	if (vm->stats.fd >= 0)
		close(vm->stats.fd);
	if (vm->arch.has_gic)
		close(vm->arch.gic_fd);
	close(vm->fd);
	for (v = 0; v < nvcpus; v++)
		pthread_join(threads[v], NULL);
	TEST_ASSERT(newest_vm_id(NULL, 0) < 0, "the VM outlived its last reference");
	exit(KSFT_PASS);
}

static void test_kill(bool close_fds, int rounds, int nvcpus)
{
	static const int delays_ms[] = { 0, 10, 20, 40, 80, 160 };
	u64 count = 64, full, in_flight = 0, ok_end = 0, ok_counters = 0;
	struct counters base;
	int r;

	TEST_ASSERT(nvcpus >= 1 && nvcpus <= MAX_VCPUS, "1..%d vCPUs", MAX_VCPUS);
	ksft_set_plan(close_fds ? 2 : 3);
	read_counters(&base);
	full = nvcpus * count;
	for (r = 0; r < rounds; r++) {
		int delay = delays_ms[r % ARRAY_SIZE(delays_ms)], pipefd[2], status;
		struct pollfd pfd;
		struct pool p;
		u64 used0 = 0, used1 = 0;
		char c;
		pid_t pid;

		TEST_ASSERT(!pipe(pipefd), "pipe");
		fflush(stdout);
		pid = fork();
		TEST_ASSERT(pid >= 0, "fork");
		if (!pid) {
			close(pipefd[0]);
			kill_child(pipefd[1], nvcpus, count, close_fds, delay);
		}
		close(pipefd[1]);
		pfd = (struct pollfd){ .fd = pipefd[0], .events = POLLIN };
		TEST_ASSERT(poll(&pfd, 1, 60000) == 1 && read(pipefd[0], &c, 1) == 1,
			    "round %d: the vCPUs never all entered the guest", r);
		if (!close_fds) {
			if (newest_vm_id_of(pid, p.dir, sizeof(p.dir), false) >= 0) {
				read_pool(&p);
				used0 = p.used[PMD];
			}
			usleep(delay * 1000);
			if (newest_vm_id_of(pid, p.dir, sizeof(p.dir), false) >= 0) {
				read_pool(&p);
				used1 = p.used[PMD];
			}
			kill(pid, SIGKILL);
			in_flight += used1 < full;
		}
		TEST_ASSERT(waitpid(pid, &status, 0) == pid, "waitpid");
		close(pipefd[0]);
		if (close_fds ? WIFEXITED(status) && WEXITSTATUS(status) == KSFT_PASS :
				WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
			ok_end++;
		else
			ksft_print_msg("round %d: the VMM ended with status 0x%x\n", r, status);
		ok_counters += counters_back(&base, 10);
		if (close_fds)
			ksft_print_msg("round %d: fds closed %d ms after %d vCPUs entered the guest\n",
				       r, delay, nvcpus);
		else
			ksft_print_msg("round %d: SIGKILL %d ms after %d vCPUs entered the guest; pmd region used %lu -> %lu (of %lu to fault)\n",
				       r, delay, nvcpus, used0, used1, full);
	}
	if (close_fds) {
		ksft_test_result(ok_end == rounds,
				 "%d VMMs closed their VMs' fds under faulting vCPUs; the last vCPU thread destroyed each VM\n",
				 rounds);
	} else {
		ksft_test_result(ok_end == rounds, "%d VMMs were SIGKILLed while their vCPUs faulted\n",
				 rounds);
		ksft_test_result(in_flight > 0, "in %lu of %d rounds faults were in flight at the kill\n",
				 in_flight, rounds);
	}
	ksft_test_result(ok_counters == rounds, "after each round nptpool's counters are back\n");
}

/* The storm: each process creates VMs in turn, each VM's vCPUs fault at once. */
static void *storm_vcpu_thread(void *arg)
{
	struct kvm_vcpu *vcpu = arg;
	struct ucall uc;

	vcpu_run(vcpu);
	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_MMIO);
	if (get_ucall(vcpu, &uc) == UCALL_ABORT)
		REPORT_GUEST_ASSERT(uc);
	TEST_ASSERT_EQ(uc.cmd, UCALL_DONE);
	return NULL;
}

/* VMs one after another until `limit_ms` after `start`; how many, in `*done` (shared). */
static void storm_child(const struct timespec *start, u64 limit_ms, int nvcpus, u64 *done)
{
	struct kvm_vcpu *vcpus[MAX_VCPUS];
	pthread_t threads[MAX_VCPUS];
	struct kvm_vm *vm;
	int v;

	while (elapsed_ms(start) < limit_ms) {
		vm = vm_with_vcpus(nvcpus, vcpus, guest_fault_once, 8);
		TEST_ASSERT(newest_vm_id(NULL, 0) >= 0, "VM %lu has no pool", *done);
		for (v = 0; v < nvcpus; v++)
			pthread_create(&threads[v], NULL, storm_vcpu_thread, vcpus[v]);
		for (v = 0; v < nvcpus; v++)
			pthread_join(threads[v], NULL);
		kvm_vm_free(vm);
		(*done)++;
	}
	exit(KSFT_PASS);
}

/*
 * A storm of fixed length: the processes create VMs until `seconds` have passed (each
 * finishes the VM it is in); how many that is depends on the machine and is reported,
 * never judged.  A hang is the runner's timeout.
 */
static void test_storm(int seconds, int nprocs, int nvcpus)
{
	struct counters base;
	struct timespec start;
	int p, status, ok = 0, idle = 0;
	u64 *done, total = 0, ms;
	pid_t pids[64];

	TEST_ASSERT(nprocs >= 1 && nprocs <= 64 && nvcpus >= 1 && nvcpus <= MAX_VCPUS,
		    "1..64 processes, 1..%d vCPUs", MAX_VCPUS);
	done = mmap(NULL, nprocs * sizeof(*done), PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	TEST_ASSERT(done != MAP_FAILED, "mmap: %s", strerror(errno));
	ksft_set_plan(3);
	read_counters(&base);
	clock_gettime(CLOCK_MONOTONIC, &start);
	fflush(stdout);
	for (p = 0; p < nprocs; p++) {
		done[p] = 0;
		pids[p] = fork();
		TEST_ASSERT(pids[p] >= 0, "fork");
		if (!pids[p])
			storm_child(&start, seconds * 1000UL, nvcpus, &done[p]);
	}
	for (p = 0; p < nprocs; p++) {
		TEST_ASSERT(waitpid(pids[p], &status, 0) == pids[p], "waitpid");
		if (WIFEXITED(status) && WEXITSTATUS(status) == KSFT_PASS)
			ok++;
		else
			ksft_print_msg("process %d ended with status 0x%x\n", p, status);
		idle += !done[p];
		total += done[p];
	}
	ms = elapsed_ms(&start);
	ksft_print_msg("%lu VMs of %d vCPUs from %d processes in %lu.%03lu s\n", total, nvcpus,
		       nprocs, ms / 1000, ms % 1000);
	ksft_test_result(ok == nprocs, "every VM of the storm got a pool and its vCPUs faulted\n");
	ksft_test_result(!idle, "each of the %d processes created at least one VM\n", nprocs);
	ksft_test_result(counters_back(&base, 10), "nptpool's counters are back\n");
	munmap(done, nprocs * sizeof(*done));
}

/* Free blocks of `order` in every zone (/proc/buddyinfo). */
static u64 free_blocks(unsigned int order)
{
	char line[512], *tok, *save;
	FILE *f = fopen("/proc/buddyinfo", "r");
	u64 total = 0;
	unsigned int col;

	TEST_ASSERT(f, "open /proc/buddyinfo");
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
			struct vm_under_test t;

			vm_setup(&t, 512, 16, 32);
			TEST_ASSERT_EQ(vm_run(&t), 0);
			kvm_vm_free(t.vm);
			(*done)++;
		}
		exit(KSFT_PASS);
	}
	TEST_ASSERT(waitpid(pid, &status, 0) == pid, "waitpid");
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

/* Whether this process has a VM with a pool: a pool pins the module, and its directory. */
static bool has_pool(void)
{
	return newest_vm_id_of(getpid(), NULL, 0, true) >= 0;
}

static void test_reload(int seconds)
{
	int vms = 0, pooled = 0, stock = 0, ran = 0, consistent = 0;
	struct timespec start;

	ksft_set_plan(4);
	clock_gettime(CLOCK_MONOTONIC, &start);
	while (elapsed_ms(&start) < seconds * 1000UL) {
		struct kvm_vcpu *vcpu;
		struct kvm_vm *vm;
		bool had;
		gpa_t gpa;
		u64 i;

		vm = vm_create_with_one_vcpu(&vcpu, guest_touch);
		had = has_pool();
		gpa = ((vm->max_gfn - 512) * vm->page_size) & ~((1UL << 30) - 1);
		vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, gpa, TEST_SLOT, 512, 0);
		for (i = 0; i < 16; i++)
			virt_pg_map(vm, TEST_GVA + i * 32 * vm->page_size, gpa + i * 32 * vm->page_size);
		vcpu_args_set(vcpu, 3, TEST_GVA, 16, 32 * vm->page_size);
		{
			struct ucall uc;

			ran += !_vcpu_run(vcpu) && get_ucall(vcpu, &uc) == UCALL_DONE;
		}
		consistent += has_pool() == had;
		kvm_vm_free(vm);
		vms++;
		pooled += had;
		stock += !had;
	}
	ksft_print_msg("%d VMs in %d s while nptpool was reloaded: %d with a pool, %d stock\n",
		       vms, seconds, pooled, stock);
	ksft_test_result(ran == vms, "every VM ran its guest (%d of %d)\n", ran, vms);
	ksft_test_result(consistent == vms,
			 "a VM with a pool kept it, a stock VM stayed stock, to its end\n");
	ksft_test_result(pooled > 0, "some VMs were created with nptpool loaded (%d)\n", pooled);
	ksft_test_result(stock > 0, "some VMs were created with nptpool gone (%d)\n", stock);
}

/*
 * Memory pressure, in a child whose death the parent can judge: it holds VMs (and so
 * pools) until KVM_CREATE_VM fails, lets four go, and runs a guest that touches
 * `npages` pages.  The OOM killer is pointed at it.
 */
struct pressure_report {
	int held, create_errno;
	int phase;		/* 1: holding VMs, 2: the guest runs, 3: done */
	int setup_errno;	/* creating or setting up the guest's VM, 0: it ran */
	int run_errno, halted, done;
	u64 pmd_before, pmd_after;
};

/*
 * The guest's VM is built by hand (raw_vm.h): with the host out of memory its creation
 * or setup may fail, which is an outcome to report, where the library would abort.
 */
static void pressure_child(struct pressure_report *r, u64 npages)
{
	static int held[4096];
	struct rlimit rl = { 4200, 4200 };
	struct raw_vm vm;
	struct pool p;
	int i, err;

	write_file("/proc/self/oom_score_adj", "1000");
	setrlimit(RLIMIT_NOFILE, &rl);
	r->phase = 1;
	for (i = 0; i < (int)ARRAY_SIZE(held); i++) {
		held[i] = create_vm_raw(0);
		if (held[i] < 0) {
			r->create_errno = errno;
			break;
		}
		r->held = i + 1;
	}
	for (i = 0; i < 4 && i < r->held; i++)
		close(held[r->held - 1 - i]);

	r->phase = 2;
	err = raw_vm_create(&vm, 0);
	if (!err) {
		TEST_ASSERT(newest_vm_id(p.dir, sizeof(p.dir)) >= 0, "no pool for the guest's VM");
		read_pool(&p);
		r->pmd_before = p.used[PMD];
		err = raw_vm_setup(&vm, 1UL << 30, npages * 4096, npages, 4096);
	}
	r->setup_errno = err;
	if (!err) {
		r->run_errno = raw_vm_run(&vm);
		r->done = !r->run_errno && raw_vm_done(&vm);
		read_pool(&p);
		r->pmd_after = p.used[PMD];
		r->halted = vm_halted(&p);
	}
	r->phase = 3;
	exit(KSFT_PASS);
}

static void test_pressure(u64 npages)
{
	struct pressure_report *r;
	struct counters base;
	char line[512], needle[64];
	int status, kmsg;
	bool oom;
	pid_t pid;

	ksft_set_plan(4);
	r = mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	TEST_ASSERT(r != MAP_FAILED, "mmap");
	write_file("/proc/self/oom_score_adj", "-1000");
	read_counters(&base);
	kmsg = kmsg_open();
	ksft_print_msg("MemFree %lu kB before\n", meminfo_kib("MemFree"));
	fflush(stdout);
	pid = fork();
	TEST_ASSERT(pid >= 0, "fork");
	if (!pid)
		pressure_child(r, npages);
	TEST_ASSERT(waitpid(pid, &status, 0) == pid, "waitpid");

	snprintf(needle, sizeof(needle), "Killed process %d ", pid);
	oom = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL &&
	      kmsg_find(kmsg, needle, line, sizeof(line));
	if (oom)
		ksft_print_msg("dmesg: %s\n", line);
	ksft_print_msg("the VMM held %d VMs when KVM_CREATE_VM failed (%s); it %s in phase %d\n",
		       r->held, r->create_errno ? strerror(r->create_errno) : "never failed",
		       oom ? "was OOM-killed" : WIFEXITED(status) ? "exited" : "died", r->phase);
	ksft_test_result(oom || (WIFEXITED(status) && WEXITSTATUS(status) == KSFT_PASS),
			 "the VMM finished or was killed by the OOM killer, nothing else\n");
	ksft_test_result(r->phase < 2 || r->create_errno == ENOMEM,
			 "holding VMs until memory ran out, KVM_CREATE_VM failed with ENOMEM after %d\n",
			 r->held);
	if (r->phase == 3 && r->setup_errno)
		ksft_print_msg("the guest's VM could not be set up: %s\n", strerror(r->setup_errno));
	else if (r->phase == 3)
		ksft_print_msg("guest touching %lu pages: KVM_RUN %s%s, pmd region used %lu -> %lu, halted %d\n",
			       npages, r->run_errno ? strerror(r->run_errno) : "succeeded",
			       r->run_errno || r->done ? "" : " but the guest did not finish",
			       r->pmd_before, r->pmd_after, r->halted);
	ksft_test_result(r->phase < 3 || r->setup_errno == ENOMEM ||
			 (!r->setup_errno && !r->halted &&
			  (r->done || r->run_errno == EFAULT || r->run_errno == ENOMEM)),
			 "a guest faulting with memory short ran, or failed for host memory, never halted by its pool\n");
	ksft_test_result(counters_back(&base, 10), "nptpool's counters are back\n");
	close(kmsg);
}

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
 * sizes), whose guest stores to 8 pages 2 MiB apart at the top of the IPA space; whether
 * it ran and its pool looks as it must.
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

static void test_ipa_all(void)
{
	unsigned int max_ipa = kvm_check_cap(KVM_CAP_ARM_VM_IPA_SIZE), ipa, bad_ipas[] = {
		1, 31, max_ipa + 1, 63 };
	unsigned long bad_types[ARRAY_SIZE(bad_ipas) + 1];
	struct counters base, now;
	int i, refused = 0;

	ksft_set_plan(52 - 32 + 1 + 1);
	read_counters(&base);
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
	read_counters(&now);
	ksft_test_result(refused == ARRAY_SIZE(bad_types) && counters_equal(&now, &base),
			 "IPA sizes below 32 bits or above the host's %u, and unknown type bits: EINVAL, no pool\n",
			 max_ipa);
	for (ipa = 32; ipa <= 52; ipa++) {
		if (ipa > max_ipa) {
			ksft_test_result_skip("%u-bit IPA: the host supports %u bits\n", ipa, max_ipa);
			continue;
		}
		ksft_test_result(raw_ipa_vm(ipa),
				 "%u-bit IPA: the guest's stores land; root, levels and regions as KVM laid them out\n",
				 ipa);
	}
}

static void usage(const char *name)
{
	printf("usage: %s [-h] -m MODE [-e] [-k kill|close] [-r rounds] [-c vms] [-p procs]\n"
	       "       [-v vcpus] [-t seconds] [-n pages]\n", name);
	printf(" -m: inject, failnth, split, kill, storm, frag, reload, pressure or ipa,\n"
	       "     see the head of pool_fault_test.c\n");
	printf(" -e: with -m split, eager splitting\n");
	printf(" -k: with -m kill, SIGKILL the VMM (kill, default) or close its VM's fds (close)\n");
	printf(" -r: rounds of -m kill (default 6), sweeps of -m failnth (default 2)\n");
	printf(" -c: VMs of -m frag (default 200); allocations to fail\n"
	       "     with -m failnth (default 2000)\n");
	printf(" -p: processes of -m storm (default 3)\n");
	printf(" -v: vCPUs per VM of -m kill and -m storm (default 4)\n");
	printf(" -t: seconds: length of -m storm and of -m reload (default 20)\n");
	printf(" -n: pages the guest of -m pressure touches (default 8192)\n");
}

int main(int argc, char *argv[])
{
	int rounds = -1, nvms = -1, nprocs = 3, nvcpus = 4, seconds = -1, opt;
	bool eager = false, close_fds = false;
	const char *mode = NULL;
	u64 npages = 8192;

	while ((opt = getopt(argc, argv, "hm:ek:r:c:p:v:t:n:")) != -1) {
		switch (opt) {
		case 'm':
			mode = optarg;
			break;
		case 'e':
			eager = true;
			break;
		case 'k':
			close_fds = !strcmp(optarg, "close");
			break;
		case 'r':
			rounds = atoi_positive("Rounds", optarg);
			break;
		case 'c':
			nvms = atoi_positive("Number of VMs", optarg);
			break;
		case 'p':
			nprocs = atoi_positive("Number of processes", optarg);
			break;
		case 'v':
			nvcpus = atoi_positive("Number of vCPUs", optarg);
			break;
		case 't':
			seconds = atoi_positive("Seconds", optarg);
			break;
		case 'n':
			npages = atoi_positive("Number of pages", optarg);
			break;
		case 'h':
			usage(argv[0]);
			exit(KSFT_PASS);
		default:
			usage(argv[0]);
			exit(KSFT_FAIL);
		}
	}
	if (!mode) {
		usage(argv[0]);
		exit(KSFT_FAIL);
	}

	ksft_print_header();
	if (strcmp(mode, "reload") && access(DEBUGFS, F_OK))
		ksft_exit_skip("nptpool is not loaded (no %s)\n", DEBUGFS);
	if (!strcmp(mode, "inject"))
		test_inject();
	else if (!strcmp(mode, "failnth"))
		test_failnth(nvms > 0 ? nvms : 2000, rounds > 0 ? rounds : 2);
	else if (!strcmp(mode, "split"))
		test_split(eager);
	else if (!strcmp(mode, "kill"))
		test_kill(close_fds, rounds > 0 ? rounds : 6, nvcpus);
	else if (!strcmp(mode, "storm"))
		test_storm(seconds > 0 ? seconds : 20, nprocs, nvcpus);
	else if (!strcmp(mode, "reload"))
		test_reload(seconds > 0 ? seconds : 20);
	else if (!strcmp(mode, "pressure"))
		test_pressure(npages);
	else if (!strcmp(mode, "ipa"))
		test_ipa_all();
	else if (!strcmp(mode, "frag"))
		test_frag(nvms > 0 ? nvms : 200);
	else
		ksft_exit_fail_msg("unknown mode %s\n", mode);
	ksft_finished();
}
