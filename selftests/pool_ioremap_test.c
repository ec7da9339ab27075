// SPDX-License-Identifier: GPL-2.0
/*
 * pool_ioremap_test: kvm_phys_addr_ioremap() is best effort for the pool.  On a GICv2
 * host KVM maps a GICv2 VM's virtual CPU interface into its stage 2 at the VM's first
 * KVM_RUN (vgic_v2_map_resources()), with tables from the VM's pool: one of the level
 * below the root and, with a root at level 1 (40-bit IPA), one pmd-region table; with a
 * root at level 0 (48-bit IPA), two.  With a one-page pmd region:
 *  - a 48-bit-IPA VM's mapping finds the pmd region empty for its second table: the
 *    ioremap fails with -ENOMEM, which KVM_RUN returns, as stock KVM does when its
 *    memcache is short; the pool's allocator is not halted and nptpool logs no
 *    exhaustion.  KVM's vGIC code then marks the VM dead (kvm_vgic_map_resources(), as
 *    on stock KVM for any failure there): later KVM_RUNs fail with EIO;
 *  - a 40-bit-IPA VM's mapping takes the region's one page and succeeds; its guest's
 *    first stage-2 fault then finds the region empty and halts the VM: KVM_RUN fails
 *    with ENOMEM, and so do later ones, debugfs shows it halted and nptpool logs the
 *    exhaustion.
 * Needs a GICv2 host (QEMU gic-version=2: run-qemu.sh GIC=2; SKIP otherwise) and nptpool
 * loaded with pmd_pages=1.
 *
 * With -f, at the default, fitted pools: for both shapes, the pool reserved at the first
 * KVM_RUN is fitted to the memslots and the CPU interface (debugfs's bound counts its
 * tables), the interface is mapped from it and the guest runs, every table handed out
 * within the bound.
 */
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nptpool_kvm.h"

/* Where the VMs' vGIC lives: clear of memslot 0, in a 2 MiB block of its own. */
#define GICD_GPA	0x8000000UL
#define GICC_GPA	0x8010000UL

static void guest_code(void)
{
	GUEST_DONE();
}

struct gic_vm {
	struct kvm_vm *vm;
	struct kvm_vcpu *vcpu;
	int gic;
	struct pool pool;
	char name[64];
};

/* A VM of the given shape with one vCPU and a GICv2, found in nptpool's debugfs. */
static void gic_vm_create(struct gic_vm *g, enum vm_guest_mode mode)
{
	long before = newest_vm_id(NULL, 0);
	u64 dist = GICD_GPA, cpu = GICC_GPA;

	g->vm = __vm_create_shape_with_one_vcpu(VM_SHAPE(mode), &g->vcpu, 0, guest_code);
	TEST_ASSERT(newest_vm_id(g->pool.dir, sizeof(g->pool.dir)) > before,
		    "no nptpool debugfs directory for the new VM");
	snprintf(g->name, sizeof(g->name), "%s", basename(g->pool.dir));
	if (__kvm_test_create_device(g->vm, KVM_DEV_TYPE_ARM_VGIC_V2))
		ksft_exit_skip("KVM cannot emulate a GICv2 here (a GICv2 host: run-qemu.sh GIC=2)\n");
	g->gic = kvm_create_device(g->vm, KVM_DEV_TYPE_ARM_VGIC_V2);
	kvm_device_attr_set(g->gic, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V2_ADDR_TYPE_DIST, &dist);
	kvm_device_attr_set(g->gic, KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_VGIC_V2_ADDR_TYPE_CPU, &cpu);
	kvm_device_attr_set(g->gic, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_CTRL_INIT, NULL);
	read_pool(&g->pool);
}

/* KVM_RUN once: 0 when the guest finished, else the errno. */
static int gic_vm_run(struct gic_vm *g)
{
	struct ucall uc;

	if (_vcpu_run(g->vcpu))
		return errno;
	TEST_ASSERT_KVM_EXIT_REASON(g->vcpu, KVM_EXIT_MMIO);
	if (get_ucall(g->vcpu, &uc) == UCALL_ABORT)
		REPORT_GUEST_ASSERT(uc);
	TEST_ASSERT_EQ(uc.cmd, UCALL_DONE);
	return 0;
}

