// SPDX-License-Identifier: GPL-2.0
/*
 * nptpool's selftest library, the part built on the KVM selftest library: see
 * include/nptpool_kvm.h.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "nptpool_kvm.h"

/* The gpa of `pages` pages at the top of the VM's IPA space, rounded down to `align`. */
gpa_t top_gpa_aligned(struct kvm_vm *vm, u64 pages, u64 align)
{
	return ((vm->max_gfn - pages) * vm->page_size) & ~(align - 1);
}

/* ... 1 GiB aligned, which keeps it clear of memslot 0 and fits any block mapping. */
gpa_t top_gpa(struct kvm_vm *vm, u64 pages)
{
	return top_gpa_aligned(vm, pages, 1UL << 30);
}

/* One guest: touch `count` pages, `stride_bytes` apart, then report. */
void guest_touch(gva_t base, u64 count, u64 stride_bytes)
{
	u64 i;

	for (i = 0; i < count; i++)
		*(volatile u64 *)(base + i * stride_bytes) = i + 1;
	GUEST_DONE();
}

/*
 * Create a VM whose guest touches `count` pages `stride` pages apart in a memslot of
 * `slot_pages` at the top of the IPA space; find its pool in debugfs.  Touches far apart
 * need a guest page table each: `pt_pages` more of them than the library budgets.
 */
void vm_setup_pt(struct vm_under_test *t, struct vm_shape shape, u64 slot_pages, u64 count,
		 u64 stride, u64 pt_pages)
{
	long before = newest_vm_id(NULL, 0);
	u64 psz, i, align, host_pages;

	/* The library sizes memslot 0 for the page tables of its "extra" memory. */
	t->vm = __vm_create_shape_with_one_vcpu(shape, &t->vcpu, pt_pages * 512 / 2,
						guest_touch);
	psz = t->vm->page_size;
	t->count = count;
	t->stride = stride * psz;
	/* A memslot is whole host pages, which may be larger than the guest's. */
	host_pages = nptpool_page_size() > psz ? nptpool_page_size() / psz : 1;
	slot_pages = (slot_pages + host_pages - 1) / host_pages * host_pages;
	/*
	 * Aligned as the stride is (1 GiB at least): touches one stage-2 table span apart
	 * each land in a table of their own, whatever the host's page size.
	 */
	align = t->stride & -t->stride;
	t->gpa = top_gpa_aligned(t->vm, slot_pages, align > (1UL << 30) ? align : 1UL << 30);
	vm_userspace_mem_region_add(t->vm, VM_MEM_SRC_ANONYMOUS, t->gpa, TEST_SLOT,
				    slot_pages, 0);
	for (i = 0; i < count; i++)
		virt_pg_map(t->vm, TEST_GVA + i * t->stride, t->gpa + i * t->stride);
	vcpu_args_set(t->vcpu, 3, TEST_GVA, count, t->stride);

	TEST_ASSERT(newest_vm_id(t->pool.dir, sizeof(t->pool.dir)) > before,
		    "no nptpool debugfs directory for the new VM");
	read_pool(&t->pool);
}

void vm_setup_shape(struct vm_under_test *t, struct vm_shape shape, u64 slot_pages, u64 count,
		    u64 stride)
{
	vm_setup_pt(t, shape, slot_pages, count, stride, 0);
}

void vm_setup(struct vm_under_test *t, u64 slot_pages, u64 count, u64 stride)
{
	vm_setup_shape(t, VM_SHAPE_DEFAULT, slot_pages, count, stride);
}

/* Run `vcpu` until its guest reports done; 0 when it did, else KVM_RUN's errno. */
int vcpu_run_done(struct kvm_vcpu *vcpu)
{
	struct ucall uc;

	if (_vcpu_run(vcpu))
		return errno;
	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_MMIO);
	if (get_ucall(vcpu, &uc) == UCALL_ABORT)
		REPORT_GUEST_ASSERT(uc);
	TEST_ASSERT_EQ(uc.cmd, UCALL_DONE);
	return 0;
}

/* Run the guest; 0 when it finished, else KVM_RUN's errno. */
int vm_run(struct vm_under_test *t)
{
	return vcpu_run_done(t->vcpu);
}

/*
 * A VM created through the library that gets a pool and runs a guest touching 16 pages
 * 32 pages apart, then is destroyed: whether the guest ran.
 */
bool small_vm_runs(void)
{
	struct vm_under_test t;
	int err;

	vm_setup(&t, 512, 16, 32);
	err = vm_run(&t);
	kvm_vm_free(t.vm);
	return !err;
}

/*
 * The pages a fitted pool takes for a VM of vm_setup()'s shape with these arguments: a
 * probe VM runs once (its first KVM_RUN reserves the pool) and is destroyed.  Fails the
 * test unless nptpool fits pools (fit=1).
 */
u64 fitted_pool_pages(u64 slot_pages, u64 count, u64 stride)
{
	struct vm_under_test probe;

	vm_setup(&probe, slot_pages, count, stride);
	TEST_ASSERT(!vm_run(&probe), "the probe VM runs");
	read_pool(&probe.pool);
	read_footprint(&probe.pool);
	kvm_vm_free(probe.vm);
	if (strcmp(probe.pool.sizing, "fitted"))
		nptpool_die("nptpool does not fit pools (fit=1): the sizing is '%s'\n",
			    probe.pool.sizing);
	return probe.pool.reserved_pages;
}

