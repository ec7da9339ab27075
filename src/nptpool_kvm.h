/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The C/Rust boundary of nptpool.  Everything that needs KVM's types lives on the C side
 * (src/nptpool_kvm.c); the Rust side sees only these plain functions and integers, declared
 * again in src/kvm.rs.  Keep the two in step.
 */
#ifndef NPTPOOL_KVM_H
#define NPTPOOL_KVM_H

/* How the host runs KVM, as chosen at boot (kvm-arm.mode=). */
enum nptpool_host_mode {
	NPTPOOL_HOST_VHE = 1,
	NPTPOOL_HOST_NVHE = 2,
	NPTPOOL_HOST_PROTECTED = 3,
};

int nptpool_kvm_host_mode(void);

#endif /* NPTPOOL_KVM_H */
