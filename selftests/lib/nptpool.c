// SPDX-License-Identifier: GPL-2.0
/*
 * nptpool's selftest library, the part that needs nothing but libc: see
 * include/nptpool.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nptpool.h"

const char * const region_names[NR_REGIONS] = { "pgd", "pud", "pmd" };

void nptpool_die(const char *fmt, ...)
{
	va_list args;

	va_start(args, fmt);
	printf("Bail out! ");
	vprintf(fmt, args);
	va_end(args);
	exit(KSFT_FAIL);
}

bool nptpool_loaded(void)
{
	return !access(NPTPOOL_DEBUGFS, F_OK);
}

u64 nptpool_page_size(void)
{
	return getpagesize();
}

unsigned int nptpool_page_shift(void)
{
	return __builtin_ctzl(nptpool_page_size());
}

/*
 * The IPA space one stage-2 table at `level` maps on this host: a table is a page of
 * 8-byte entries, a level-3 entry maps a page.  Level 3: 2 MiB, 32 MiB or 512 MiB;
 * level 2: 1 GiB, 64 GiB or 4 TiB (4K, 16K, 64K pages).
 */
u64 nptpool_table_span(int level)
{
	unsigned int s = nptpool_page_shift(), shift = s + (s - 3) * (4 - level);

	if (level > 3 || shift >= 64)
		nptpool_die("no stage-2 table at level %d with %lu-byte pages\n", level,
			    nptpool_page_size());
	return 1ULL << shift;
}

/* What one last-level (level 3) table maps: one pmd-region page per this much IPA. */
u64 nptpool_last_table_span(void)
{
	return nptpool_table_span(3);
}

/*
 * KVM's stage-2 for a VM of `ipa` bits on this host (kvm_get_vtcr(), kvm_pgd_pages()):
 * as few levels as fit with up to 16 concatenated root pages, at least two.
 */
void nptpool_s2_shape(unsigned int ipa, int *start_level, u64 *root_pages)
{
	unsigned int s = nptpool_page_shift(), root_bits;
	int levels = (ipa - 8) / (s - 3);	/* ARM64_HW_PGTABLE_LEVELS(ipa - 4) */

	if (levels < 2)
		levels = 2;
	*start_level = 4 - levels;
	root_bits = s + (s - 3) * (4 - *start_level);	/* what one root page maps */
	*root_pages = ipa > root_bits ? 1ULL << (ipa - root_bits) : 1;
}

/*
 * Whether a stage-2 whose root is at `start_level` has a pud region: the level below the
 * root is not the last.  A two-level stage-2 (16K and 64K pages at 40 bits, 4K at 32)
 * has none: its last-level tables are the pmd region's.
 */
bool nptpool_s2_has_pud(int start_level)
{
	return start_level + 1 < 3;
}

bool write_file_ok(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY);
	bool ok;

	if (fd < 0)
		return false;
	ok = write(fd, val, strlen(val)) == (ssize_t)strlen(val);
	close(fd);
	return ok;
}

void write_file(const char *path, const char *val)
{
	if (!write_file_ok(path, val))
		nptpool_die("write '%s' to %s: %s\n", val, path, strerror(errno));
}

/* The first line of `path`, without its newline. */
void read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		nptpool_die("open %s: %s\n", path, strerror(errno));
	n = read(fd, buf, len - 1);
	if (n < 0)
		nptpool_die("read %s: %s\n", path, strerror(errno));
	close(fd);
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
}

bool try_read_u64(const char *path, u64 *v)
{
	unsigned long long val;
	FILE *f = fopen(path, "r");
	bool ok;

	if (!f)
		return false;
	ok = fscanf(f, "%llu", &val) == 1;
	fclose(f);
	if (ok)
		*v = val;
	return ok;
}

u64 read_u64(const char *path)
{
	u64 v;

	if (!try_read_u64(path, &v))
		nptpool_die("read a number from %s: %s\n", path, strerror(errno));
	return v;
}

