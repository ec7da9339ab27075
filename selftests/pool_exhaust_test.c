// SPDX-License-Identifier: GPL-2.0
/*
 * pool_exhaust_test: with nptpool loaded with a small pud_pages or pmd_pages, a VM whose
 * guest outgrows that region (-r) halts: its faulting KVM_RUN fails with ENOMEM, and so
 * does every later one, while the VMM can still read the vCPU's registers; debugfs shows
 * it halted with the region used up; a second VM is not halted and keeps running and
 * faulting.  With -s, the guest touches a memslot far larger than the pool can map,
 * across its whole length.  For the pmd region at the default IPA size, a VM of two
 * vCPUs halts too: the vCPU spinning in the guest, which needs no table, is kicked out
 * and its KVM_RUN fails with ENOMEM as well.
 *
 * Spans come from the host's page size: a pmd-region table maps 2 MiB, 32 MiB or
 * 512 MiB, a pud-region table 1 GiB, 64 GiB or 4 TiB (4K, 16K, 64K pages).  A pud region
 * exists only where the level below the root is not the last: for -r pud the VMs get the
 * IPA size of -i, or by default the library's default one if its stage-2 has a pud
 * region, else the smallest of the library's sizes whose stage-2 has three levels or more.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nptpool_kvm.h"

/* The KVM selftest library's guest modes with 4 KiB guest pages, by IPA size. */
static const struct {
	unsigned int ipa;
	enum vm_guest_mode mode;
} ipa_modes[] = {
	{ 36, VM_MODE_P36V48_4K },
	{ 40, VM_MODE_P40V48_4K },
	{ 48, VM_MODE_P48V48_4K },
	{ 52, VM_MODE_P52V48_4K },
};

static int ipa_mode(unsigned int ipa)
{
	int i;

	for (i = 0; i < (int)ARRAY_SIZE(ipa_modes); i++)
		if (ipa_modes[i].ipa == ipa)
			return ipa_modes[i].mode;
	return -1;
}

static bool ipa_has_pud(unsigned int ipa)
{
	u64 root_pages;
	int level;

	nptpool_s2_shape(ipa, &level, &root_pages);
	return nptpool_s2_has_pud(level);
}

/* The shape of the VMs for `region` and `ipa` (0: pick one, see the top), or skip. */
static struct vm_shape pick_shape(enum region region, unsigned int ipa)
{
	unsigned int max_ipa = kvm_check_cap(KVM_CAP_ARM_VM_IPA_SIZE);
	int i, mode;

	if (!ipa) {
		ipa = vm_guest_mode_params[VM_MODE_DEFAULT].pa_bits;
		for (i = 0; region == PUD && !ipa_has_pud(ipa); i++) {
			if (i == ARRAY_SIZE(ipa_modes) || ipa_modes[i].ipa > max_ipa)
				ksft_exit_skip("no IPA size up to the host's %u bits has a stage-2 with a pud region with %lu KiB pages\n",
					       max_ipa, nptpool_page_size() >> 10);
			ipa = ipa_modes[i].ipa;
		}
	}
	mode = ipa_mode(ipa);
	if (mode < 0 || ipa > max_ipa)
		ksft_exit_skip("no %u-bit IPA guest mode on this host (the library's: 36, 40, 48, 52 bits; the host's limit: %u)\n",
			       ipa, max_ipa);
	ksft_print_msg("%u-bit IPA, %lu KiB host pages: %s pud region\n", ipa,
		       nptpool_page_size() >> 10, ipa_has_pud(ipa) ? "a" : "no");
	return VM_SHAPE(mode);
}

/* vCPU 0 touches `count` pages `stride` bytes apart; vCPU 1 (count 0) spins. */
static void guest_touch_or_spin(gva_t base, u64 count, u64 stride)
{
	if (count)
		guest_touch(base, count, stride);
	for (;;)
		;
}

struct spinner {
	struct kvm_vcpu *vcpu;
	int err;
	bool done;
};

