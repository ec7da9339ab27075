// SPDX-License-Identifier: GPL-2.0
/*
 * nptpool's window on the kernel's C side: KVM's stage-2 table allocator hooks and the
 * pool's memory.  The only file of the module that includes KVM headers; the allocator
 * itself is in Rust (src/vm.rs, src/ptalloc.rs).
 */

#include <linux/build_bug.h>
#include <linux/cgroup.h>
#include <linux/gfp.h>
#include <linux/kvm_host.h>
#include <linux/log2.h>
#include <linux/memcontrol.h>
#include <linux/mm.h>
#include <linux/sched.h>
#include <linux/stddef.h>
#include <linux/string.h>
#include <asm/kvm_mmu.h>
#include <asm/virt.h>

#include "nptpool_kvm.h"

/*
 * src/kvm.rs declares these again and pins them to the same numbers: a change to either
 * definition fails its own side's build until its numbers change, and those numbers are
 * the other side's too.
 */
static_assert(NPTPOOL_HOST_VHE == 1);
static_assert(NPTPOOL_HOST_NVHE == 2);
static_assert(NPTPOOL_HOST_PROTECTED == 3);
static_assert(offsetof(struct nptpool_vm_info, kvm) == 0);
static_assert(sizeof_field(struct nptpool_vm_info, kvm) == 8);
static_assert(offsetof(struct nptpool_vm_info, pid) == 8);
static_assert(sizeof_field(struct nptpool_vm_info, pid) == 4);
static_assert(offsetof(struct nptpool_vm_info, start_level) == 12);
static_assert(sizeof_field(struct nptpool_vm_info, start_level) == 1);
static_assert(offsetof(struct nptpool_vm_info, pgd_pages) == 16);
static_assert(sizeof_field(struct nptpool_vm_info, pgd_pages) == 4);
static_assert(sizeof(struct nptpool_vm_info) == 24);
static_assert(KVM_S2_TABLE_BEST_EFFORT == 0);
static_assert(KVM_S2_TABLE_FAULT_RETRY == 1);
static_assert(KVM_S2_TABLE_FAULT == 2);
static_assert(NPTPOOL_NO_MEMSLOT == 0xffffffff);

/*
 * The CPU capabilities behind these helpers are final once userspace runs, so the answer
 * cannot change while the module is loaded.
 */
int nptpool_kvm_host_mode(void)
{
	if (is_protected_kvm_enabled())
		return NPTPOOL_HOST_PROTECTED;
	if (has_vhe())
		return NPTPOOL_HOST_VHE;
	return NPTPOOL_HOST_NVHE;
}

/* The module's state, handed to Rust with each VM; set while registered. */
static const void *nptpool_ctx;

/* Runs in the VMM's KVM_CREATE_VM ioctl: may sleep. */
static void *nptpool_kvm_vm_init(struct kvm *kvm, s8 start_level,
				 unsigned int pgd_pages)
{
	struct nptpool_vm_info info = {
		.kvm = kvm,
		.pid = task_tgid_nr(current),
		.start_level = start_level,
		.pgd_pages = pgd_pages,
	};
	void *vm;
	int err;

	err = nptpool_vm_create(nptpool_ctx, &info, &vm);
	return err ? ERR_PTR(err) : vm;
}

/*
 * Runs with kvm->mmu_lock held (read or write) or at VM creation: must not sleep.  Only
 * a fault with no table on its way back may halt the VM; KVM copes without the other
 * tables, or retries (see vm.rs).
 */
static void *nptpool_kvm_zalloc_table(void *vm, s8 level, unsigned int pages,
				      enum kvm_s2_table_need need)
{
	u64 phys = nptpool_vm_alloc_table(vm, level, pages, need);

	return phys ? phys_to_virt(phys) : NULL;
}

/* From any context, RCU callbacks in softirq included: vm.rs takes no lock for it. */
static void nptpool_kvm_free_table(void *vm, void *table)
{
	nptpool_vm_free_table(vm, virt_to_phys(table));
}

/*
 * At the VM's first KVM_RUN, under kvm->slots_lock, with the root as its only table: may
 * sleep.  A new root moves the VM to a pool fitted to its memslots.
 */
static void *nptpool_kvm_vm_fit(void *vm)
{
	u64 root;
	int ret;

	ret = nptpool_vm_fit(vm, &root);
	if (ret < 0)
		return ERR_PTR(ret);
	return ret ? phys_to_virt(root) : NULL;
}