static const char *err_str(int err)
{
	return err ? strerror(err) : "the guest ran";
}

static void gic_vm_free(struct gic_vm *g)
{
	close(g->gic);
	kvm_vm_free(g->vm);
}

/*
 * The kernel log since a point, for the two messages a run may log: a reader each, so
 * that a search for one does not read past the other.
 */
struct kmsg_since {
	int remap, exhausted;
};

static void kmsg_since_now(struct kmsg_since *k)
{
	k->remap = kmsg_open();
	k->exhausted = kmsg_open();
}

static void kmsg_since_close(struct kmsg_since *k)
{
	close(k->remap);
	close(k->exhausted);
}

/* Whether the kernel logged `needle` (with `name`, if given) on `kmsg`'s reader. */
static bool logged(int kmsg, const char *needle, const char *name)
{
	char line[512];

	while (kmsg_find(kmsg, needle, line, sizeof(line))) {
		if (!name || strstr(line, name)) {
			ksft_print_msg("kernel: %s\n", line);
			return true;
		}
	}
	return false;
}

static bool remap_failed(struct kmsg_since *k)
{
	return logged(k->remap, "Unable to remap VGIC CPU to VCPU", NULL);
}

static bool exhaustion_logged(struct kmsg_since *k, const char *vm)
{
	return logged(k->exhausted, "region exhausted", vm);
}

/* A fitted pool holds the CPU interface's tables: the VM of `mode` runs within its bound. */
static void test_fitted(enum vm_guest_mode mode, const char *shape)
{
	const u64 cpuif[1][2] = { { GICC_GPA, KVM_VGIC_V2_CPU_SIZE } };
	u64 with[NR_REGIONS], without[NR_REGIONS];
	struct kmsg_since k;
	struct gic_vm g;
	int err, top;

	gic_vm_create(&g, mode);
	kmsg_since_now(&k);
	err = gic_vm_run(&g);
	read_pool(&g.pool);
	read_footprint(&g.pool);
	dump_pool(&g.pool, "after the first KVM_RUN");
	top = start_level(&g.pool);
	memslots_bound(g.vm, top, cpuif, 1, with);
	memslots_bound(g.vm, top, NULL, 0, without);
	ksft_test_result(!err && !remap_failed(&k) && !strcmp(g.pool.sizing, "fitted"),
			 "%s: the first KVM_RUN reserves the fitted pool, maps the GICv2 CPU interface from it and the guest runs (%s, sizing %s)\n",
			 shape, err_str(err), g.pool.sizing);
	ksft_test_result(g.pool.bound[PUD] == with[PUD] && g.pool.bound[PMD] == with[PMD] &&
			 with[PMD] > without[PMD] &&
			 g.pool.pages[PUD] >= with[PUD] && g.pool.pages[PMD] >= with[PMD] &&
			 g.pool.in_use[PUD] <= with[PUD] && g.pool.in_use[PMD] <= with[PMD],
			 "%s: the pool fits the memslots and the interface (bound pud %lu pmd %lu, memslots alone pud %lu pmd %lu; regions %lu %lu; in use %lu %lu)\n",
			 shape, g.pool.bound[PUD], g.pool.bound[PMD], without[PUD], without[PMD],
			 g.pool.pages[PUD], g.pool.pages[PMD], g.pool.in_use[PUD], g.pool.in_use[PMD]);
	kmsg_since_close(&k);
	gic_vm_free(&g);
}

