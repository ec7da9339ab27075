// SPDX-License-Identifier: GPL-2.0
/*
 * reload_race_test: VMs created and run one after another for -t seconds while another
 * process (pool_reload_race.sh) unloads and loads nptpool: every VM runs its guest; a VM
 * created with a pool keeps it to its end, one created stock stays stock; some VMs were
 * created with nptpool loaded and some with it gone.  Runs with nptpool loaded or not.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "nptpool_kvm.h"

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
		struct ucall uc;
		bool had;
		gpa_t gpa;
		u64 i;

		vm = vm_create_with_one_vcpu(&vcpu, guest_touch);
		had = has_pool();
		gpa = top_gpa(vm, 512);
		vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, gpa, TEST_SLOT, 512, 0);
		for (i = 0; i < 16; i++)
			virt_pg_map(vm, TEST_GVA + i * 32 * vm->page_size, gpa + i * 32 * vm->page_size);
		vcpu_args_set(vcpu, 3, TEST_GVA, 16, 32 * vm->page_size);
		ran += !_vcpu_run(vcpu) && get_ucall(vcpu, &uc) == UCALL_DONE;
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

static void usage(const char *name)
{
	printf("usage: %s [-h] [-t seconds]\n", name);
	printf(" -t: seconds to create VMs for (default 20)\n");
}

int main(int argc, char *argv[])
{
	int seconds = 20, opt;

	while ((opt = getopt(argc, argv, "ht:")) != -1) {
		switch (opt) {
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

	ksft_print_header();
	test_reload(seconds);
	ksft_finished();
}
