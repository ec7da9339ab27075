// SPDX-License-Identifier: GPL-2.0
/*
 * A VM built with nothing but KVM's ioctls: see include/raw_vm.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "raw_vm.h"

#define RAW_VM_REG(r)	(KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | \
			 KVM_REG_ARM_CORE_REG(r))

static const unsigned int raw_vm_code[] = {
	0xf9000023,	/* 0: str  x3, [x1]     */
	0x8b040021,	/*    add  x1, x1, x4   */
	0xf1000442,	/*    subs x2, x2, #1   */
	0x54ffffa1,	/*    b.ne 0            */
	0xf90000a3,	/*    str  x3, [x5]     */
	0x14000000,	/*    b    .            */
};

/* At VBAR_EL1 (0 after reset) + 0x200..0x380: exceptions taken from EL1. */
static const unsigned int raw_vm_vector[] = {
	0xf90000bf,	/* str xzr, [x5] */
	0x14000000,	/* b   .         */
};

/* KVM_CREATE_VM of `type`: 0, or the errno (nothing else to undo then). */
int raw_vm_create(struct raw_vm *r, unsigned long type)
{
	memset(r, 0, sizeof(*r));
	r->vcpu = -1;
	r->kvm = open("/dev/kvm", O_RDWR);
	if (r->kvm < 0)
		return errno;
	r->vm = ioctl(r->kvm, KVM_CREATE_VM, type);
	if (r->vm < 0) {
		int err = errno;

		close(r->kvm);
		return err;
	}
	return 0;
}

static int raw_vm_set_reg(struct raw_vm *r, unsigned long long id, unsigned long long val)
{
	struct kvm_one_reg reg = { .id = id, .addr = (unsigned long long)&val };

	return ioctl(r->vcpu, KVM_SET_ONE_REG, &reg);
}

/*
 * Memory, a vCPU and its registers, for a guest storing to `count` words `stride` bytes
 * apart in a memslot of `data_size` bytes at `data_gpa`: 0, or the errno.
 */
int raw_vm_setup(struct raw_vm *r, unsigned long long data_gpa, unsigned long long data_size,
		 unsigned long long count, unsigned long long stride)
{
	struct kvm_userspace_memory_region slot;
	struct kvm_vcpu_init init;
	int i;

	r->data_gpa = data_gpa;
	r->data_size = data_size;
	r->count = count;
	r->stride = stride;
	/* A memslot is whole host pages: the code's is one, of 4, 16 or 64 KiB. */
	r->code_size = getpagesize();
	r->mmio = data_gpa - r->code_size;
	r->code = mmap(NULL, r->code_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	r->data = mmap(NULL, data_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r->code == MAP_FAILED || r->data == MAP_FAILED)
		return ENOMEM;
	/*
	 * Page by page: a transparent huge page (2 MiB, 32 MiB or 512 MiB) behind a store
	 * would be mapped by a stage-2 block, without the last-level table the tests count.
	 */
	if (madvise(r->data, data_size, MADV_NOHUGEPAGE))
		return errno;
	memcpy(r->code, raw_vm_code, sizeof(raw_vm_code));
	for (i = 0x200; i < 0x400; i += 0x80)
		memcpy(r->code + i, raw_vm_vector, sizeof(raw_vm_vector));

	slot = (struct kvm_userspace_memory_region){ .slot = 0, .guest_phys_addr = 0,
		.memory_size = r->code_size, .userspace_addr = (unsigned long long)r->code };
	if (ioctl(r->vm, KVM_SET_USER_MEMORY_REGION, &slot))
		return errno;
	slot = (struct kvm_userspace_memory_region){ .slot = 1, .guest_phys_addr = data_gpa,
		.memory_size = data_size, .userspace_addr = (unsigned long long)r->data };
	if (ioctl(r->vm, KVM_SET_USER_MEMORY_REGION, &slot))
		return errno;

	r->vcpu = ioctl(r->vm, KVM_CREATE_VCPU, 0);
	if (r->vcpu < 0)
		return errno;
	r->run_size = ioctl(r->kvm, KVM_GET_VCPU_MMAP_SIZE, NULL);
	r->run = mmap(NULL, r->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, r->vcpu, 0);
	if (r->run == MAP_FAILED) {
		r->run = NULL;
		return errno;
	}
	if (ioctl(r->vm, KVM_ARM_PREFERRED_TARGET, &init) ||
	    ioctl(r->vcpu, KVM_ARM_VCPU_INIT, &init))
		return errno;
	if (raw_vm_set_reg(r, RAW_VM_REG(regs.pc), 0) ||
	    raw_vm_set_reg(r, RAW_VM_REG(regs.regs[1]), data_gpa) ||
	    raw_vm_set_reg(r, RAW_VM_REG(regs.regs[2]), count) ||
	    raw_vm_set_reg(r, RAW_VM_REG(regs.regs[3]), RAW_VM_MAGIC) ||
	    raw_vm_set_reg(r, RAW_VM_REG(regs.regs[4]), stride) ||
	    raw_vm_set_reg(r, RAW_VM_REG(regs.regs[5]), r->mmio))
		return errno;
	return 0;
}

/* KVM_RUN: 0, or its errno. */
int raw_vm_run(struct raw_vm *r)
{
	return ioctl(r->vcpu, KVM_RUN, NULL) ? errno : 0;
}

/* After a raw_vm_run() that returned 0: whether the guest did all it should. */
bool raw_vm_done(struct raw_vm *r)
{
	unsigned long long magic = RAW_VM_MAGIC, i;

	if (r->run->exit_reason != KVM_EXIT_MMIO || r->run->mmio.phys_addr != r->mmio ||
	    !r->run->mmio.is_write || memcmp(r->run->mmio.data, &magic, sizeof(magic)))
		return false;
	for (i = 0; i < r->count; i++)
		if (*(unsigned long long *)(r->data + i * r->stride) != magic)
			return false;
	return true;
}

void raw_vm_destroy(struct raw_vm *r)
{
	if (r->run)
		munmap(r->run, r->run_size);
	if (r->vcpu >= 0)
		close(r->vcpu);
	close(r->vm);
	close(r->kvm);
	if (r->code && r->code != MAP_FAILED)
		munmap(r->code, r->code_size);
	if (r->data && r->data != MAP_FAILED)
		munmap(r->data, r->data_size);
}
