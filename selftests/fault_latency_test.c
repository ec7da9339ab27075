// SPDX-License-Identifier: GPL-2.0
/*
 * fault_latency_test: what one stage-2 fault costs as the guest sees it; for `make bench`,
 * stock KVM and nptpool alike.  Every one of -v vCPUs writes once to each 4 KiB page of
 * its own slice of a fresh anonymous memslot of -b bytes, so every write takes exactly
 * one stage-2 fault, and reads the virtual counter (CNTVCT_EL0, behind an ISB) right
 * before and after it.  The host converts ticks to ns with CNTFRQ_EL0 and prints the
 * percentiles over all faults of all vCPUs (-r: every fault too).  Output: kselftest TAP,
 * plus one line per measurement, `bench: METRIC VALUE UNIT`, for selftests/run-bench.sh.
 * No timing is ever judged: the one assertion is that every vCPU timed its faults; the
 * test fails only when the guest or KVM misbehaves.
 *
 * -s 2M writes one page per 2 MiB instead: the slot's host memory is never a THP
 * (VM_MEM_SRC_ANONYMOUS is MADV_NOHUGEPAGE), so every timed fault is a table fault, one
 * that allocates the last-level stage-2 table of its 2 MiB before mapping the page: the
 * faults where stock KVM's memcache and nptpool's bump allocator differ.
 *
 * The guest's stage-1 page tables live in memslot 0, which the guest has not touched
 * either: the first write to each 2 MiB of the test slot would fault twice, once on the
 * stage-1 table the walk reads and once on the page.  An untimed AT S1E1W on each 2 MiB
 * of the slice first makes the walk fault alone (-w leaves it out, to see the
 * difference); the stage-2 tables of the test slot itself are still built by the timed
 * writes, so their allocation is part of what is measured.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nptpool_kvm.h"

/* Shared with the guest (sync_global_to_guest). */
static u64 guest_pages_per_vcpu;	/* the pages each vCPU writes, guest_stride apart */
static u64 guest_page_size;
static u64 guest_stride;
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
	gva_t base = TEST_GVA + idx * guest_pages_per_vcpu * guest_stride;
	u64 *deltas = (u64 *)guest_deltas + idx * guest_pages_per_vcpu;
	u64 i, t0, t1;

	/* Untimed: fault in this vCPU's deltas and the stage-1 walk of its slice. */
	for (i = 0; i < guest_pages_per_vcpu; i++)
		WRITE_ONCE(deltas[i], 0);
	for (i = 0; guest_prewalk && i < guest_pages_per_vcpu * guest_stride; i += BLOCK_SIZE) {
		asm volatile("at s1e1w, %0" : : "r"(base + i) : "memory");
		isb();
	}

	for (i = 0; i < guest_pages_per_vcpu; i++) {
		volatile u64 *p = (volatile u64 *)(base + i * guest_stride);

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

static void test_latency(u32 nr_vcpus, u64 bytes, u64 stride, bool prewalk, bool raw)
{
	struct vcpu_thread threads[KVM_MAX_VCPUS];
	struct kvm_vcpu *vcpus[KVM_MAX_VCPUS];
	u64 npages, slot_pages, total, freq, i, *ticks, *ns;
	struct kvm_vm *vm;
	gpa_t gpa;
	u32 v;

	ksft_set_plan(1);
	TEST_ASSERT(stride >= 4096 && !(stride & (stride - 1)),
		    "-s %lu: a power of two, 4 KiB or more", stride);
	npages = bytes / stride / nr_vcpus;
	TEST_ASSERT(npages > 0, "-b %lu gives no page per vCPU at -s %lu", bytes, stride);
	total = npages * nr_vcpus;
	slot_pages = total * (stride / 4096);
	/* The test slot's pages, for which memslot 0 must hold the stage-1 tables. */
	vm = __vm_create_with_vcpus(VM_SHAPE_DEFAULT, nr_vcpus, slot_pages, guest_code, vcpus);
	TEST_ASSERT(vm->page_size == 4096, "4 KiB guest pages expected, got %u",
		    vm->page_size);

	/* 1 GiB aligned at the top of the IPA space, clear of memslot 0. */
	gpa = top_gpa(vm, slot_pages);
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, gpa, TEST_SLOT, slot_pages, 0);
	virt_map(vm, TEST_GVA, gpa, slot_pages);

	guest_pages_per_vcpu = npages;
	guest_page_size = vm->page_size;
	guest_stride = stride;
	guest_prewalk = prewalk;
	guest_deltas = vm_alloc(vm, total * sizeof(u64), KVM_UTIL_MIN_VADDR);
	sync_global_to_guest(vm, guest_pages_per_vcpu);
	sync_global_to_guest(vm, guest_page_size);
	sync_global_to_guest(vm, guest_stride);
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

	ksft_print_msg("%u vCPUs, %lu faults of 4 KiB pages %lu bytes apart (%lu per vCPU), counter %lu Hz, prewalk %s\n",
		       nr_vcpus, total, stride, npages, freq, prewalk ? "on" : "off");
	printf("bench: faults %lu count\n", total);
	printf("bench: p50_ns %lu ns\n", percentile(ns, total, 50));
	printf("bench: p90_ns %lu ns\n", percentile(ns, total, 90));
	printf("bench: p99_ns %lu ns\n", percentile(ns, total, 99));
	printf("bench: max_ns %lu ns\n", ns[total - 1]);
	ksft_test_result(ns[0] > 0, "every vCPU timed its %lu stage-2 faults\n", npages);
	free(ns);
	kvm_vm_free(vm);
}

static void usage(const char *name)
{
	printf("usage: %s [-h] [-v vcpus] [-b bytes] [-s stride] [-w] [-r]\n", name);
	printf(" -v: vCPUs (default 1)\n");
	printf(" -b: test memory, all vCPUs together, e.g. 4M (default 4M); each vCPU faults\n"
	       "     in its 1/v share, one 4 KiB page per fault\n");
	printf(" -s: bytes from one written page to the next, a power of two (default 4K);\n"
	       "     2M: one page per 2 MiB, so every fault allocates a stage-2 table\n");
	printf(" -w: without the untimed stage-1 walk first (each first write to a 2 MiB\n"
	       "     range then also faults on the guest's own page table)\n");
	printf(" -r: also print every fault's latency ('bench: fault_ns N ns')\n");
}

int main(int argc, char *argv[])
{
	bool prewalk = true, raw = false;
	u64 bytes = 4UL << 20, stride = 4096;
	u32 nr_vcpus = 1;
	int opt;

	while ((opt = getopt(argc, argv, "hv:b:s:wr")) != -1) {
		switch (opt) {
		case 'v':
			nr_vcpus = atoi_positive("Number of vCPUs", optarg);
			TEST_ASSERT(nr_vcpus <= KVM_MAX_VCPUS, "at most %d vCPUs", KVM_MAX_VCPUS);
			break;
		case 'b':
			bytes = parse_size(optarg);
			break;
		case 's':
			stride = parse_size(optarg);
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
	test_latency(nr_vcpus, bytes, stride, prewalk, raw);
	ksft_finished();
}
