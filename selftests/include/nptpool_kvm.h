/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The part of nptpool's selftest library built on the KVM selftest library
 * (lib/nptpool_kvm.c): a VM whose guest touches pages of a memslot at the top of its IPA
 * space, with its pool found in nptpool's debugfs.
 */
#ifndef NPTPOOL_KVM_H
#define NPTPOOL_KVM_H

#include "kvm_util.h"
#include "processor.h"
#include "test_util.h"
#include "ucall_common.h"

#include "nptpool.h"

#define TEST_SLOT		10
#define TEST_GVA		0xc0000000UL
#define BLOCK_SIZE		(2UL << 20)
#define MAX_VCPUS		16

gpa_t top_gpa_aligned(struct kvm_vm *vm, u64 pages, u64 align);
gpa_t top_gpa(struct kvm_vm *vm, u64 pages);

void guest_touch(gva_t base, u64 count, u64 stride_bytes);

struct vm_under_test {
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpu;
	gpa_t gpa;
	u64 count, stride;
	struct pool pool;
};

void vm_setup_pt(struct vm_under_test *t, struct vm_shape shape, u64 slot_pages, u64 count,
		 u64 stride, u64 pt_pages);
void vm_setup_shape(struct vm_under_test *t, struct vm_shape shape, u64 slot_pages, u64 count,
		    u64 stride);
void vm_setup(struct vm_under_test *t, u64 slot_pages, u64 count, u64 stride);
int vcpu_run_done(struct kvm_vcpu *vcpu);
void vm_enable_eager_split(struct kvm_vm *vm, u64 chunk);
int vm_run(struct vm_under_test *t);
bool small_vm_runs(void);
u64 fitted_pool_pages(u64 slot_pages, u64 count, u64 stride);

struct kvm_vm *vm_with_vcpus(int nvcpus, struct kvm_vcpu **vcpus, void *guest, u64 count);

void memslots_bound(struct kvm_vm *vm, int start_level, const u64 (*extra)[2], int n_extra,
		    u64 bound[NR_REGIONS]);
int create_vm_raw(unsigned long type);
void pool_now(struct pool *p);
u64 pool_pages_now(void);

#endif /* NPTPOOL_KVM_H */
