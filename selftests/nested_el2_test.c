// SPDX-License-Identifier: GPL-2.0
/*
 * nested_el2_test: nested virtualisation and the pool.  A vCPU with EL2
 * (KVM_ARM_VCPU_HAS_EL2) would have KVM build shadow stage-2 MMUs for its guest's guests,
 * with tables from the page allocator, past the bound of the VM's pool: KVM refuses such
 * vCPUs to VMs whose stage 2 comes from nptpool.
 *  - nptpool loaded: a VM gets a pool; its VM fd reports no KVM_CAP_ARM_EL2 while
 *    /dev/kvm does; KVM_ARM_VCPU_INIT with KVM_ARM_VCPU_HAS_EL2 fails with EOPNOTSUPP
 *    and KVM logs the refusal with this process's pid; a pool VM with an EL1 vCPU runs.
 *  - nptpool not loaded: the same VM runs a guest at vEL2 to its ucall.
 * Needs a nested-mode host (kvm-arm.mode=nested, a CPU with FEAT_NV2; SKIP otherwise).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nptpool_kvm.h"

static void guest_el2(void)
{
	GUEST_ASSERT_EQ(get_current_el(), 2);
	GUEST_DONE();
}

static void guest_el1(void)
{
	GUEST_ASSERT_EQ(get_current_el(), 1);
	GUEST_DONE();
}

/* Run to the guest's ucall: whether it was DONE. */
static bool run_to_done(struct kvm_vcpu *vcpu)
{
	struct ucall uc;

	vcpu_run(vcpu);
	switch (get_ucall(vcpu, &uc)) {
	case UCALL_DONE:
		return true;
	case UCALL_ABORT:
		REPORT_GUEST_ASSERT(uc);
	default:
		return false;
	}
}

static void init_with_el2(struct kvm_vm *vm, struct kvm_vcpu_init *init)
{
	kvm_get_default_vcpu_target(vm, init);
	init->features[0] |= BIT(KVM_ARM_VCPU_HAS_EL2);
}

static void test_pool_vm_refused(void)
{
	struct kvm_vcpu_init init;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	char needle[96], line[512];
	long before;
	int kmsg, ret, err;
	bool found;

	ksft_set_plan(4);
	kmsg = kmsg_open();
	before = newest_vm_id(NULL, 0);
	vm = vm_create(1);
	TEST_ASSERT(newest_vm_id(NULL, 0) > before, "the VM got no pool");
	ksft_test_result(!vm_check_cap(vm, KVM_CAP_ARM_EL2) && !vm_check_cap(vm, KVM_CAP_ARM_EL2_E2H0),
			 "a pool VM's fd reports no KVM_CAP_ARM_EL2 (nor _E2H0); /dev/kvm does\n");

	vcpu = __vm_vcpu_add(vm, 0);
	init_with_el2(vm, &init);
	ret = __vcpu_ioctl(vcpu, KVM_ARM_VCPU_INIT, &init);
	err = errno;
	ksft_test_result(ret == -1 && err == EOPNOTSUPP,
			 "KVM_ARM_VCPU_INIT with KVM_ARM_VCPU_HAS_EL2 on a pool VM fails with EOPNOTSUPP (%s)\n",
			 ret ? strerror(err) : "it succeeded");
	snprintf(needle, sizeof(needle), "kvm [%d]: nested virtualisation refused", getpid());
	found = kmsg_find(kmsg, needle, line, sizeof(line));
	if (found)
		ksft_print_msg("kernel: %s\n", line);
	ksft_test_result(found, "KVM logs the refusal with the VMM's pid and its cause\n");
	kvm_vm_free(vm);
	close(kmsg);

	before = newest_vm_id(NULL, 0);
	vm = vm_create_with_one_vcpu(&vcpu, guest_el1);
	TEST_ASSERT(newest_vm_id(NULL, 0) > before, "the VM got no pool");
	ksft_test_result(run_to_done(vcpu), "a pool VM with an EL1 vCPU runs on the nested host\n");
	kvm_vm_free(vm);
}

static void test_stock_vm_runs_el2(void)
{
	struct kvm_vcpu_init init;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;

	ksft_set_plan(1);
	vm = vm_create(1);
	TEST_ASSERT(vm_check_cap(vm, KVM_CAP_ARM_EL2), "a stock VM's fd reports no KVM_CAP_ARM_EL2");
	init_with_el2(vm, &init);
	vcpu = aarch64_vcpu_add(vm, 0, &init, guest_el2);
	kvm_arch_vm_finalize_vcpus(vm);
	ksft_test_result(run_to_done(vcpu),
			 "without nptpool, a VM runs a guest at vEL2 to its ucall\n");
	kvm_vm_free(vm);
}

int main(int argc, char *argv[])
{
	if (argc > 1) {
		printf("usage: %s\n (no options: with nptpool loaded, a vEL2 vCPU is refused; without, it runs)\n",
		       argv[0]);
		exit(strcmp(argv[1], "-h") ? KSFT_FAIL : KSFT_PASS);
	}
	ksft_print_header();
	TEST_REQUIRE(kvm_check_cap(KVM_CAP_ARM_EL2));
	if (nptpool_loaded())
		test_pool_vm_refused();
	else
		test_stock_vm_runs_el2();
	ksft_finished();
}