static void *spinner_run(void *arg)
{
	struct spinner *s = arg;

	s->err = _vcpu_run(s->vcpu) ? errno : 0;
	__atomic_store_n(&s->done, true, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * A VM of two vCPUs: vCPU 1 spins in the guest, where it needs no table and has no
 * reason to exit, while vCPU 0 touches `count` pages one pmd-region table apart, more
 * than the region holds.  The halt must reach vCPU 1 too.
 */
static void test_kick(u64 count)
{
	u64 span = nptpool_table_span(3), slot, i, waited;
	struct kvm_vcpu *vcpus[2];
	struct spinner spin = {};
	struct kvm_vm *vm;
	pthread_t thread;
	gpa_t gpa;
	int err;

	vm = __vm_create_with_vcpus(VM_SHAPE_DEFAULT, 2, count * 512, guest_touch_or_spin,
				    vcpus);
	slot = (count - 1) * span + nptpool_page_size();
	gpa = top_gpa_aligned(vm, slot / vm->page_size, span > (1UL << 30) ? span : 1UL << 30);
	vm_userspace_mem_region_add(vm, VM_MEM_SRC_ANONYMOUS, gpa, TEST_SLOT,
				    slot / vm->page_size, 0);
	for (i = 0; i < count; i++)
		virt_pg_map(vm, TEST_GVA + i * span, gpa + i * span);
	vcpu_args_set(vcpus[0], 3, TEST_GVA, count, span);
	vcpu_args_set(vcpus[1], 3, TEST_GVA, 0, 0);

	spin.vcpu = vcpus[1];
	pthread_create(&thread, NULL, spinner_run, &spin);
	/* Let vCPU 1 reach its loop in the guest before vCPU 0 halts the VM. */
	sleep(2);
	err = _vcpu_run(vcpus[0]) ? errno : 0;
	for (waited = 0; waited < 300 && !__atomic_load_n(&spin.done, __ATOMIC_ACQUIRE); waited++)
		usleep(100 * 1000);
	ksft_print_msg("two vCPUs: vCPU 0 touched %lu pages %lu MiB apart: KVM_RUN %s; vCPU 1, spinning in the guest: %s after %lu ms\n",
		       count, span >> 20, err ? strerror(err) : "succeeded",
		       spin.done ? (spin.err ? strerror(spin.err) : "returned 0") : "still running",
		       waited * 100);
	ksft_test_result(err == ENOMEM, "two vCPUs: the faulting vCPU's KVM_RUN fails with ENOMEM\n");
	if (!spin.done)
		ksft_exit_fail_msg("the spinning vCPU was not kicked out of the guest within 30 s\n");
	pthread_join(thread, NULL);
	ksft_test_result(spin.err == ENOMEM,
			 "two vCPUs: the other vCPU, spinning in the guest, is kicked out and its KVM_RUN fails with ENOMEM\n");
	kvm_vm_free(vm);
}

/*
 * Outgrow `region`: touching one page per table span of the region (one per pmd-region
 * span, or per pud-region span) needs one new table of the region per touch.
 */
static void test_exhaust(enum region region, u64 slot_gib, unsigned int ipa, bool kick)
{
	struct vm_shape shape = pick_shape(region, ipa);
	struct vm_under_test a, b;
	u64 span, count, stride, slot, pc;
	int err, err2, level;

	vm_setup_shape(&b, shape, 1, 1, 1);		/* the bystander */
	level = start_level(&b.pool);
	if (region == PUD && !b.pool.pages[PUD])
		ksft_exit_fail_msg("the VM's stage-2 starts at level %d but its pool has no pud region\n",
				   level);
	/* pud tables sit one level below the root, pmd ones at the last level. */
	span = nptpool_table_span(region == PUD ? level + 1 : 3);
	ksft_set_plan(kick ? 8 : 6);
	count = b.pool.pages[region] + 2;
	if (slot_gib) {
		/*
		 * A memslot far larger than the pool maps, touched across its whole length:
		 * still one new table of the region per touch.
		 */
		slot = slot_gib << 30;
		stride = slot / count / span * span;
	} else {
		/*
		 * Up to one host page past the last touch: the library takes memslots
		 * below 2^32 guest pages (16 TiB), and 4 touches 4 TiB apart must fit.
		 */
		stride = span;
		slot = (count - 1) * stride + nptpool_page_size();
	}
	TEST_ASSERT(stride >= span, "a %lu GiB memslot cannot hold %lu touches %lu KiB apart",
		    slot_gib, count, span >> 10);
	vm_setup_pt(&a, shape, slot / b.vm->page_size, count, stride / b.vm->page_size,
		    2 * count);
	ksft_print_msg("memslot of %lu MiB at 0x%lx, %lu touches %lu MiB apart (a %s-region table maps %lu MiB)\n",
		       slot >> 20, a.gpa, count, stride >> 20, region_names[region], span >> 20);
	dump_pool(&a.pool, "before the run");

	err = vm_run(&a);
	ksft_print_msg("%s region of %lu pages, guest touched %lu pages %lu KiB apart: KVM_RUN %s\n",
		       region_names[region], a.pool.pages[region], count, stride >> 10,
		       err ? strerror(err) : "succeeded");
	ksft_test_result(err == ENOMEM, "the faulting KVM_RUN fails with ENOMEM\n");
	err = vm_run(&a);
	err2 = vm_run(&a);
	ksft_test_result(err == ENOMEM && err2 == ENOMEM,
			 "later KVM_RUNs of the halted VM fail with ENOMEM too (%s, %s)\n",
			 strerror(err), strerror(err2));
	err = __vcpu_get_reg(a.vcpu, ARM64_CORE_REG(regs.pc), &pc) ? errno : 0;
	ksft_test_result(!err, "the VMM can still read the halted vCPU's registers (pc 0x%lx%s%s)\n",
			 err ? 0 : pc, err ? ": " : "", err ? strerror(err) : "");
	read_pool(&a.pool);
	dump_pool(&a.pool, "after the halt");
	ksft_test_result(vm_halted(&a.pool) &&
			 a.pool.used[region] == a.pool.pages[region],
			 "debugfs shows the VM halted with its %s region used up\n",
			 region_names[region]);
	ksft_test_result(!vm_halted(&b.pool), "the other VM is not halted\n");
	ksft_test_result(vm_run(&b) == 0, "the other VM still runs and faults\n");
	kvm_vm_free(a.vm);
	kvm_vm_free(b.vm);
	if (kick)
		test_kick(count);
}

static void usage(const char *name)
{
	printf("usage: %s [-h] [-r pud|pmd] [-s GiB] [-i bits]\n", name);
	printf(" -r: the region to exhaust (default pmd)\n");
	printf(" -i: the VMs' IPA size, 36, 40, 48 or 52 (default: the library's, 40, or for\n"
	       "     -r pud where that has no pud region the smallest size that has one)\n");
	printf(" -s: a memslot of this many GiB, touched across its length (default: just\n"
	       "     large enough for the touches)\n");
}

int main(int argc, char *argv[])
{
	enum region region = PMD;
	u64 slot_gib = 0;
	unsigned int ipa = 0;
	int opt;

	while ((opt = getopt(argc, argv, "hr:s:i:")) != -1) {
		switch (opt) {
		case 'r':
			if (!strcmp(optarg, "pud")) {
				region = PUD;
			} else if (!strcmp(optarg, "pmd")) {
				region = PMD;
			} else {
				usage(argv[0]);
				exit(KSFT_FAIL);
			}
			break;
		case 's':
			slot_gib = atoi_positive("Memslot GiB", optarg);
			break;
		case 'i':
			ipa = atoi_positive("IPA bits", optarg);
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
	NPTPOOL_REQUIRE();
	test_exhaust(region, slot_gib, ipa, region == PMD && !slot_gib && !ipa);
	ksft_finished();
}
