// SPDX-License-Identifier: GPL-2.0
/*
 * fault_latency_test: what one stage-2 fault costs as the guest sees it, and what
 * creating and destroying a VM costs; for `make bench`, stock KVM and nptpool alike.
 *
 *   -m latency  (default) every vCPU writes once to each 4 KiB page of its own slice of
 *               a fresh anonymous memslot, so every write takes exactly one stage-2
 *               fault, and reads the virtual counter (CNTVCT_EL0, behind an ISB) right
 *               before and after it.  The host converts ticks to ns with CNTFRQ_EL0 and
 *               prints the percentiles over all faults of all vCPUs.
 *   -m create   time KVM_CREATE_VM, the memslot and the vCPUs (create), and closing it
 *               all until KVM has torn the VM down (destroy), -n times.  With nptpool
 *               loaded, create includes reserving and zeroing the VM's pool and destroy
 *               its release.
 *
 * Output: kselftest TAP, plus one line per measurement, `bench: METRIC VALUE UNIT`,
 * for selftests/run-bench.sh.  No timing is ever judged: the test fails only when the
 * guest or KVM misbehaves.
 *
 * The guest's stage-1 page tables live in memslot 0, which the guest has not touched
 * either: the first write to each 2 MiB of the test slot would fault twice, once on the
 * stage-1 table the walk reads and once on the page.  An untimed AT S1E1W on each 2 MiB
 * of the slice first makes the walk fault alone (-w leaves it out, to see the
 * difference); the stage-2 tables of the test slot itself are still built by the timed
 * writes, so their allocation is part of what is measured.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#define TEST_SLOT	10
#define TEST_GVA	0xc0000000UL
#define SZ_2M		(2UL << 20)

/* Shared with the guest (sync_global_to_guest). */
static u64 guest_pages_per_vcpu;
static u64 guest_page_size;
static gva_t guest_deltas;	/* u64 ticks, guest_pages_per_vcpu per vCPU */
static bool guest_prewalk;

static inline u64 guest_counter(void)
{
	u64 t;

	isb();
	t = read_sysreg(cntvct_el0);
	isb();
	return t;
}

static void guest_code(u64 idx)
{
	gva_t base = TEST_GVA + idx * guest_pages_per_vcpu * guest_page_size;
	u64 *deltas = (u64 *)guest_deltas + idx * guest_pages_per_vcpu;
	u64 i, t0, t1;

	/* Untimed: fault in this vCPU's deltas and the stage-1 walk of its slice. */
	for (i = 0; i < guest_pages_per_vcpu; i++)
		WRITE_ONCE(deltas[i], 0);
	for (i = 0; guest_prewalk && i < guest_pages_per_vcpu * guest_page_size; i += SZ_2M) {
		asm volatile("at s1e1w, %0" : : "r"(base + i) : "memory");
		isb();
	}

	for (i = 0; i < guest_pages_per_vcpu; i++) {
		volatile u64 *p = (volatile u64 *)(base + i * guest_page_size);

		t0 = guest_counter();
		*p = i + 1;
		t1 = guest_counter();
		deltas[i] = t1 - t0;
	}
	GUEST_DONE();
}

struct vcpu_thread {
	struct kvm_vcpu *vcpu;
	pthread_t thread;
};

static pthread_barrier_t start_barrier;

static void *vcpu_worker(void *arg)
{
	struct kvm_vcpu *vcpu = ((struct vcpu_thread *)arg)->vcpu;
	struct ucall uc;

	pthread_barrier_wait(&start_barrier);
	vcpu_run(vcpu);
	switch (get_ucall(vcpu, &uc)) {
	case UCALL_DONE:
		break;
	case UCALL_ABORT:
		REPORT_GUEST_ASSERT(uc);
		break;
	default:
		TEST_FAIL("vCPU %u: unexpected exit %s, ucall %lu", vcpu->id,
			  exit_reason_str(vcpu->run->exit_reason), uc.cmd);
	}
	return NULL;
}

static u64 host_cntfrq(void)
{
	u64 f;

	asm volatile("mrs %0, cntfrq_el0" : "=r"(f));
	return f;
}

