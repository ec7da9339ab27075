// SPDX-License-Identifier: GPL-2.0
/*
 * pool_create: create one VM and run a guest that touches 16 pages 2 MiB apart at the top
 * of its IPA space; report which outcome it had and fail unless -o allows it:
 *
 *   run    the VM got its pool and the guest's stores reached memory
 *   nomem  KVM_CREATE_VM failed with ENOMEM, and nptpool logged that it could not reserve
 *          the pool for this pid
 *   halt   KVM_RUN failed with ENOMEM, the next one with EIO, and debugfs shows the VM
 *          halted
 *
 * nptpool's global counters must be back where they began afterwards.
 *
 * Built without the KVM selftest library (raw_vm.h): the library creates a VM before
 * main() to probe the host, which fails when no pool can be reserved, and that is one of
 * the outcomes this program is for.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>

#include "kselftest.h"
#include "raw_vm.h"

#define DEBUGFS		"/sys/kernel/debug/nptpool"
#define OUTCOME_RUN	1
#define OUTCOME_NOMEM	2
#define OUTCOME_HALT	4
#define BLOCK_SIZE	(2ULL << 20)

static unsigned long long read_ull(const char *path)
{
	unsigned long long v = ~0ULL;
	FILE *f = fopen(path, "r");

	if (f) {
		if (fscanf(f, "%llu", &v) != 1)
			v = ~0ULL;
		fclose(f);
	}
	return v;
}

/* vms, pages_reserved and pages_in_use, as one string. */
static void counters(char *buf, size_t len)
{
	snprintf(buf, len, "vms %llu pages_reserved %llu pages_in_use %llu",
		 read_ull(DEBUGFS "/vms"), read_ull(DEBUGFS "/pages_reserved"),
		 read_ull(DEBUGFS "/pages_in_use"));
}

/* The `halted` file of this process's only VM: 1, 0, or -1 if there is none. */
static int halted(void)
{
	char prefix[32], path[512];
	struct dirent *e;
	int h = -1;
	DIR *d;

	snprintf(prefix, sizeof(prefix), "vm-%d-", getpid());
	d = opendir(DEBUGFS);
	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, prefix, strlen(prefix))) {
			snprintf(path, sizeof(path), DEBUGFS "/%s/halted", e->d_name);
			h = read_ull(path);
		}
	closedir(d);
	return h;
}

/* Whether a kernel message since `fd` was opened says the pool of this pid failed. */
static bool reserve_failure_logged(int fd)
{
	char rec[2048], needle[96];
	ssize_t n;

	snprintf(needle, sizeof(needle), "stage-2 table pool for the VM of pid %d, VM creation fails with ENOMEM",
		 getpid());
	for (;;) {
		n = read(fd, rec, sizeof(rec) - 1);
		if (n < 0 && errno == EPIPE)
			continue;
		if (n <= 0)
			return false;
		rec[n] = 0;
		if (strstr(rec, needle) && strstr(rec, "cannot reserve a ")) {
			ksft_print_msg("dmesg: %s", strchr(rec, ';') ? strchr(rec, ';') + 1 : rec);
			return true;
		}
	}
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
	char before[128], after[128];
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
	counters(before, sizeof(before));
	kmsg = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	if (kmsg < 0)
		ksft_exit_fail_msg("open /dev/kmsg: %s\n", strerror(errno));
	lseek(kmsg, 0, SEEK_END);

	err = raw_vm_create(&r, KVM_VM_TYPE_ARM_IPA_SIZE(ipa));
	if (err) {
		ksft_print_msg("KVM_CREATE_VM: %s\n", strerror(err));
		if (err == ENOMEM && reserve_failure_logged(kmsg))
			got = OUTCOME_NOMEM;
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
			if (err == ENOMEM && again == EIO && h == 1)
				got = OUTCOME_HALT;
		}
		raw_vm_destroy(&r);
	}
	ksft_test_result(got & allowed, "the VM %s\n",
			 got == OUTCOME_RUN ? "got its pool and ran" :
			 got == OUTCOME_NOMEM ? "was refused with ENOMEM and nptpool's line" :
			 got == OUTCOME_HALT ? "halted: KVM_RUN failed with ENOMEM, then EIO" :
			 "did none of run, nomem, halt");
	counters(after, sizeof(after));
	ksft_print_msg("before: %s; after: %s\n", before, after);
	ksft_test_result(!strcmp(before, after), "nptpool's counters are back\n");
	close(kmsg);
	ksft_finished();
}