/*
 * A /proc/meminfo field, in kB.  The per-CPU vmstat deltas are folded first (root's
 * vm.stat_refresh): a count changed on another CPU, such as a pool released there, may
 * otherwise wait for the next vmstat update, tens of pages off.
 */
u64 meminfo_kib(const char *field)
{
	unsigned long long kib = 0;
	char line[128], fmt[64];
	int refresh = open("/proc/sys/vm/stat_refresh", O_WRONLY);
	FILE *f;

	if (refresh >= 0) {
		if (write(refresh, "1", 1) < 0)
			ksft_print_msg("vm.stat_refresh: %s\n", strerror(errno));
		close(refresh);
	}
	f = fopen("/proc/meminfo", "r");
	if (!f)
		nptpool_die("open /proc/meminfo: %s\n", strerror(errno));
	snprintf(fmt, sizeof(fmt), "%s: %%llu kB", field);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, fmt, &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* A /proc/vmstat counter. */
u64 vmstat(const char *name)
{
	size_t len = strlen(name);
	char line[128];
	u64 v = 0;
	FILE *f = fopen("/proc/vmstat", "r");

	if (!f)
		nptpool_die("open /proc/vmstat: %s\n", strerror(errno));
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, name, len) && line[len] == ' ')
			v = strtoull(line + len + 1, NULL, 10);
	fclose(f);
	return v;
}

u64 elapsed_ms(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

/* vms, pages_reserved, pages_in_use: whether all three could be read; the others are ~0. */
bool counters_try_read(struct counters *c)
{
	bool ok = true;

	c->vms = c->reserved = c->in_use = ~0ULL;
	ok &= try_read_u64(NPTPOOL_DEBUGFS "/vms", &c->vms);
	ok &= try_read_u64(NPTPOOL_DEBUGFS "/pages_reserved", &c->reserved);
	ok &= try_read_u64(NPTPOOL_DEBUGFS "/pages_in_use", &c->in_use);
	return ok;
}

void counters_read(struct counters *c)
{
	if (!counters_try_read(c))
		nptpool_die("cannot read nptpool's counters in %s (is nptpool loaded?)\n",
			    NPTPOOL_DEBUGFS);
}

bool counters_equal(const struct counters *a, const struct counters *b)
{
	return a->vms == b->vms && a->reserved == b->reserved && a->in_use == b->in_use;
}

/* Poll until the counters are back to `base`, for up to `seconds`; whether they are. */
bool counters_back(const struct counters *base, int seconds)
{
	struct counters now = { 0 };
	int i;

	for (i = 0; i <= seconds * 10; i++) {
		counters_read(&now);
		if (counters_equal(&now, base))
			return true;
		usleep(100000);
	}
	ksft_print_msg("counters: vms %lu pages_reserved %lu pages_in_use %lu, began at %lu %lu %lu\n",
		       now.vms, now.reserved, now.in_use, base->vms, base->reserved, base->in_use);
	return false;
}

/* "vms N pages_reserved N pages_in_use N" */
void counters_str(const struct counters *c, char *buf, size_t len)
{
	snprintf(buf, len, "vms %lu pages_reserved %lu pages_in_use %lu", c->vms, c->reserved,
		 c->in_use);
}

/*
 * The highest id among the VM directories of process `pid` (its path in `dir`), or -1;
 * -1 also when nptpool is not loaded, if `may_be_unloaded`.
 */
long newest_vm_id_of(pid_t pid, char *dir, size_t len, bool may_be_unloaded)
{
	char prefix[32];
	struct dirent *e;
	long best = -1;
	DIR *d;

	snprintf(prefix, sizeof(prefix), "vm-%d-", pid);
	d = opendir(NPTPOOL_DEBUGFS);
	if (!d && may_be_unloaded)
		return -1;
	if (!d)
		nptpool_die("open %s: %s (is nptpool loaded?)\n", NPTPOOL_DEBUGFS,
			    strerror(errno));
	while ((e = readdir(d))) {
		long id;

		if (strncmp(e->d_name, prefix, strlen(prefix)))
			continue;
		id = strtol(e->d_name + strlen(prefix), NULL, 10);
		if (id > best) {
			best = id;
			if (dir)
				snprintf(dir, len, "%s/%s", NPTPOOL_DEBUGFS, e->d_name);
		}
	}
	closedir(d);
	return best;
}

/* The highest id among this process's VM directories, or -1. */
long newest_vm_id(char *dir, size_t len)
{
	return newest_vm_id_of(getpid(), dir, len, false);
}

/* Parse the `regions` file of the VM directory p->dir. */
void read_pool(struct pool *p)
{
	unsigned long long s, e, n, u, fr;
	char path[352], name[8];
	char line[256];
	int r, seen = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/regions", p->dir);
	f = fopen(path, "r");
	if (!f)
		nptpool_die("open %s: %s\n", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "pool start=0x%llx end=0x%llx reserved_start=0x%*x reserved_pages=%llu memcg_charged=%d",
			   &s, &e, &n, &p->memcg_charged) == 4) {
			p->start = s;
			p->end = e;
			p->reserved_pages = n;
			continue;
		}
		if (sscanf(line, "%7s start=0x%llx end=0x%llx pages=%llu used=%llu free=%llu",
			   name, &s, &e, &n, &u, &fr) != 6)
			continue;
		for (r = 0; r < NR_REGIONS; r++) {
			if (strcmp(name, region_names[r]))
				continue;
			p->rstart[r] = s;
			p->rend[r] = e;
			p->pages[r] = n;
			p->used[r] = u;
			p->free[r] = fr;
			seen++;
		}
	}
	fclose(f);
	if (seen != NR_REGIONS || p->end <= p->start)
		nptpool_die("cannot parse %s\n", path);
}