/*
 * A VM of `nvcpus` vCPUs: vCPU i runs `guest` with (its base, `count`), to touch `count`
 * pages 2 MiB apart (each needs a new pmd-region table) in its own part of one memslot.
 */
struct kvm_vm *vm_with_vcpus(int nvcpus, struct kvm_vcpu **vcpus, void *guest, u64 count)
{
	u64 per = count * BLOCK_SIZE, slot_pages, i;
	struct kvm_vm *vm;
	gpa_t gpa;
	int v;

	/* Counted as extra memory, the touched pages get room for their guest page tables. */
	vm = __vm_create_with_vcpus(VM_SHAPE_DEFAULT, nvcpus, nvcpus * count * 512, guest, vcpus);
	slot_pages = nvcpus * per / vm->page_size;
	gpa = top_gpa(vm, slot_pages);
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, gpa, TEST_SLOT, slot_pages, 0);
	for (v = 0; v < nvcpus; v++) {
		for (i = 0; i < count; i++)
			virt_pg_map(vm, TEST_GVA + v * per + i * BLOCK_SIZE,
				    gpa + v * per + i * BLOCK_SIZE);
		vcpu_args_set(vcpus[v], 2, TEST_GVA + v * per, count);
	}
	return vm;
}

/* KVM_CREATE_VM of `type` on a fresh /dev/kvm fd: the VM fd, or -1 with errno set. */
int create_vm_raw(unsigned long type)
{
	int kvm = open_kvm_dev_path_or_exit();
	int fd = ioctl(kvm, KVM_CREATE_VM, type);
	int err = errno;

	close(kvm);
	errno = err;
	return fd;
}

/* The pool nptpool gives a new VM of the default type, read from a VM made for it. */
void pool_now(struct pool *p)
{
	int fd;

	fd = create_vm_raw(0);
	TEST_ASSERT(fd >= 0, "KVM_CREATE_VM: %s", strerror(errno));
	TEST_ASSERT(newest_vm_id(p->dir, sizeof(p->dir)) >= 0, "no pool for the VM");
	read_pool(p);
	close(fd);
}

u64 pool_pages_now(void)
{
	struct pool p;

	pool_now(&p);
	return p.reserved_pages;
}

/*
 * The bound nptpool's debugfs should show for @vm (`footprint`), computed here from the
 * selftest library's own list of its memslots plus @n_extra ranges (start, length) that
 * KVM maps itself: at each level below the root at @start_level, the aligned spans of
 * one table that some range touches, a span two ranges share counted once.
 */
void memslots_bound(struct kvm_vm *vm, int start_level, const u64 (*extra)[2], int n_extra,
		    u64 bound[NR_REGIONS])
{
	u64 start[32], end[32], first, last, prev, t;
	struct userspace_mem_region *region;
	int level, n = 0, i, j, ctr;
	bool counted;

	hash_for_each(vm->regions.slot_hash, ctr, region, slot_node) {
		TEST_ASSERT(n < 32, "more memslots than memslots_bound() takes");
		start[n] = region->region.guest_phys_addr;
		end[n++] = region->region.guest_phys_addr + region->region.memory_size;
	}
	for (i = 0; i < n_extra; i++) {
		TEST_ASSERT(n < 32, "more ranges than memslots_bound() takes");
		start[n] = extra[i][0];
		end[n++] = extra[i][0] + extra[i][1];
	}
	for (i = 1; i < n; i++)
		for (j = i; j > 0 && start[j - 1] > start[j]; j--) {
			t = start[j], start[j] = start[j - 1], start[j - 1] = t;
			t = end[j], end[j] = end[j - 1], end[j - 1] = t;
		}
	memset(bound, 0, NR_REGIONS * sizeof(*bound));
	for (level = start_level + 1; level <= 3; level++) {
		u64 span = nptpool_table_span(level), tables = 0;

		counted = false;
		prev = 0;
		for (i = 0; i < n; i++) {
			if (end[i] == start[i])
				continue;
			first = start[i] / span;
			last = (end[i] - 1) / span;
			if (counted && first <= prev)
				first = prev + 1;
			if (first <= last)
				tables += last - first + 1;
			if (!counted || last > prev)
				prev = last;
			counted = true;
		}
		bound[level == start_level + 1 && level < 3 ? PUD : PMD] += tables;
	}
}

/*
 * Eager splitting in chunks of @chunk bytes.  KVM takes the chunk size only while the VM
 * has no memslot: the library's slot 0 goes and comes back around it.
 */
void vm_enable_eager_split(struct kvm_vm *vm, u64 chunk)
{
	struct userspace_mem_region *slot0 = memslot2region(vm, 0);
	struct kvm_userspace_memory_region2 gone = slot0->region;

	gone.memory_size = 0;
	vm_ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &gone);
	vm_enable_cap(vm, KVM_CAP_ARM_EAGER_SPLIT_CHUNK_SIZE, chunk);
	vm_ioctl(vm, KVM_SET_USER_MEMORY_REGION2, &slot0->region);
}
