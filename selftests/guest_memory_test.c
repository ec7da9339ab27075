// SPDX-License-Identifier: GPL-2.0
/*
 * guest_memory_test: a guest touches every page of a fresh memslot, so that each access
 * takes a stage-2 fault and KVM builds the tables for it; the host then checks that what
 * the guest wrote is in its memory, writes a second pattern, and the guest checks that.
 *
 * With nptpool loaded, every table built here comes from the VM's pool: the test passing
 * says that the pool's tables translate correctly in both directions.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "nptpool_kvm.h"

#define WORDS_PER_PAGE(psz)	((psz) / sizeof(u64))

/* Distinct per page and per side, so a page mapped twice or to the wrong frame shows. */
static u64 guest_pattern(u64 seed, u64 page)
{
	return seed ^ (page * 0x9e3779b97f4a7c15ULL);
}

static u64 host_pattern(u64 seed, u64 page)
{
	return ~guest_pattern(seed, page);
}

static void guest_code(gva_t base, u64 npages, u64 page_size, u64 seed)
{
	u64 words = WORDS_PER_PAGE(page_size);
	u64 i;

	/* First and last word: both ends of every page must land in the same frame. */
	for (i = 0; i < npages; i++) {
		u64 *p = (u64 *)(base + i * page_size);

		p[0] = guest_pattern(seed, i);
		p[words - 1] = guest_pattern(seed, i);
	}
	GUEST_SYNC(1);

	for (i = 0; i < npages; i++) {
		u64 *p = (u64 *)(base + i * page_size);

		GUEST_ASSERT_EQ(p[1], host_pattern(seed, i));
	}
	GUEST_DONE();
}

static void usage(const char *name)
{
	printf("usage: %s [-h] [-n pages] [-s backing_src]\n", name);
	printf(" -n: guest pages to touch (default 512)\n");
	backing_src_help("-s");
}

/* Runs the vCPU to its next ucall, turning a guest assertion into a test failure. */
static u64 run_to_ucall(struct kvm_vcpu *vcpu, struct ucall *uc)
{
	vcpu_run(vcpu);
	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_MMIO);
	if (get_ucall(vcpu, uc) == UCALL_ABORT)
		REPORT_GUEST_ASSERT(*uc);
	return uc->cmd;
}

int main(int argc, char *argv[])
{
	enum vm_mem_backing_src_type src = DEFAULT_VM_MEM_SRC;
	u64 npages = 512, seed, i, bad = 0;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	struct ucall uc;
	gpa_t gpa;
	u64 words;
	int opt;

	while ((opt = getopt(argc, argv, "hn:s:")) != -1) {
		switch (opt) {
		case 'n':
			npages = atoi_positive("Number of pages", optarg);
			break;
		case 's':
			src = parse_backing_src_type(optarg);
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
	ksft_set_plan(2);
	ksft_print_msg("nptpool module %s\n",
		       access("/sys/module/nptpool", F_OK) ? "not loaded" : "loaded");

	vm = vm_create_with_one_vcpu(&vcpu, guest_code);
	words = WORDS_PER_PAGE(vm->page_size);
	/* At the top of the IPA space, aligned for any backing's huge pages. */
	gpa = top_gpa_aligned(vm, npages, get_backing_src_pagesz(src));
	vm_userspace_mem_region_add(vm, src, gpa, TEST_SLOT, npages, 0);
	virt_map(vm, TEST_GVA, gpa, npages);
	seed = (u64)getpid() << 32 | 0x5eed;
	vcpu_args_set(vcpu, 4, TEST_GVA, npages, vm->page_size, seed);
	ksft_print_msg("%lu pages at gpa 0x%lx, backing %s\n", npages, gpa,
		       vm_mem_backing_src_alias(src)->name);

	TEST_ASSERT_EQ(run_to_ucall(vcpu, &uc), UCALL_SYNC);
	for (i = 0; i < npages; i++) {
		u64 *p = addr_gpa2hva(vm, gpa + i * vm->page_size);

		bad += p[0] != guest_pattern(seed, i);
		bad += p[words - 1] != guest_pattern(seed, i);
		p[1] = host_pattern(seed, i);
	}
	if (bad)
		ksft_print_msg("%lu words differ from what the guest wrote\n", bad);
	ksft_test_result(!bad, "guest writes to %lu pages reach host memory\n", npages);

	ksft_test_result(run_to_ucall(vcpu, &uc) == UCALL_DONE,
			 "host writes to %lu pages reach the guest\n", npages);

	kvm_vm_free(vm);
	ksft_finished();
}