/* Parse the `footprint` file of the VM directory p->dir. */
void read_footprint(struct pool *p)
{
	unsigned long long a, b;
	char path[352], line[256];
	int seen = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/footprint", p->dir);
	f = fopen(path, "r");
	if (!f)
		nptpool_die("open %s: %s\n", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "memory ranges=%*u bytes=%llu", &a) == 1) {
			p->memory = a;
			seen++;
		} else if (sscanf(line, "bound pud=%llu pmd=%llu", &a, &b) == 2) {
			p->bound[PGD] = 0;
			p->bound[PUD] = a;
			p->bound[PMD] = b;
			seen++;
		} else if (sscanf(line, "in_use pud=%llu pmd=%llu", &a, &b) == 2) {
			p->in_use[PGD] = 0;
			p->in_use[PUD] = a;
			p->in_use[PMD] = b;
			seen++;
		} else {
			sscanf(line, "sizing %31s", p->sizing);
		}
	}
	fclose(f);
	if (seen != 3)
		nptpool_die("cannot parse %s\n", path);
}

/* The stage-2 start level nptpool saw for the VM (first line of `regions`). */
int start_level(const struct pool *p)
{
	char path[352];
	int level = -9;
	FILE *f;

	snprintf(path, sizeof(path), "%s/regions", p->dir);
	f = fopen(path, "r");
	if (!f)
		nptpool_die("open %s: %s\n", path, strerror(errno));
	if (fscanf(f, "start_level %d", &level) != 1)
		nptpool_die("parse %s\n", path);
	fclose(f);
	return level;
}

/*
 * Check every handed-out table of the VM (its `tables` file) against its region; count
 * the live ones per region (a pgd page always, others while they hold an entry).
 */
