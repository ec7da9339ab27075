/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The C/Rust boundary of nptpool.  Everything that needs kernel C types lives on the C
 * side (src/nptpool_kvm.c); the Rust side sees only these plain functions, integers and
 * opaque pointers, declared again in src/kvm.rs (KVM) and src/reservation.rs (pool
 * memory).  Keep them in step: both sides pin the enum's values and the struct's layout
 * to the same numbers at build time.
 */
#ifndef NPTPOOL_KVM_H
#define NPTPOOL_KVM_H

#include <linux/types.h>

/* How the host runs KVM, as chosen at boot (kvm-arm.mode=). */
enum nptpool_host_mode {
	NPTPOOL_HOST_VHE = 1,
	NPTPOOL_HOST_NVHE = 2,
	NPTPOOL_HOST_PROTECTED = 3,
};

/* No memslot, where nptpool_kvm_memslots() may leave one out. */
#define NPTPOOL_NO_MEMSLOT	U32_MAX

/* What nptpool learns about a VM when KVM creates it. */
struct nptpool_vm_info {
	void *kvm;		/* the VM, for nptpool_kvm_memslots() */
	s32 pid;		/* the VMM's process id */
	s8 start_level;		/* stage-2 start level, -1..2 */
	u32 pgd_pages;		/* concatenated root pages, 1..16 */
};

/* Implemented in C, called from Rust. */
int nptpool_kvm_host_mode(void);
int nptpool_kvm_register(const void *ctx, bool fit);
void nptpool_kvm_unregister(void);
int nptpool_pool_reserve(u64 pages, bool zero, u64 *phys, u64 *reserved, bool *charged);
void nptpool_pool_release(u64 phys, u64 pages);
void nptpool_page_clear(u64 phys);
bool nptpool_page_is_zero(u64 phys);
bool nptpool_memcg_limit(u64 pages, char *path, size_t len, u64 *max, u64 *usage);
int nptpool_page_count(u64 phys);
u64 nptpool_free_pages(u64 pages, bool *short_of_memory);
u64 nptpool_kvm_memslots(void *kvm, u64 *ranges, u64 len, u32 except);

/* Implemented in Rust, called from the KVM callbacks in C. */
int nptpool_vm_create(const void *ctx, const struct nptpool_vm_info *info,
		      void **vm);
u64 nptpool_vm_alloc_table(void *vm, s8 level, u32 pages, int need);
void nptpool_vm_free_table(void *vm, u64 phys);
int nptpool_vm_fit(void *vm, u64 *root);
void nptpool_vm_fitted(void *vm);
int nptpool_vm_provision(void *vm, u64 base, u64 size);
int nptpool_vm_prepare_memslot(void *vm, u32 slot, bool moved, u64 start, u64 len);
void nptpool_vm_destroy(void *vm);

#endif /* NPTPOOL_KVM_H */
