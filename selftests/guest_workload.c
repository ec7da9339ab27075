// SPDX-License-Identifier: GPL-2.0
/*
 * The workload a real VM's guest runs (qemu-config/guest-init), built static for arm64
 * like the selftests; it runs in the guest, and in the test host to recompute a pattern.
 *
 *   guest_workload mem MIB ROUNDS     per round: map MIB MiB, write a pattern that
 *                                     differs per round into every byte, read it all back
 *                                     and compare, unmap; prints the write rate per round
 *   guest_workload pattern MIB SEED   write MIB MiB of the SEED pattern to stdout (the disk
 *                                     test writes it to /dev/vda and compares both sides)
 *
 * Every page is written before any is read back, so the guest's memory is really used
 * (stage-2 faults in the test host for each new page) rather than one page reused.
 * Exit status 0 when every byte read back is the byte written, 1 on a mismatch, 2 on a
 * usage error, 3 when memory cannot be mapped.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024UL * 1024UL)

static void usage(const char *prog)
{
	fprintf(stderr,
		"usage: %s mem MIB ROUNDS      write, check and free MIB MiB, ROUNDS times\n"
		"       %s pattern MIB SEED    MIB MiB of the SEED pattern to stdout\n",
		prog, prog);
	exit(2);
}

static unsigned long parse(const char *s, const char *what, const char *prog)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || *end || end == s || !v || v > 1UL << 20) {
		fprintf(stderr, "%s: %s must be a number from 1 to %lu, not '%s'\n", prog, what,
			1UL << 20, s);
		usage(prog);
	}
	return v;
}

/* One 64-bit word of the pattern: its offset and the seed, mixed so no two words of a
 * run and no two seeds agree (splitmix64's finaliser). */
static uint64_t word(uint64_t seed, uint64_t off)
{
	uint64_t z = seed * 0x9e3779b97f4a7c15ULL + off;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int mem(unsigned long mib, unsigned long rounds)
{
	size_t len = mib * MIB, words = len / sizeof(uint64_t), i;
	unsigned long r;

	for (r = 1; r <= rounds; r++) {
		uint64_t *p, bad = 0;
		double t0, t1;

		p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p == MAP_FAILED) {
			printf("mem round %lu: cannot map %lu MiB: %s\n", r, mib, strerror(errno));
			return 3;
		}
		t0 = now();
		for (i = 0; i < words; i++)
			p[i] = word(r, i);
		t1 = now();
		for (i = 0; i < words; i++)
			bad += p[i] != word(r, i);
		printf("mem round %lu: wrote %lu MiB in %.0f ms (%.1f MiB/s), %" PRIu64
		       " words differ\n", r, mib, (t1 - t0) * 1e3, mib / (t1 - t0), bad);
		munmap(p, len);
		if (bad)
			return 1;
	}
	return 0;
}

static int pattern(unsigned long mib, unsigned long seed)
{
	static uint64_t buf[MIB / sizeof(uint64_t)];
	unsigned long m;
	size_t i;

	for (m = 0; m < mib; m++) {
		for (i = 0; i < MIB / sizeof(uint64_t); i++)
			buf[i] = word(seed, m * (MIB / sizeof(uint64_t)) + i);
		if (fwrite(buf, sizeof(buf), 1, stdout) != 1) {
			perror("pattern: write");
			return 1;
		}
	}
	return fflush(stdout) ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "mem")) {
		/* Each round's line reaches the console as it happens. */
		setvbuf(stdout, NULL, _IOLBF, 0);
		return mem(parse(argv[2], "MIB", argv[0]), parse(argv[3], "ROUNDS", argv[0]));
	}
	if (argc == 4 && !strcmp(argv[1], "pattern"))
		return pattern(parse(argv[2], "MIB", argv[0]), parse(argv[3], "SEED", argv[0]));
	usage(argv[0]);
	return 2;
}
