// SPDX-License-Identifier: GPL-2.0
/*
 * vm_hold: a tool for the shell tests, with nptpool loaded or not.  One VM's guest faults
 * in half of -n pages, then the program prints "ready" and holds the VM until SIGUSR1;
 * then the guest faults in the other half, which must succeed.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "nptpool_kvm.h"

/* Touch half the pages, wait for the host, touch the other half. */
static void guest_touch_halves(gva_t base, u64 count, u64 page_size)
{
	u64 i;

	for (i = 0; i < count; i++) {
		if (i == count / 2)
			GUEST_SYNC(1);
		*(volatile u64 *)(base + i * page_size) = i + 1;
	}
	GUEST_DONE();
}

static volatile sig_atomic_t resumed;

static void on_usr1(int sig)
{
	resumed = 1;
}

static void hold(u64 npages)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	struct ucall uc;
	gpa_t gpa;

	ksft_set_plan(1);
	signal(SIGUSR1, on_usr1);
	vm = vm_create_with_one_vcpu(&vcpu, guest_touch_halves);
	gpa = top_gpa(vm, npages);
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, gpa, TEST_SLOT, npages, 0);
	virt_map(vm, TEST_GVA, gpa, npages);
	vcpu_args_set(vcpu, 3, TEST_GVA, npages, (u64)vm->page_size);
	vcpu_run(vcpu);
	TEST_ASSERT_EQ(get_ucall(vcpu, &uc), UCALL_SYNC);
	ksft_print_msg("ready\n");
	fflush(stdout);
	while (!resumed)
		pause();
	vcpu_run(vcpu);
	ksft_test_result(get_ucall(vcpu, &uc) == UCALL_DONE,
			 "the held VM faults %lu more pages after resuming\n", npages / 2);
	kvm_vm_free(vm);
}

static void usage(const char *name)
{
	printf("usage: %s [-h] [-n pages]\n", name);
	printf(" -n: guest pages to touch, half before \"ready\", half after SIGUSR1 (default 4096)\n");
}

int main(int argc, char *argv[])
{
	u64 npages = 4096;
	int opt;

	while ((opt = getopt(argc, argv, "hn:")) != -1) {
		switch (opt) {
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

	ksft_print_header();
	hold(npages);
	ksft_finished();
}