/* Under kvm->slots_lock, before the memslot is in use: may sleep. */
static int nptpool_kvm_prepare_memslot(void *vm, const struct kvm_memory_slot *old,
				       const struct kvm_memory_slot *new)
{
	u32 slot = (u32)new->as_id << 16 | new->id;

	return nptpool_vm_prepare_memslot(vm, slot, old, gfn_to_gpa(new->base_gfn),
					  (u64)new->npages << PAGE_SHIFT);
}

/* Pools sized by the module parameters: nothing to do at the first run, nor for memslots. */
static const struct kvm_s2_table_allocator nptpool_allocator_fixed = {
	.owner = THIS_MODULE,
	.vm_init = nptpool_kvm_vm_init,
	.zalloc_table = nptpool_kvm_zalloc_table,
	.free_table = nptpool_kvm_free_table,
	.vm_destroy = nptpool_vm_destroy,
};

/* Pools fitted to each VM's memslots as it first runs (fit=1). */
static const struct kvm_s2_table_allocator nptpool_allocator_fit = {
	.owner = THIS_MODULE,
	.vm_init = nptpool_kvm_vm_init,
	.zalloc_table = nptpool_kvm_zalloc_table,
	.free_table = nptpool_kvm_free_table,
	.vm_fit = nptpool_kvm_vm_fit,
	.vm_fitted = nptpool_vm_fitted,
	.vm_provision = nptpool_vm_provision,
	.prepare_memslot = nptpool_kvm_prepare_memslot,
	.vm_destroy = nptpool_vm_destroy,
};

static const struct kvm_s2_table_allocator *nptpool_allocator;

int nptpool_kvm_register(const void *ctx, bool fit)
{
	nptpool_ctx = ctx;
	nptpool_allocator = fit ? &nptpool_allocator_fit : &nptpool_allocator_fixed;
	return kvm_register_s2_table_allocator(nptpool_allocator);
}

void nptpool_kvm_unregister(void)
{
	kvm_unregister_s2_table_allocator(nptpool_allocator);
}

/*
 * A physically contiguous pool of at least @pages pages, charged to the caller's memory
 * cgroup and counted in SecPageTables like stock stage-2 tables; *@reserved is how many
 * it holds.  Zeroed if @zero: a pool sized for what its VM can map (a fitted one, or a
 * root) is zeroed here, before the VM runs, so that a fault taking a fresh table pays
 * for no clear_page(); otherwise vm.rs zeroes each page as it hands it out, so that a
 * fixed pool, mostly never used, costs no zeroing of what is not.
 *
 * Pools the buddy allocator can serve are one whole block of the order that fits them:
 * freed, the block merges again.  Trimming it to size, as alloc_pages_exact() does,
 * hands the tail to other allocations, which then keep the block from merging when the
 * pool goes back: every VM would break up one 4 MiB block for good, until no pool fits.
 * Larger pools come from alloc_contig_pages(), which charges them with __GFP_ACCOUNT
 * (patch 5 of patches/).  Either way each page ends up an order-0 page with its own
 * share of the charge, which it takes along when free_contig_range() frees it, and
 * which stays with the cgroup it was charged to (its objcg) whatever the VMM does
 * meanwhile.  Neither allocation invokes the OOM killer (__GFP_RETRY_MAYFAIL): a VMM
 * whose cgroup cannot take the pool gets ENOMEM.  *@charged says whether the pages
 * carry a charge: not for a VMM in the root cgroup, nor with cgroup.memory=nokmem.
 */
/* What a pool of @pages takes, and charges: a whole buddy block when one can serve it. */
static u64 nptpool_pool_footprint(u64 pages)
{
	return pages <= MAX_ORDER_NR_PAGES ? 1ULL << get_order(pages << PAGE_SHIFT) : pages;
}

/*
 * Zeroes a pool from alloc_contig_pages() a page at a time, where __GFP_ZERO would zero
 * it in one go with its pageblocks still isolated: a fitted pool's size has no upper
 * bound (a 1 TiB memslot's is 2 GiB), and this runs in the VM's first KVM_RUN.  Not
 * where the page allocator zeroed the pages already, at allocation or as they were freed.
 */