int main(int argc, char *argv[])
{
	struct gic_vm deep, shallow;
	struct kmsg_since k;
	int err;

	if (argc > 1 && strcmp(argv[1], "-f")) {
		printf("usage: %s [-f]\n (nptpool loaded with pmd_pages=1, a GICv2 host;\n -f: at the default, fitted pools)\n",
		       argv[0]);
		exit(strcmp(argv[1], "-h") ? KSFT_FAIL : KSFT_PASS);
	}
	ksft_print_header();
	NPTPOOL_REQUIRE();
	if (argc > 1) {
		ksft_set_plan(4);
		test_fitted(VM_MODE_P48V48_4K, "48-bit IPA");
		test_fitted(VM_MODE_P40V48_4K, "40-bit IPA");
		ksft_finished();
	}

	gic_vm_create(&deep, VM_MODE_P48V48_4K);
	if (deep.pool.pages[PMD] != 1)
		ksft_exit_skip("the pmd region has %lu pages: run with nptpool's pmd_pages=1\n",
			       deep.pool.pages[PMD]);
	ksft_set_plan(7);

	/* 48 bits: the interface needs two pmd-region tables, the region has one. */
	kmsg_since_now(&k);
	err = gic_vm_run(&deep);
	read_pool(&deep.pool);
	dump_pool(&deep.pool, "after the first KVM_RUN");
	ksft_test_result(err == ENOMEM && remap_failed(&k) && deep.pool.used[PMD] == 1,
			 "48-bit IPA: mapping the GICv2 CPU interface finds no table, KVM_RUN fails with ENOMEM (%s)\n",
			 err_str(err));
	ksft_test_result(!vm_halted(&deep.pool) && !exhaustion_logged(&k, deep.name),
			 "that neither halts the pool's allocator nor logs an exhaustion\n");
	kmsg_since_close(&k);
	err = gic_vm_run(&deep);
	ksft_test_result(err == EIO,
			 "KVM's vGIC marks the VM dead then, as on stock KVM: KVM_RUN fails with EIO (%s)\n",
			 err_str(err));
	gic_vm_free(&deep);

	/* 40 bits: the interface takes the one pmd-region table, the guest's fault finds none. */
	gic_vm_create(&shallow, VM_MODE_P40V48_4K);
	kmsg_since_now(&k);
	err = gic_vm_run(&shallow);
	read_pool(&shallow.pool);
	dump_pool(&shallow.pool, "after the first KVM_RUN");
	ksft_test_result(!remap_failed(&k) &&
			 shallow.pool.used[PUD] == 1 && shallow.pool.used[PMD] == 1,
			 "40-bit IPA: the GICv2 CPU interface is mapped with tables from the pool\n");
	{
		/* KVM maps the whole interface itself (vgic_v2_map_resources()). */
		const u64 cpuif[1][2] = { { GICC_GPA, KVM_VGIC_V2_CPU_SIZE } };
		u64 with[NR_REGIONS], without[NR_REGIONS];
		int top = start_level(&shallow.pool);

		read_footprint(&shallow.pool);
		memslots_bound(shallow.vm, top, cpuif, 1, with);
		memslots_bound(shallow.vm, top, NULL, 0, without);
		ksft_test_result(shallow.pool.bound[PUD] == with[PUD] &&
				 shallow.pool.bound[PMD] == with[PMD] &&
				 with[PMD] == without[PMD] + 1,
				 "debugfs's bound counts the CPU interface's table: pud %lu pmd %lu (memslots alone: pud %lu pmd %lu)\n",
				 shallow.pool.bound[PUD], shallow.pool.bound[PMD], without[PUD],
				 without[PMD]);
	}
	ksft_test_result(err == ENOMEM && vm_halted(&shallow.pool) &&
			 exhaustion_logged(&k, shallow.name),
			 "the guest's first stage-2 fault then finds no table: KVM_RUN fails with ENOMEM and the VM halts (%s)\n",
			 err_str(err));
	kmsg_since_close(&k);
	err = gic_vm_run(&shallow);
	ksft_test_result(err == ENOMEM, "later KVM_RUNs fail with ENOMEM too (%s)\n",
			 err_str(err));
	gic_vm_free(&shallow);
	ksft_finished();
}
