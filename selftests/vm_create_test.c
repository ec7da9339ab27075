// SPDX-License-Identifier: GPL-2.0
/*
 * vm_create_test: what creating and destroying a VM costs; for `make bench`, stock KVM
 * and nptpool alike.  Times KVM_CREATE_VM, a memslot of -b bytes and -v vCPUs (create),
 * and closing it all until KVM has torn the VM down (destroy), -n times; with nptpool
 * loaded, create includes reserving and zeroing the VM's pool and destroy its release.
 * Output: kselftest TAP, plus `bench: vm_create_us N us` and `bench: vm_destroy_us N us`
 * per cycle, for selftests/run-bench.sh.  No timing is ever judged: the one assertion is
 * that every cycle went through; the test fails only when KVM misbehaves.
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
	printf("usage: %s [-h] [-v vcpus] [-b bytes] [-n cycles]\n", name);
	printf(" -v: vCPUs (default 1)\n");
	printf(" -b: the memslot, left untouched, e.g. 4M (default 4M)\n");
	printf(" -n: VMs to create and destroy (default 5)\n");
}

int main(int argc, char *argv[])
{
	u64 bytes = 4UL << 20;
	u32 nr_vcpus = 1;
	int cycles = 5, opt;

	while ((opt = getopt(argc, argv, "hv:b:n:")) != -1) {
		switch (opt) {
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
	test_create(nr_vcpus, bytes, cycles);
	ksft_finished();
}
