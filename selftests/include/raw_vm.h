/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A VM built with nothing but KVM's ioctls (lib/raw_vm.c, libc only), for what the KVM
 * selftest library cannot do: VMs of any IPA size (the library knows four), and programs
 * that must run when no VM can be created (the library creates one before main() to probe
 * the host).
 *
 * The guest runs with its MMU off from guest physical 0: it stores a value into `count`
 * words `stride` bytes apart from `data_gpa`, then writes it to `mmio`, an unmapped
 * address, which exits to the VMM.  An exception writes 0 there instead.  The code's
 * memslot is one host page; the data is mapped page by page (no transparent huge pages).
 */
#ifndef NPTPOOL_RAW_VM_H
#define NPTPOOL_RAW_VM_H

#include <stdbool.h>
#include <linux/kvm.h>

#define RAW_VM_MAGIC	0x6e7074706f6f6cULL

struct raw_vm {
	int kvm, vm, vcpu;
	struct kvm_run *run;
	long run_size;
	unsigned char *code, *data;
	unsigned long long code_size, data_gpa, data_size, mmio, count, stride;
};

int raw_vm_create(struct raw_vm *r, unsigned long type);
int raw_vm_setup(struct raw_vm *r, unsigned long long data_gpa, unsigned long long data_size,
		 unsigned long long count, unsigned long long stride);
int raw_vm_run(struct raw_vm *r);
bool raw_vm_done(struct raw_vm *r);
void raw_vm_destroy(struct raw_vm *r);

#endif /* NPTPOOL_RAW_VM_H */
