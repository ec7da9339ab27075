// SPDX-License-Identifier: GPL-2.0
/*
 * pool_create: create one VM and run a guest that touches 16 pages 2 MiB apart at the top
 * of its IPA space; report which outcome it had and fail unless -o allows it:
 *
 *   run    the VM got its pool and the guest's stores reached memory
 *   nomem  KVM_CREATE_VM failed with ENOMEM, and nptpool logged that it could not reserve
 *          the pool for this pid
 *   halt   KVM_RUN failed with ENOMEM, the next one too, and debugfs shows the VM
 *          halted
 *
 * nptpool's global counters must be back where they began afterwards.
 *
 * Built without the KVM selftest library (raw_vm.h, and the libc-only part of nptpool's
 * library): the library creates a VM before main() to probe the host, which fails when no
 * pool can be reserved, and that is one of the outcomes this program is for.  Runs with
 * nptpool loaded or not (its counters then read as missing, before and after alike).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kselftest.h"
#include "nptpool.h"
#include "raw_vm.h"

#define OUTCOME_RUN	1
#define OUTCOME_NOMEM	2
#define OUTCOME_HALT	4
#define BLOCK_SIZE	(2ULL << 20)

/* The `halted` file of this process's VM: 1, 0, or -1 if there is none. */
static int halted(void)
{
	char dir[320];

	if (newest_vm_id_of(getpid(), dir, sizeof(dir), true) < 0)
		return -1;
	return read_halted(dir);
}

static int parse_outcomes(const char *s)
{
	int o = 0;

	o |= strstr(s, "run") ? OUTCOME_RUN : 0;
	o |= strstr(s, "nomem") ? OUTCOME_NOMEM : 0;
	o |= strstr(s, "halt") ? OUTCOME_HALT : 0;
	return o;
}

static void usage(const char *name)
{
	printf("usage: %s [-h] [-o run,nomem,halt] [-i ipa_bits]\n", name);
	printf(" -o: the outcomes allowed, comma-separated (default run)\n");
	printf(" -i: the VM's IPA size in bits (default: KVM's, 40)\n");
}

int main(int argc, char *argv[])
{
	unsigned long long size = 16 * BLOCK_SIZE, top;
	int allowed = OUTCOME_RUN, ipa = 40, opt, err, kmsg, got = 0;
	char before[128], after[128], line[512];
	struct counters cb, ca;
	struct raw_vm r;

	while ((opt = getopt(argc, argv, "ho:i:")) != -1) {
		switch (opt) {
		case 'o':
			allowed = parse_outcomes(optarg);
			break;
		case 'i':
			ipa = atoi(optarg);
			break;
		case 'h':
			usage(argv[0]);
			exit(KSFT_PASS);
		default:
			usage(argv[0]);
			exit(KSFT_FAIL);
		}
	}
	if (!allowed || ipa < 32 || ipa > 52) {
		usage(argv[0]);
		exit(KSFT_FAIL);
	}

	ksft_print_header();
	if (access("/dev/kvm", F_OK))
		ksft_exit_skip("no /dev/kvm\n");
	ksft_set_plan(2);
	counters_try_read(&cb);
	kmsg = kmsg_open();

	err = raw_vm_create(&r, KVM_VM_TYPE_ARM_IPA_SIZE(ipa));
	if (err) {
		ksft_print_msg("KVM_CREATE_VM: %s\n", strerror(err));
		if (err == ENOMEM && reserve_failure_logged(kmsg, getpid(), line, sizeof(line))) {
			ksft_print_msg("dmesg: %s\n", line);
			got = OUTCOME_NOMEM;
		}
	} else {
		top = 1ULL << ipa;
		err = raw_vm_setup(&r, top - size, size, 16, BLOCK_SIZE);
		if (err)
			ksft_exit_fail_msg("setting up the VM: %s\n", strerror(err));
		err = raw_vm_run(&r);
		if (!err) {
			got = raw_vm_done(&r) ? OUTCOME_RUN : 0;
			ksft_print_msg("KVM_RUN: the guest %s\n", got ? "finished" : "did not finish");
		} else {
			int again = raw_vm_run(&r), h = halted();

			ksft_print_msg("KVM_RUN: %s, then %s; halted %d\n", strerror(err),
				       strerror(again), h);
			if (err == ENOMEM && again == ENOMEM && h == 1)
				got = OUTCOME_HALT;
		}
		raw_vm_destroy(&r);
	}
	ksft_test_result(got & allowed, "the VM %s\n",
			 got == OUTCOME_RUN ? "got its pool and ran" :
			 got == OUTCOME_NOMEM ? "was refused with ENOMEM and nptpool's line" :
			 got == OUTCOME_HALT ? "halted: KVM_RUN failed with ENOMEM, and again" :
			 "did none of run, nomem, halt");
	counters_try_read(&ca);
	counters_str(&cb, before, sizeof(before));
	counters_str(&ca, after, sizeof(after));
	ksft_print_msg("before: %s; after: %s\n", before, after);
	ksft_test_result(counters_equal(&cb, &ca), "nptpool's counters are back\n");
	close(kmsg);
	ksft_finished();
}
