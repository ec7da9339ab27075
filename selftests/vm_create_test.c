// SPDX-License-Identifier: GPL-2.0
/*
 * vm_create_test: what creating and destroying a VM costs; for `make bench`, stock KVM
 * and nptpool alike.  Times KVM_CREATE_VM, a memslot of -b bytes and -v vCPUs (create),
 * and closing it all until KVM has torn the VM down (destroy), -n times; with nptpool
 * loaded, create includes reserving the VM's pool (the whole pool when it is fixed, its
 * root when it is fitted) and destroy its release.  With -r, vCPU 0 also runs once in
 * between (first_run): a guest at the memslot's start, whose fetch is the VM's first
 * stage-2 fault and whose store outside every memslot exits as MMIO; that is where KVM
 * tops up the vCPU's memcache (stock) and where a fitted pool is reserved (nptpool), and
 * destroy then tears down the tables the faults built.  With -t, the guest first writes
 * one page per -t bytes of the rest of the memslot, each write a stage-2 fault, so that
 * destroy has those tables to tear down (one per 2 MiB at -t 2M) and a fitted pool
 * fits a memslot of that size.
 * Output: kselftest TAP, plus `bench: vm_create_us N us`, `bench: vm_first_run_us N us`
 * (with -r) and `bench: vm_destroy_us N us` per cycle, for selftests/run-bench.sh.  No
 * timing is ever judged: the one assertion is that every cycle went through; the test
 * fails only when KVM misbehaves.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"

#define SLOT_GPA	(1UL << 30)

/*
 * At SLOT_GPA, run with the MMU off: from the start, writes x1 pages x2 bytes apart from
 * x0; from GUEST_EXIT, only the store to IPA 0, which no memslot covers.
 */
static const u32 guest_code[] = {
	0xf9000000,	/* 1: str x0, [x0] */
	0x8b020000,	/* add x0, x0, x2 */
	0xf1000421,	/* subs x1, x1, #1 */
	0x54ffffa1,	/* b.ne 1b */
	0xd2800000,	/* mov x0, #0 */
	0xf9000000,	/* str x0, [x0] */
};
#define GUEST_EXIT	16

static u64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void set_core_reg(int vcpu_fd, u64 id, u64 val)
{
	struct kvm_one_reg reg = { .id = id, .addr = (u64)&val };
	int err = ioctl(vcpu_fd, KVM_SET_ONE_REG, &reg);

	TEST_ASSERT(!err, KVM_IOCTL_ERROR(KVM_SET_ONE_REG, err));
}

/* vCPU 0's first KVM_RUN, to the guest's MMIO exit, after `touches` writes. */
static void first_run(int kvm_fd, int vcpu_fd, u64 touches, u64 stride)
{
	int size = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0), err;
	struct kvm_run *run;

	TEST_ASSERT(size > 0, KVM_IOCTL_ERROR(KVM_GET_VCPU_MMAP_SIZE, size));
	run = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu_fd, 0);
	TEST_ASSERT(run != MAP_FAILED, "mmap kvm_run");
	/* The code's own page is not written: the first page written is a stride on. */
	set_core_reg(vcpu_fd, ARM64_CORE_REG(regs.pc), SLOT_GPA + (touches ? 0 : GUEST_EXIT));
	set_core_reg(vcpu_fd, ARM64_CORE_REG(regs.regs[0]), SLOT_GPA + stride);
	set_core_reg(vcpu_fd, ARM64_CORE_REG(regs.regs[1]), touches);
	set_core_reg(vcpu_fd, ARM64_CORE_REG(regs.regs[2]), stride);
	err = ioctl(vcpu_fd, KVM_RUN, NULL);
	TEST_ASSERT(!err, KVM_IOCTL_ERROR(KVM_RUN, err));
	TEST_ASSERT(run->exit_reason == KVM_EXIT_MMIO && run->mmio.is_write && !run->mmio.phys_addr,
		    "exit %u, not the guest's MMIO store to 0", run->exit_reason);
	munmap(run, size);
}