static int cmp_u64(const void *a, const void *b)
{
	u64 x = *(const u64 *)a, y = *(const u64 *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted v[0..n). */
static u64 percentile(const u64 *v, u64 n, unsigned int pct)
{
	u64 rank = (n * pct + 99) / 100;

	return v[rank ? rank - 1 : 0];
}

static void test_latency(u32 nr_vcpus, u64 bytes, bool prewalk, bool raw)
{
	struct vcpu_thread threads[KVM_MAX_VCPUS];
	struct kvm_vcpu *vcpus[KVM_MAX_VCPUS];
	u64 npages, total, freq, i, *ticks, *ns;
	struct kvm_vm *vm;
	gpa_t gpa;
	u32 v;

	ksft_set_plan(1);
	vm = vm_create_with_vcpus(nr_vcpus, guest_code, vcpus);
	TEST_ASSERT(vm->page_size == 4096, "4 KiB guest pages expected, got %u",
		    vm->page_size);
	npages = bytes / vm->page_size / nr_vcpus;
	TEST_ASSERT(npages > 0, "-b %lu gives no page per vCPU", bytes);
	total = npages * nr_vcpus;

	/* 1 GiB aligned at the top of the IPA space, clear of memslot 0. */
	gpa = ((vm->max_gfn - total) * vm->page_size) & ~((1UL << 30) - 1);
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, gpa, TEST_SLOT, total, 0);
	virt_map(vm, TEST_GVA, gpa, total);

	guest_pages_per_vcpu = npages;
	guest_page_size = vm->page_size;
	guest_prewalk = prewalk;
	guest_deltas = vm_alloc(vm, total * sizeof(u64), KVM_UTIL_MIN_VADDR);
	sync_global_to_guest(vm, guest_pages_per_vcpu);
	sync_global_to_guest(vm, guest_page_size);
	sync_global_to_guest(vm, guest_prewalk);
	sync_global_to_guest(vm, guest_deltas);

	pthread_barrier_init(&start_barrier, NULL, nr_vcpus);
	for (v = 0; v < nr_vcpus; v++) {
		vcpu_args_set(vcpus[v], 1, (u64)v);
		threads[v].vcpu = vcpus[v];
		pthread_create(&threads[v].thread, NULL, vcpu_worker, &threads[v]);
	}
	for (v = 0; v < nr_vcpus; v++)
		pthread_join(threads[v].thread, NULL);
	pthread_barrier_destroy(&start_barrier);

	freq = host_cntfrq();
	ticks = addr_gva2hva(vm, guest_deltas);
	ns = malloc(total * sizeof(*ns));
	TEST_ASSERT(ns, "malloc");
	for (i = 0; i < total; i++)
		ns[i] = ticks[i] * 1000000000ULL / freq;
	if (raw)
		for (i = 0; i < total; i++)
			printf("bench: fault_ns %lu ns\n", ns[i]);
	qsort(ns, total, sizeof(*ns), cmp_u64);

	ksft_print_msg("%u vCPUs, %lu faults of 4 KiB pages (%lu per vCPU), counter %lu Hz, prewalk %s\n",
		       nr_vcpus, total, npages, freq, prewalk ? "on" : "off");
	printf("bench: faults %lu count\n", total);
	printf("bench: p50_ns %lu ns\n", percentile(ns, total, 50));
	printf("bench: p90_ns %lu ns\n", percentile(ns, total, 90));
	printf("bench: p99_ns %lu ns\n", percentile(ns, total, 99));
	printf("bench: max_ns %lu ns\n", ns[total - 1]);
	ksft_test_result(ns[0] > 0, "every vCPU timed its %lu stage-2 faults\n", npages);
	free(ns);
	kvm_vm_free(vm);
}

static u64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/*
 * What a VMM does to bring a VM up and down, with nothing else: KVM_CREATE_VM (stage-2
 * root, and nptpool's pool), one memslot of `bytes` left untouched, vCPUs created and
 * initialised; then every fd closed, the VM's last, which tears it down before close()
 * returns.
 */
static void test_create(u32 nr_vcpus, u64 bytes, int cycles)
{
	int kvm_fd = open_kvm_dev_path_or_exit(), vm_fd, vcpu_fd[KVM_MAX_VCPUS];
	struct kvm_userspace_memory_region region = {
		.slot = 0,
		.guest_phys_addr = 1UL << 30,
		.memory_size = bytes,
	};
	struct kvm_vcpu_init init;
	u64 t0, t1, t2;
	void *mem;
	int c, err;
	u32 v;

	ksft_set_plan(1);
	mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	TEST_ASSERT(mem != MAP_FAILED, "mmap %lu bytes", bytes);
	region.userspace_addr = (u64)mem;

	for (c = 0; c < cycles; c++) {
		t0 = now_ns();
		vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, KVM_VM_TYPE_ARM_IPA_SIZE(40));
		TEST_ASSERT(vm_fd >= 0, KVM_IOCTL_ERROR(KVM_CREATE_VM, vm_fd));
		err = ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &region);
		TEST_ASSERT(!err, KVM_IOCTL_ERROR(KVM_SET_USER_MEMORY_REGION, err));
		err = ioctl(vm_fd, KVM_ARM_PREFERRED_TARGET, &init);
		TEST_ASSERT(!err, KVM_IOCTL_ERROR(KVM_ARM_PREFERRED_TARGET, err));
		for (v = 0; v < nr_vcpus; v++) {
			vcpu_fd[v] = ioctl(vm_fd, KVM_CREATE_VCPU, v);
			TEST_ASSERT(vcpu_fd[v] >= 0, KVM_IOCTL_ERROR(KVM_CREATE_VCPU, vcpu_fd[v]));
			err = ioctl(vcpu_fd[v], KVM_ARM_VCPU_INIT, &init);
			TEST_ASSERT(!err, KVM_IOCTL_ERROR(KVM_ARM_VCPU_INIT, err));
		}
		t1 = now_ns();
		for (v = 0; v < nr_vcpus; v++)
			close(vcpu_fd[v]);
		close(vm_fd);
		t2 = now_ns();
		printf("bench: vm_create_us %lu us\n", (t1 - t0) / 1000);
		printf("bench: vm_destroy_us %lu us\n", (t2 - t1) / 1000);
	}
	munmap(mem, bytes);
	close(kvm_fd);
	ksft_test_result_pass("%d VMs of %u vCPUs and a %lu KiB memslot created and destroyed\n",
			      cycles, nr_vcpus, bytes >> 10);
}

