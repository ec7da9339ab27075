// SPDX-License-Identifier: GPL-2.0
/*
 * vm_fill: a tool for the shell tests, a VMM that holds as many VMs (and so pools) as it
 * can get.  It prints "page_size N" (getpagesize()) and "armed", waits for SIGUSR1, then
 * creates VMs with KVM_CREATE_VM (default type, no memslot, no vCPU) until one fails or
 * -m exist, prints "created N" and "failed ERRNO NAME" (or "failed 0 none"), then
 * "ready", and holds them until the next SIGUSR1; then it closes them all, prints
 * "released" and exits 0.  The shell test moves it between cgroups and reads their
 * charges at each step.
 *
 * Built without the KVM selftest library, whose constructor creates a VM before main():
 * everything this program allocates in the kernel happens between the two signals.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "kselftest.h"

#define MAX_VMS 256

static volatile sig_atomic_t signalled;

static void on_usr1(int sig)
{
	signalled++;
}

/* Wait until SIGUSR1 has come `count` times in all; SIGUSR1 stays blocked outside. */
static void wait_usr1(sigset_t *during, int count)
{
	while (signalled < count)
		sigsuspend(during);
}

static void usage(const char *name)
{
	printf("usage: %s [-h] [-m max]\n", name);
	printf(" -m: the most VMs to create (default and limit %d)\n", MAX_VMS);
}

int main(int argc, char *argv[])
{
	static int vms[MAX_VMS];
	int max = MAX_VMS, kvm, opt, i, n = 0, err = 0;
	struct sigaction sa = { .sa_handler = on_usr1 };
	sigset_t block, during;

	while ((opt = getopt(argc, argv, "hm:")) != -1) {
		switch (opt) {
		case 'm':
			max = atoi(optarg);
			break;
		case 'h':
			usage(argv[0]);
			exit(KSFT_PASS);
		default:
			usage(argv[0]);
			exit(KSFT_FAIL);
		}
	}
	if (max < 1 || max > MAX_VMS) {
		usage(argv[0]);
		exit(KSFT_FAIL);
	}

	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigprocmask(SIG_BLOCK, &block, &during);
	sigdelset(&during, SIGUSR1);
	sigaction(SIGUSR1, &sa, NULL);

	kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		printf("cannot open /dev/kvm: %s\n", strerror(errno));
		exit(KSFT_SKIP);
	}
	printf("page_size %d\narmed\n", getpagesize());
	fflush(stdout);
	wait_usr1(&during, 1);

	while (n < max) {
		vms[n] = ioctl(kvm, KVM_CREATE_VM, 0);
		if (vms[n] < 0) {
			err = errno;
			break;
		}
		n++;
	}
	printf("created %d\nfailed %d %s\nready\n", n, err, err ? strerrorname_np(err) : "none");
	fflush(stdout);
	wait_usr1(&during, 2);

	for (i = 0; i < n; i++)
		close(vms[i]);
	close(kvm);
	printf("released\n");
	return KSFT_PASS;
}