bool tables_in_regions(const struct pool *p, u64 live[NR_REGIONS])
{
	unsigned long long phys;
	char path[352], name[8];
	bool ok = true;
	int r, count;
	FILE *f;

	memset(live, 0, NR_REGIONS * sizeof(live[0]));
	snprintf(path, sizeof(path), "%s/tables", p->dir);
	f = fopen(path, "r");
	if (!f)
		nptpool_die("open %s: %s\n", path, strerror(errno));
	while (fscanf(f, "0x%llx %7s %d\n", &phys, name, &count) == 3) {
		for (r = 0; r < NR_REGIONS; r++)
			if (!strcmp(name, region_names[r]))
				break;
		if (r == NR_REGIONS || phys < p->rstart[r] || phys >= p->rend[r] ||
		    phys % nptpool_page_size()) {
			ksft_print_msg("table 0x%llx (%s) outside its region\n", phys, name);
			ok = false;
			continue;
		}
		if (count > 1 || r == PGD)
			live[r]++;
	}
	fclose(f);
	return ok;
}

/* The `halted` file of a VM directory: 1, 0, or -1 when it cannot be read. */
int read_halted(const char *vm_dir)
{
	char path[352];
	u64 v;

	snprintf(path, sizeof(path), "%s/halted", vm_dir);
	return try_read_u64(path, &v) ? v == 1 : -1;
}

bool vm_halted(const struct pool *p)
{
	int h = read_halted(p->dir);

	if (h < 0)
		nptpool_die("read %s/halted: %s\n", p->dir, strerror(errno));
	return h;
}

/* Show one of a VM's debugfs files as TAP comments. */
static void dump_file(const struct pool *p, const char *file)
{
	char path[352], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", p->dir, file);
	f = fopen(path, "r");
	if (!f)
		nptpool_die("open %s: %s\n", path, strerror(errno));
	while (fgets(line, sizeof(line), f))
		ksft_print_msg("  %s: %s", file, line);
	fclose(f);
}

void dump_pool(const struct pool *p, const char *when)
{
	ksft_print_msg("%s: %s\n", p->dir, when);
	dump_file(p, "regions");
	dump_file(p, "halted");
}

/* /dev/kmsg from now on: the kernel messages logged after this call. */
int kmsg_open(void)
{
	int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);

	if (fd < 0)
		nptpool_die("open /dev/kmsg: %s\n", strerror(errno));
	lseek(fd, 0, SEEK_END);
	return fd;
}

/*
 * Whether a message logged since kmsg_open(), after those an earlier call read, contains
 * `needle`; its text, up to the first newline, goes to `line`.
 */
bool kmsg_find(int fd, const char *needle, char *line, size_t len)
{
	char rec[2048];
	ssize_t n;

	for (;;) {
		n = read(fd, rec, sizeof(rec) - 1);
		if (n < 0 && errno == EPIPE)	/* overwritten before we read it */
			continue;
		if (n <= 0)
			return false;
		rec[n] = 0;
		if (strstr(rec, needle)) {
			char *msg = strchr(rec, ';');

			msg = msg ? msg + 1 : rec;
			msg[strcspn(msg, "\n")] = 0;
			snprintf(line, len, "%s", msg);
			return true;
		}
	}
}

/* Whether nptpool logged since kmsg_open() that it could not reserve the pool of `pid`. */
bool reserve_failure_logged(int kmsg, pid_t pid, char *line, size_t len)
{
	char needle[128];

	snprintf(needle, sizeof(needle),
		 "stage-2 table pool for the VM of pid %d, VM creation fails with ENOMEM", pid);
	while (kmsg_find(kmsg, needle, line, len))
		if (strstr(line, "cannot reserve a "))
			return true;
	return false;
}

/*
 * Before a reading: write back dirty data, let RCU-deferred table frees run and drop
 * what reclaim would drop anyway.  Whether the caches could be dropped.
 */
bool settle(void)
{
	sync();
	sleep(1);
	return write_file_ok("/proc/sys/vm/drop_caches", "3\n");
}