/*
 * What a VMM does to bring a VM up and down, with nothing else: KVM_CREATE_VM (stage-2
 * root, and nptpool's pool), one memslot of `bytes`, vCPUs created and initialised,
 * with `run` vCPU 0 run once (writing a page per `stride` of the memslot); then every fd closed, the VM's last, which tears it down before close()
 * returns.
 */
static void test_create(u32 nr_vcpus, u64 bytes, int cycles, bool run, u64 stride)
{
	int kvm_fd = open_kvm_dev_path_or_exit(), vm_fd, vcpu_fd[KVM_MAX_VCPUS];
	struct kvm_userspace_memory_region region = {
		.slot = 0,
		.guest_phys_addr = SLOT_GPA,
		.memory_size = bytes,
	};
	struct kvm_vcpu_init init;
	u64 t0, t1, t2, t3, touches = stride ? bytes / stride - 1 : 0;
	void *mem;
	int c, err;
	u32 v;

	ksft_set_plan(1);
	TEST_ASSERT(!stride || bytes / stride >= 2, "a memslot of %lu bytes has no page %lu bytes on",
		    bytes, stride);
	/* Sparse: only the pages the guest writes take memory. */
	mem = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	TEST_ASSERT(mem != MAP_FAILED, "mmap %lu bytes", bytes);
	/* A THP per page written would fill the host, and map blocks, not tables. */
	TEST_ASSERT(!madvise(mem, bytes, MADV_NOHUGEPAGE), "MADV_NOHUGEPAGE");
	TEST_ASSERT(bytes >= sizeof(guest_code), "a memslot of %lu bytes holds no guest", bytes);
	memcpy(mem, guest_code, sizeof(guest_code));
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
		if (run)
			first_run(kvm_fd, vcpu_fd[0], touches, stride);
		t2 = now_ns();
		for (v = 0; v < nr_vcpus; v++)
			close(vcpu_fd[v]);
		close(vm_fd);
		t3 = now_ns();
		printf("bench: vm_create_us %lu us\n", (t1 - t0) / 1000);
		if (run)
			printf("bench: vm_first_run_us %lu us\n", (t2 - t1) / 1000);
		printf("bench: vm_destroy_us %lu us\n", (t3 - t2) / 1000);
	}
	munmap(mem, bytes);
	close(kvm_fd);
	ksft_test_result_pass("%d VMs of %u vCPUs and a %lu KiB memslot created,%s destroyed (%lu pages written)\n",
			      cycles, nr_vcpus, bytes >> 10, run ? " run once," : "", touches);
}

static void usage(const char *name)
{
	printf("usage: %s [-h] [-r [-t stride]] [-v vcpus] [-b bytes] [-n cycles]\n", name);
	printf(" -r: run vCPU 0 once, to its guest's first exit, before the teardown\n");
	printf(" -t: with -r, the guest first writes one page per this many bytes, e.g. 2M\n");
	printf(" -v: vCPUs (default 1)\n");
	printf(" -b: the memslot, untouched but for the guest's code, e.g. 4M (default 4M)\n");
	printf(" -n: VMs to create and destroy (default 5)\n");
}

int main(int argc, char *argv[])
{
	u64 bytes = 4UL << 20;
	u32 nr_vcpus = 1;
	int cycles = 5, opt;
	bool run = false;
	u64 stride = 0;

	while ((opt = getopt(argc, argv, "hrt:v:b:n:")) != -1) {
		switch (opt) {
		case 'r':
			run = true;
			break;
		case 't':
			stride = parse_size(optarg);
			TEST_ASSERT(stride >= 4096 && !(stride & (stride - 1)),
				    "-t: a power of two of at least 4K");
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
		case 'h':
			usage(argv[0]);
			exit(KSFT_PASS);
		default:
			usage(argv[0]);
			exit(KSFT_FAIL);
		}
	}

	ksft_print_header();
	TEST_ASSERT(run || !stride, "-t needs -r");
	test_create(nr_vcpus, bytes, cycles, run, stride);
	ksft_finished();
}
