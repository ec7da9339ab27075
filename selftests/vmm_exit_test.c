// SPDX-License-Identifier: GPL-2.0
/*
 * vmm_exit_test: VMMs that go away while their vCPUs fault (-k kill: SIGKILLed, -r
 * rounds, -v vCPUs per VM, each round later after the vCPUs entered the guest).  kill:
 * every VMM dies of the SIGKILL, and in some rounds faults were in flight at the kill.
 * close: the VMM closes every fd of the VM while its vCPUs fault, each vCPU thread stops
 * at its next exit and the last one destroys the VM, and every VMM exits cleanly.  After
 * each round nptpool's counters are back where they began.
 */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nptpool_kvm.h"

/*
 * vCPU i of a VM from vm_with_vcpus() touches its `count` pages 2 MiB apart over and
 * over, with a GUEST_SYNC after each pass.
 */
static void guest_fault_loop(gva_t base, u64 count)
{
	u64 pass, i;

	GUEST_SYNC(0);
	for (pass = 1;; pass++) {
		for (i = 0; i < count; i++)
			*(volatile u64 *)(base + i * BLOCK_SIZE) = pass;
		GUEST_SYNC(pass);
	}
}

static int kill_nvcpus, kill_ready_fd, kill_in_guest;
static long kill_mmap_sz;
static volatile bool kill_closing;

/*
 * A vCPU that faults until its VMM dies or closes its fds.  Raw KVM_RUN: the library's
 * would issue a second KVM_RUN to complete the ucall's MMIO, which may find the fd closed.
 * Every exit is the guest's GUEST_SYNC, an MMIO write that the next KVM_RUN completes.
 */
static void *kill_vcpu_thread(void *arg)
{
	struct kvm_vcpu *vcpu = arg;
	bool entered = false;

	for (;;) {
		if (__vcpu_run(vcpu)) {
			TEST_ASSERT(errno == EINTR || (kill_closing && errno == EBADF),
				    "KVM_RUN: %s", strerror(errno));
			if (errno == EINTR)
				continue;
			break;
		}
		if (kill_closing)
			break;
		TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_MMIO);
		if (!entered &&
		    __atomic_add_fetch(&kill_in_guest, 1, __ATOMIC_SEQ_CST) == kill_nvcpus)
			TEST_ASSERT(write(kill_ready_fd, "r", 1) == 1, "ready");
		entered = true;
	}
	/* Its fds are closed: this drops the vCPU's last reference, the VM's with the last. */
	munmap(vcpu->run, kill_mmap_sz);
	return NULL;
}

/*
 * The VMM of one round.  kill: fault until SIGKILLed.  close: `delay_ms` after every vCPU
 * entered the guest, close the VM's fds under the faulting vCPUs; each vCPU thread stops
 * at its next exit and unmaps its kvm_run, the last one taking the VM down; exit 0 once
 * the VM is gone.
 */
static void kill_child(int ready_fd, int nvcpus, u64 count, bool close_fds, int delay_ms)
{
	struct kvm_vcpu *vcpus[MAX_VCPUS];
	pthread_t threads[MAX_VCPUS];
	struct kvm_vm *vm;
	int v, kvm;

	kill_nvcpus = nvcpus;
	kill_ready_fd = ready_fd;
	kvm = open_kvm_dev_path_or_exit();
	kill_mmap_sz = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, NULL);
	close(kvm);
	vm = vm_with_vcpus(nvcpus, vcpus, guest_fault_loop, count);
	TEST_ASSERT(newest_vm_id(NULL, 0) >= 0, "the VM has no pool");
	for (v = 0; v < nvcpus; v++)
		pthread_create(&threads[v], NULL, kill_vcpu_thread, vcpus[v]);
	if (!close_fds) {
		for (v = 0; v < nvcpus; v++)
			pthread_join(threads[v], NULL);
		exit(KSFT_FAIL);	/* only SIGKILL ends this one */
	}

	while (__atomic_load_n(&kill_in_guest, __ATOMIC_SEQ_CST) < nvcpus)
		usleep(1000);
	usleep(delay_ms * 1000);
	kill_closing = true;
	/* Every fd that holds a reference on the VM: vCPUs, stats, the vGIC device, the VM. */
	for (v = 0; v < nvcpus; v++) {
		close(vcpus[v]->fd);
		if (vcpus[v]->stats.fd >= 0)
			close(vcpus[v]->stats.fd);
	}
	if (vm->stats.fd >= 0)
		close(vm->stats.fd);
	if (vm->arch.has_gic)
		close(vm->arch.gic_fd);
	close(vm->fd);
	for (v = 0; v < nvcpus; v++)
		pthread_join(threads[v], NULL);
	TEST_ASSERT(newest_vm_id(NULL, 0) < 0, "the VM outlived its last reference");
	exit(KSFT_PASS);
}

