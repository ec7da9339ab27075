// SPDX-License-Identifier: GPL-2.0
/*
 * vm_storm_test: -p processes create and destroy VMs of -v vCPUs each, one after another,
 * for -t seconds, every vCPU faulting at once: every VM gets a pool and its vCPUs fault
 * (each process exits cleanly), each process creates at least one VM, and nptpool's
 * counters are back where they began afterwards.  How many VMs that is depends on the
 * machine and is reported, never judged; a hang is the runner's timeout.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "nptpool_kvm.h"

/* vCPU i of a VM from vm_with_vcpus() touches its `count` pages 2 MiB apart, once. */
static void guest_fault_once(gva_t base, u64 count)
{
	u64 i;

	for (i = 0; i < count; i++)
		*(volatile u64 *)(base + i * BLOCK_SIZE) = i + 1;
	GUEST_DONE();
}

/* The storm: each process creates VMs in turn, each VM's vCPUs fault at once. */
static void *storm_vcpu_thread(void *arg)
{
	struct kvm_vcpu *vcpu = arg;
	struct ucall uc;

	vcpu_run(vcpu);
	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_MMIO);
	if (get_ucall(vcpu, &uc) == UCALL_ABORT)
		REPORT_GUEST_ASSERT(uc);
	TEST_ASSERT_EQ(uc.cmd, UCALL_DONE);
	return NULL;
}

/* VMs one after another until `limit_ms` after `start`; how many, in `*done` (shared). */
static void storm_child(const struct timespec *start, u64 limit_ms, int nvcpus, u64 *done)
{
	struct kvm_vcpu *vcpus[MAX_VCPUS];
	pthread_t threads[MAX_VCPUS];
	struct kvm_vm *vm;
	int v;

	while (elapsed_ms(start) < limit_ms) {
		vm = vm_with_vcpus(nvcpus, vcpus, guest_fault_once, 8);
		TEST_ASSERT(newest_vm_id(NULL, 0) >= 0, "VM %lu has no pool", *done);
		for (v = 0; v < nvcpus; v++)
			pthread_create(&threads[v], NULL, storm_vcpu_thread, vcpus[v]);
		for (v = 0; v < nvcpus; v++)
			pthread_join(threads[v], NULL);
		kvm_vm_free(vm);
		(*done)++;
	}
	exit(KSFT_PASS);
}

/*
 * A storm of fixed length: the processes create VMs until `seconds` have passed (each
 * finishes the VM it is in); how many that is depends on the machine and is reported,
 * never judged.  A hang is the runner's timeout.
 */
static void test_storm(int seconds, int nprocs, int nvcpus)
{
	struct counters base;
	struct timespec start;
	int p, status, ok = 0, idle = 0;
	u64 *done, total = 0, ms;
	pid_t pids[64];

	TEST_ASSERT(nprocs >= 1 && nprocs <= 64 && nvcpus >= 1 && nvcpus <= MAX_VCPUS,
		    "1..64 processes, 1..%d vCPUs", MAX_VCPUS);
	done = mmap(NULL, nprocs * sizeof(*done), PROT_READ | PROT_WRITE,
		    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	TEST_ASSERT(done != MAP_FAILED, "mmap: %s", strerror(errno));
	ksft_set_plan(3);
	counters_read(&base);
	clock_gettime(CLOCK_MONOTONIC, &start);
	fflush(stdout);
	for (p = 0; p < nprocs; p++) {
		done[p] = 0;
		pids[p] = fork();
		TEST_ASSERT(pids[p] >= 0, "fork");
		if (!pids[p])
			storm_child(&start, seconds * 1000UL, nvcpus, &done[p]);
	}
	for (p = 0; p < nprocs; p++) {
		TEST_ASSERT(waitpid(pids[p], &status, 0) == pids[p], "waitpid");
		if (WIFEXITED(status) && WEXITSTATUS(status) == KSFT_PASS)
			ok++;
		else
			ksft_print_msg("process %d ended with status 0x%x\n", p, status);
		idle += !done[p];
		total += done[p];
	}
	ms = elapsed_ms(&start);
	ksft_print_msg("%lu VMs of %d vCPUs from %d processes in %lu.%03lu s\n", total, nvcpus,
		       nprocs, ms / 1000, ms % 1000);
	ksft_test_result(ok == nprocs, "every VM of the storm got a pool and its vCPUs faulted\n");
	ksft_test_result(!idle, "each of the %d processes created at least one VM\n", nprocs);
	ksft_test_result(counters_back(&base, 10), "nptpool's counters are back\n");
	munmap(done, nprocs * sizeof(*done));
}

static void usage(const char *name)
{
	printf("usage: %s [-h] [-p procs] [-v vcpus] [-t seconds]\n", name);
	printf(" -p: processes creating VMs, 1..64 (default 3)\n");
	printf(" -v: vCPUs per VM, 1..%d (default 4)\n", MAX_VCPUS);
	printf(" -t: seconds the storm lasts (default 20)\n");
}

int main(int argc, char *argv[])
{
	int nprocs = 3, nvcpus = 4, seconds = 20, opt;

	while ((opt = getopt(argc, argv, "hp:v:t:")) != -1) {
		switch (opt) {
		case 'p':
			nprocs = atoi_positive("Number of processes", optarg);
			break;
		case 'v':
			nvcpus = atoi_positive("Number of vCPUs", optarg);
			break;
		case 't':
			seconds = atoi_positive("Seconds", optarg);
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
	test_storm(seconds, nprocs, nvcpus);
	ksft_finished();
}