static void nptpool_pool_zero(struct page *page, u64 pages)
{
	unsigned long pfn = page_to_pfn(page);
	u64 i;

	if (want_init_on_alloc(0) || want_init_on_free())
		return;
	for (i = 0; i < pages; i++) {
		clear_page(page_address(pfn_to_page(pfn + i)));
		cond_resched();
	}
}

int nptpool_pool_reserve(u64 pages, bool zero, u64 *phys, u64 *reserved, bool *charged)
{
	const gfp_t gfp = GFP_KERNEL_ACCOUNT | __GFP_RETRY_MAYFAIL | __GFP_NOWARN;
	struct page *page;
	unsigned int order;

	if (!pages || pages > totalram_pages())
		return -ENOMEM;

	*reserved = nptpool_pool_footprint(pages);
	if (pages <= MAX_ORDER_NR_PAGES) {
		order = ilog2(*reserved);
		page = alloc_pages(zero ? gfp | __GFP_ZERO : gfp, order);
		if (!page)
			return -ENOMEM;
		/* Table pages need their own refcounts: KVM counts entries in them. */
		split_page(page, order);
	} else {
		page = alloc_contig_pages(pages, gfp, numa_node_id(), NULL);
		if (!page)
			return -ENOMEM;
		if (zero)
			nptpool_pool_zero(page, pages);
	}
	*charged = PageMemcgKmem(page);

	/*
	 * SecPageTables of the VMM's cgroup, through the first page's: every page's unless
	 * the VMM moved while patch 5 charged the range block by block.  The release takes
	 * the count back from the same page, so it never drifts.
	 */
	mod_lruvec_page_state(page, NR_SECONDARY_PAGETABLE, *reserved);
	*phys = page_to_phys(page);
	return 0;
}

/*
 * After a reservation of @pages failed, in the reserving task: whether its memory
 * cgroup, or one above it, has less room than the reservation would have charged (the
 * whole buddy block for a small pool) left under its memory.max, which is then the
 * likely cause.  If so, that cgroup's path goes to @path (@len bytes, NUL terminated)
 * and its limit and charge, in pages, to *@max and *@usage.  The cgroup is the mm
 * owner's, the charge's is the task's: they differ only for cgroup v1 threads.
 */
bool nptpool_memcg_limit(u64 pages, char *path, size_t len, u64 *max, u64 *usage)
{
	bool limited = false;
#ifdef CONFIG_MEMCG
	struct mem_cgroup *memcg, *iter;

	pages = nptpool_pool_footprint(pages);

	memcg = get_mem_cgroup_from_mm(current->mm);
	/* The reference on @memcg pins its ancestors. */
	for (iter = memcg; iter && !mem_cgroup_is_root(iter);
	     iter = parent_mem_cgroup(iter)) {
		unsigned long limit = READ_ONCE(iter->memory.max);
		unsigned long charge = page_counter_read(&iter->memory);

		if (charge < limit && limit - charge >= pages)
			continue;
		*max = limit;
		*usage = charge;
		if (cgroup_path(iter->css.cgroup, path, len) < 0)
			strscpy(path, "?", len);
		limited = true;
		break;
	}
	mem_cgroup_put(memcg);
#endif
	return limited;
}

/*
 * Only once KVM holds no reference on any page of the pool: it has torn the tables down,
 * the last RCU callback freeing unlinked ones has run, and each page is back to the one
 * reference the pool keeps.  KVM used page->private while a page was a table.  The
 * range goes back in blocks as large as its alignment allows, straight to the buddy lists:
 * freed page by page, some pages would wait on per-CPU lists, be handed to the next
 * small allocations and keep the block from merging.  A page someone still references
 * is left allocated, never freed under its user, and one whose references someone
 * else dropped (KVM putting a table more often than it got it) is left alone rather
 * than freed twice; either warns.
 */
void nptpool_pool_release(u64 phys, u64 pages)
{
	unsigned long pfn = PHYS_PFN(phys), run = pfn;
	struct page *page = phys_to_page(phys);
	u64 i, referenced = 0, lost = 0;

	mod_lruvec_page_state(page, NR_SECONDARY_PAGETABLE, -(long)pages);
	for (i = 0; i < pages; i++) {
		struct page *p = pfn_to_page(pfn + i);
		int count = page_count(p);

		referenced += count > 1;
		if (count > 0) {
			set_page_private(p, 0);
			continue;
		}
		/*
		 * Someone dropped the pool's own reference: the page is not the pool's any
		 * more, not even its page->private, which the buddy allocator uses if the
		 * page went back to it.  Leave it.
		 */
		lost++;
		if (pfn + i > run)
			free_contig_range(run, pfn + i - run);
		run = pfn + i + 1;
	}
	if (pfn + pages > run)
		free_contig_range(run, pfn + pages - run);
	WARN_ONCE(referenced || lost,
		  "nptpool: %llu of %llu pool pages still referenced at release, %llu with no reference left\n",
		  referenced, pages, lost);
}

