// SPDX-License-Identifier: GPL-2.0
/*
 * pool_pressure_test: a VMM (a child the OOM killer is pointed at) holds VMs, and so
 * pools, until KVM_CREATE_VM fails, lets four go, and runs a guest touching -n pages with
 * the host (or the VMM's memory cgroup, pool_pressure.sh) out of memory.  The VMM
 * finishes or is killed by the OOM killer, nothing else; KVM_CREATE_VM failed with
 * ENOMEM; the guest ran, or failed for host memory, and was never halted by its pool;
 * nptpool's counters are back where they began.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nptpool_kvm.h"
#include "raw_vm.h"

/*
 * Memory pressure, in a child whose death the parent can judge: it holds VMs (and so
 * pools) until KVM_CREATE_VM fails, lets four go, and runs a guest that touches
 * `npages` pages.  The OOM killer is pointed at it.
 */
struct pressure_report {
	int held, create_errno;
	int phase;		/* 1: holding VMs, 2: the guest runs, 3: done */
	int setup_errno;	/* creating or setting up the guest's VM, 0: it ran */
	int run_errno, halted, done;
	u64 pmd_before, pmd_after;
};

/*
 * The guest's VM is built by hand (raw_vm.h): with the host out of memory its creation
 * or setup may fail, which is an outcome to report, where the library would abort.
 */
static void pressure_child(struct pressure_report *r, u64 npages)
{
	static int held[4096];
	struct rlimit rl = { 4200, 4200 };
	struct raw_vm vm;
	struct pool p;
	int i, err;

	write_file("/proc/self/oom_score_adj", "1000");
	setrlimit(RLIMIT_NOFILE, &rl);
	r->phase = 1;
	for (i = 0; i < (int)ARRAY_SIZE(held); i++) {
		held[i] = create_vm_raw(0);
		if (held[i] < 0) {
			r->create_errno = errno;
			break;
		}
		r->held = i + 1;
	}
	for (i = 0; i < 4 && i < r->held; i++)
		close(held[r->held - 1 - i]);

	r->phase = 2;
	err = raw_vm_create(&vm, 0);
	if (!err) {
		TEST_ASSERT(newest_vm_id(p.dir, sizeof(p.dir)) >= 0, "no pool for the guest's VM");
		read_pool(&p);
		r->pmd_before = p.used[PMD];
		err = raw_vm_setup(&vm, 1UL << 30, npages * 4096, npages, 4096);
	}
	r->setup_errno = err;
	if (!err) {
		r->run_errno = raw_vm_run(&vm);
		r->done = !r->run_errno && raw_vm_done(&vm);
		read_pool(&p);
		r->pmd_after = p.used[PMD];
		r->halted = vm_halted(&p);
	}
	r->phase = 3;
	exit(KSFT_PASS);
}

static void test_pressure(u64 npages)
{
	struct pressure_report *r;
	struct counters base;
	char line[512], needle[64];
	int status, kmsg;
	bool oom;
	pid_t pid;

	ksft_set_plan(4);
	r = mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	TEST_ASSERT(r != MAP_FAILED, "mmap");
	write_file("/proc/self/oom_score_adj", "-1000");
	counters_read(&base);
	kmsg = kmsg_open();
	ksft_print_msg("MemFree %lu kB before\n", meminfo_kib("MemFree"));
	fflush(stdout);
	pid = fork();
	TEST_ASSERT(pid >= 0, "fork");
	if (!pid)
		pressure_child(r, npages);
	TEST_ASSERT(waitpid(pid, &status, 0) == pid, "waitpid");

	snprintf(needle, sizeof(needle), "Killed process %d ", pid);
	oom = WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL &&
	      kmsg_find(kmsg, needle, line, sizeof(line));
	if (oom)
		ksft_print_msg("dmesg: %s\n", line);
	ksft_print_msg("the VMM held %d VMs when KVM_CREATE_VM failed (%s); it %s in phase %d\n",
		       r->held, r->create_errno ? strerror(r->create_errno) : "never failed",
		       oom ? "was OOM-killed" : WIFEXITED(status) ? "exited" : "died", r->phase);
	ksft_test_result(oom || (WIFEXITED(status) && WEXITSTATUS(status) == KSFT_PASS),
			 "the VMM finished or was killed by the OOM killer, nothing else\n");
	ksft_test_result(r->phase < 2 || r->create_errno == ENOMEM,
			 "holding VMs until memory ran out, KVM_CREATE_VM failed with ENOMEM after %d\n",
			 r->held);
	if (r->phase == 3 && r->setup_errno)
		ksft_print_msg("the guest's VM could not be set up: %s\n", strerror(r->setup_errno));
	else if (r->phase == 3)
		ksft_print_msg("guest touching %lu pages: KVM_RUN %s%s, pmd region used %lu -> %lu, halted %d\n",
			       npages, r->run_errno ? strerror(r->run_errno) : "succeeded",
			       r->run_errno || r->done ? "" : " but the guest did not finish",
			       r->pmd_before, r->pmd_after, r->halted);
	ksft_test_result(r->phase < 3 || r->setup_errno == ENOMEM ||
			 (!r->setup_errno && !r->halted &&
			  (r->done || r->run_errno == EFAULT || r->run_errno == ENOMEM)),
			 "a guest faulting with memory short ran, or failed for host memory, never halted by its pool\n");
	ksft_test_result(counters_back(&base, 10), "nptpool's counters are back\n");
	close(kmsg);
}

static void usage(const char *name)
{
	printf("usage: %s [-h] [-n pages]\n", name);
	printf(" -n: pages the guest touches (default 8192)\n");
}

int main(int argc, char *argv[])
{
	u64 npages = 8192;
	int opt;

	while ((opt = getopt(argc, argv, "hn:")) != -1) {
		switch (opt) {
		case 'n':
			npages = atoi_positive("Number of pages", optarg);
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
	test_pressure(npages);
	ksft_finished();
}