static void usage(const char *name)
{
	printf("usage: %s [-h] [-m latency|create] [-v vcpus] [-b bytes] [-n cycles] [-w] [-r]\n",
	       name);
	printf(" -m: what to measure (default latency), see the head of fault_latency_test.c\n");
	printf(" -v: vCPUs (default 1)\n");
	printf(" -b: test memory, all vCPUs together, e.g. 4M (default 4M); with -m latency\n"
	       "     each vCPU faults in its 1/v share, one 4 KiB page per fault\n");
	printf(" -n: VMs to create and destroy with -m create (default 5)\n");
	printf(" -w: -m latency without the untimed stage-1 walk first (each first write\n"
	       "     to a 2 MiB range then also faults on the guest's own page table)\n");
	printf(" -r: -m latency also prints every fault's latency ('bench: fault_ns N ns')\n");
}

int main(int argc, char *argv[])
{
	const char *mode = "latency";
	bool prewalk = true, raw = false;
	u64 bytes = 4UL << 20;
	u32 nr_vcpus = 1;
	int cycles = 5, opt;

	while ((opt = getopt(argc, argv, "hm:v:b:n:wr")) != -1) {
		switch (opt) {
		case 'm':
			mode = optarg;
			break;
		case 'v':
			nr_vcpus = atoi_positive("Number of vCPUs", optarg);
			TEST_ASSERT(nr_vcpus <= KVM_MAX_VCPUS, "at most %d vCPUs", KVM_MAX_VCPUS);
			break;
		case 'b':
			bytes = parse_size(optarg);
			break;
		case 'n':
			cycles = atoi_positive("Number of VMs", optarg);
			break;
		case 'w':
			prewalk = false;
			break;
		case 'r':
			raw = true;
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
	if (!strcmp(mode, "latency"))
		test_latency(nr_vcpus, bytes, prewalk, raw);
	else if (!strcmp(mode, "create"))
		test_create(nr_vcpus, bytes, cycles);
	else
		ksft_exit_fail_msg("unknown mode %s\n", mode);
	ksft_finished();
}
