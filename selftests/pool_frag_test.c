// SPDX-License-Identifier: GPL-2.0
/*
 * pool_frag_test: -c VMs created and destroyed one after another, each running a guest,
 * each get their pool, and leave the host at least 90% of the free 4 MiB (order-10)
 * blocks it had before: a pool is one such block of unmovable memory, and a pool returned
 * must leave a block that the next VM, or anyone else, can have again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nptpool_kvm.h"

/* Free blocks of `order` in every zone (/proc/buddyinfo). */
static u64 free_blocks(unsigned int order)
{
	char line[512], *tok, *save;
	FILE *f = fopen("/proc/buddyinfo", "r");
	u64 total = 0;
	unsigned int col;

	TEST_ASSERT(f, "open /proc/buddyinfo: %s", strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		/* Node 0, zone      DMA      3      2 ... */
		tok = strtok_r(line, " \n", &save);
		for (col = 0; tok; tok = strtok_r(NULL, " \n", &save), col++)
			if (col == 4 + order)
				total += strtoull(tok, NULL, 10);
	}
	fclose(f);
	return total;
}

/*
 * VMs created and destroyed one after another must leave the host the free memory it
 * had, in the shape it had it: a pool is one order-10 block of unmovable memory, and a
 * pool returned must leave a block that the next VM, or anyone else, can have again.
 */
static void test_frag(int nvms)
{
	u64 before, after, *done;
	int status, i;
	pid_t pid;

	ksft_set_plan(2);
	done = mmap(NULL, sizeof(*done), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	TEST_ASSERT(done != MAP_FAILED, "mmap");
	settle();
	before = free_blocks(10);
	fflush(stdout);
	pid = fork();
	TEST_ASSERT(pid >= 0, "fork");
	if (!pid) {
		for (i = 0; i < nvms; i++) {
			TEST_ASSERT(small_vm_runs(), "VM %d did not run its guest", i);
			(*done)++;
		}
		exit(KSFT_PASS);
	}
	TEST_ASSERT(waitpid(pid, &status, 0) == pid, "waitpid");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != KSFT_PASS)
		ksft_print_msg("the process creating the VMs %s %d\n",
			       WIFSIGNALED(status) ? "was killed by signal" : "exited with",
			       WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	settle();
	after = free_blocks(10);
	ksft_print_msg("free 4 MiB (order-10) blocks: %lu before %lu VMs, %lu after %lu\n", before,
		       (u64)nvms, after, *done);
	ksft_test_result(WIFEXITED(status) && WEXITSTATUS(status) == KSFT_PASS && *done == nvms,
			 "%d VMs one after another each got their pool (%lu did)\n", nvms, *done);
	ksft_test_result(after * 10 >= before * 9,
			 "the host keeps at least 90%% of its free 4 MiB blocks (%lu of %lu)\n",
			 after, before);
}

static void usage(const char *name)
{
	printf("usage: %s [-h] [-c vms]\n", name);
	printf(" -c: VMs to create and destroy (default 200)\n");
}

int main(int argc, char *argv[])
{
	int nvms = 200, opt;

	while ((opt = getopt(argc, argv, "hc:")) != -1) {
		switch (opt) {
		case 'c':
			nvms = atoi_positive("Number of VMs", optarg);
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
	test_frag(nvms);
	ksft_finished();
}