/*
 * A page before it is handed out as a table, one KVM gave back or a fresh one of a pool
 * reserved unzeroed: no one else uses it.
 */
void nptpool_page_clear(u64 phys)
{
	clear_page(phys_to_virt(phys));
}

/* Whether the page at @phys reads all zeroes: the debug check of a zeroed pool. */
bool nptpool_page_is_zero(u64 phys)
{
	return !memchr_inv(phys_to_virt(phys), 0, PAGE_SIZE);
}

/*
 * For debugfs: the guest-physical ranges KVM may map in @kvm's stage-2, in bytes, as
 * start and length pairs into @ranges, which has room for @len pairs: each memslot's,
 * and, for a GICv2 guest whose CPU interface has an address, the whole interface, which
 * vgic_v2_map_resources() maps itself (whether or not this host traps it instead, and
 * whether or not the vGIC got ready after: a bound may be high, never low).  The memslot
 * @except, numbered as KVM_SET_USER_MEMORY_REGION numbers it, is left out: it is on its
 * way to new addresses.  Returns how many ranges there are, which may exceed @len.  A
 * snapshot: memslots may change as soon as the SRCU read ends, unless the caller holds
 * kvm->slots_lock.  @kvm, its memslots and its SRCU live while its pool does, and the
 * pool's debugfs files, whose reads call this, go before it.
 */
u64 nptpool_kvm_memslots(void *vm_kvm, u64 *ranges, u64 len, u32 except)
{
	struct kvm *kvm = vm_kvm;
	struct vgic_dist *dist = &kvm->arch.vgic;
	struct kvm_memory_slot *slot;
	phys_addr_t cpu_base;
	int as, bkt, idx;
	u64 n = 0;

	idx = srcu_read_lock(&kvm->srcu);
	for (as = 0; as < kvm_arch_nr_memslot_as_ids(kvm); as++) {
		kvm_for_each_memslot(slot, bkt, __kvm_memslots(kvm, as)) {
			if (((u32)as << 16 | slot->id) == except)
				continue;
			if (n < len) {
				ranges[2 * n] = gfn_to_gpa(slot->base_gfn);
				ranges[2 * n + 1] = (u64)slot->npages << PAGE_SHIFT;
			}
			n++;
		}
	}
	srcu_read_unlock(&kvm->srcu, idx);

	/* Unset, the base is VGIC_ADDR_UNDEF, all ones (a private header's). */
	cpu_base = READ_ONCE(dist->vgic_cpu_base);
	if (READ_ONCE(dist->vgic_model) == KVM_DEV_TYPE_ARM_VGIC_V2 &&
	    cpu_base != (phys_addr_t)-1) {
		if (n < len) {
			ranges[2 * n] = cpu_base;
			ranges[2 * n + 1] = KVM_VGIC_V2_CPU_SIZE;
		}
		n++;
	}
	return n;
}

/*
 * For the line that says why a pool of @pages could not be reserved: the host's free
 * pages outside CMA areas, which a pool cannot use, and whether they are fewer than the
 * reservation takes.  Plenty free and no pool means that no range of its size was free
 * or could be freed.  A snapshot, and counting ZONE_MOVABLE too, which a pool cannot use
 * either: good enough for a message, never for a decision.
 */
u64 nptpool_free_pages(u64 pages, bool *short_of_memory)
{
	unsigned long free = global_zone_page_state(NR_FREE_PAGES);
	unsigned long cma = global_zone_page_state(NR_FREE_CMA_PAGES);

	free = free > cma ? free - cma : 0;
	*short_of_memory = free < nptpool_pool_footprint(pages);
	return free;
}

/* For debugfs: 1, the pool's own reference, plus KVM's (and anyone else's) on the page. */
int nptpool_page_count(u64 phys)
{
	return page_count(phys_to_page(phys));
}