static void test_kill(bool close_fds, int rounds, int nvcpus)
{
	static const int delays_ms[] = { 0, 10, 20, 40, 80, 160 };
	u64 count = 64, full, in_flight = 0, ok_end = 0, ok_counters = 0;
	struct counters base;
	int r;

	TEST_ASSERT(nvcpus >= 1 && nvcpus <= MAX_VCPUS, "1..%d vCPUs", MAX_VCPUS);
	ksft_set_plan(close_fds ? 2 : 3);
	counters_read(&base);
	full = nvcpus * count;
	for (r = 0; r < rounds; r++) {
		int delay = delays_ms[r % ARRAY_SIZE(delays_ms)], pipefd[2], status;
		struct pollfd pfd;
		struct pool p;
		u64 used0 = 0, used1 = 0;
		char c;
		pid_t pid;

		TEST_ASSERT(!pipe(pipefd), "pipe");
		fflush(stdout);
		pid = fork();
		TEST_ASSERT(pid >= 0, "fork");
		if (!pid) {
			close(pipefd[0]);
			kill_child(pipefd[1], nvcpus, count, close_fds, delay);
		}
		close(pipefd[1]);
		pfd = (struct pollfd){ .fd = pipefd[0], .events = POLLIN };
		TEST_ASSERT(poll(&pfd, 1, 60000) == 1 && read(pipefd[0], &c, 1) == 1,
			    "round %d: the vCPUs never all entered the guest", r);
		if (!close_fds) {
			if (newest_vm_id_of(pid, p.dir, sizeof(p.dir), false) >= 0) {
				read_pool(&p);
				used0 = p.used[PMD];
			}
			usleep(delay * 1000);
			if (newest_vm_id_of(pid, p.dir, sizeof(p.dir), false) >= 0) {
				read_pool(&p);
				used1 = p.used[PMD];
			}
			kill(pid, SIGKILL);
			in_flight += used1 < full;
		}
		TEST_ASSERT(waitpid(pid, &status, 0) == pid, "waitpid");
		close(pipefd[0]);
		if (close_fds ? WIFEXITED(status) && WEXITSTATUS(status) == KSFT_PASS :
				WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
			ok_end++;
		else
			ksft_print_msg("round %d: the VMM ended with status 0x%x\n", r, status);
		ok_counters += counters_back(&base, 10);
		if (close_fds)
			ksft_print_msg("round %d: fds closed %d ms after %d vCPUs entered the guest\n",
				       r, delay, nvcpus);
		else
			ksft_print_msg("round %d: SIGKILL %d ms after %d vCPUs entered the guest; pmd region used %lu -> %lu (of %lu to fault)\n",
				       r, delay, nvcpus, used0, used1, full);
	}
	if (close_fds) {
		ksft_test_result(ok_end == rounds,
				 "%d VMMs closed their VMs' fds under faulting vCPUs; the last vCPU thread destroyed each VM\n",
				 rounds);
	} else {
		ksft_test_result(ok_end == rounds, "%d VMMs were SIGKILLed while their vCPUs faulted\n",
				 rounds);
		ksft_test_result(in_flight > 0, "in %lu of %d rounds faults were in flight at the kill\n",
				 in_flight, rounds);
	}
	ksft_test_result(ok_counters == rounds, "after each round nptpool's counters are back\n");
}

static void usage(const char *name)
{
	printf("usage: %s [-h] [-k kill|close] [-r rounds] [-v vcpus]\n", name);
	printf(" -k: SIGKILL the VMM (kill, default) or have it close its VM's fds (close)\n");
	printf(" -r: rounds, one VMM each (default 6)\n");
	printf(" -v: vCPUs per VM, 1..%d (default 4)\n", MAX_VCPUS);
}

int main(int argc, char *argv[])
{
	int rounds = 6, nvcpus = 4, opt;
	bool close_fds = false;

	while ((opt = getopt(argc, argv, "hk:r:v:")) != -1) {
		switch (opt) {
		case 'k':
			if (!strcmp(optarg, "kill")) {
				close_fds = false;
			} else if (!strcmp(optarg, "close")) {
				close_fds = true;
			} else {
				usage(argv[0]);
				exit(KSFT_FAIL);
			}
			break;
		case 'r':
			rounds = atoi_positive("Rounds", optarg);
			break;
		case 'v':
			nvcpus = atoi_positive("Number of vCPUs", optarg);
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
	test_kill(close_fds, rounds, nvcpus);
	ksft_finished();
}
