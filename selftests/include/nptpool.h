/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The part of nptpool's selftest library that needs nothing but libc (lib/nptpool.c):
 * nptpool's debugfs (global counters, a VM's regions, tables and halted files), files,
 * /proc/meminfo, the kernel log, and settling the host before a reading.  pool_create and
 * nptpool_state link this part alone, without the KVM selftest library.
 *
 * Library code reports through ksft_print_msg() and fails with nptpool_die(): the ksft_*
 * result counters are per translation unit, so only a program's own file may count.
 */
#ifndef NPTPOOL_H
#define NPTPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>
#include <linux/types.h>

#include "kselftest.h"

#define NPTPOOL_DEBUGFS		"/sys/kernel/debug/nptpool"

/* For a test that needs nptpool loaded: skip without it.  In the test's own file. */
#define NPTPOOL_REQUIRE()							\
do {										\
	if (!nptpool_loaded())							\
		ksft_exit_skip("nptpool is not loaded (no %s)\n", NPTPOOL_DEBUGFS);	\
} while (0)

/* Print "Bail out! ..." and exit with KSFT_FAIL. */
__printf(1, 2) __noreturn void nptpool_die(const char *fmt, ...);
bool nptpool_loaded(void);

/*
 * The host's page, the unit of nptpool's pools and of KVM's stage-2 tables (4, 16 or
 * 64 KiB), and the stage-2 KVM builds from it: everything a test expects of a pool's
 * shape is derived from these, never from 4 KiB.
 */
u64 nptpool_page_size(void);
unsigned int nptpool_page_shift(void);
u64 nptpool_table_span(int level);
u64 nptpool_last_table_span(void);
void nptpool_s2_shape(unsigned int ipa, int *start_level, u64 *root_pages);
bool nptpool_s2_has_pud(int start_level);

/* Files. */
bool write_file_ok(const char *path, const char *val);
void write_file(const char *path, const char *val);
void read_file(const char *path, char *buf, size_t len);
bool try_read_u64(const char *path, u64 *v);
u64 read_u64(const char *path);
u64 meminfo_kib(const char *field);
u64 vmstat(const char *name);
u64 elapsed_ms(const struct timespec *since);

/* nptpool's global counters. */
struct counters {
	u64 vms, reserved, in_use;
};

bool counters_try_read(struct counters *c);
void counters_read(struct counters *c);
bool counters_equal(const struct counters *a, const struct counters *b);
bool counters_back(const struct counters *base, int seconds);
void counters_str(const struct counters *c, char *buf, size_t len);

/* A VM's pool, as its debugfs directory shows it. */
enum region { PGD, PUD, PMD, NR_REGIONS };
extern const char * const region_names[NR_REGIONS];

struct pool {
	char dir[320];
	u64 start, end, reserved_pages;
	int memcg_charged;
	u64 rstart[NR_REGIONS], rend[NR_REGIONS], pages[NR_REGIONS], used[NR_REGIONS];
	/* Of the used pages, those KVM gave back, kept for the region's next tables */
	u64 free[NR_REGIONS];
	/*
	 * From `footprint`: the memory KVM may map (memslots), the tables that mapping all
	 * of it page by page takes (the bound on what KVM holds at once, root excluded), and
	 * the tables handed out and not given back now.
	 */
	u64 memory, bound[NR_REGIONS], in_use[NR_REGIONS];
	/* How the pool is sized: parameters, root-until-first-run or fitted (fit=1) */
	char sizing[32];
};

long newest_vm_id_of(pid_t pid, char *dir, size_t len, bool may_be_unloaded);
long newest_vm_id(char *dir, size_t len);
void read_pool(struct pool *p);
void read_footprint(struct pool *p);
int start_level(const struct pool *p);
bool tables_in_regions(const struct pool *p, u64 live[NR_REGIONS]);
int read_halted(const char *vm_dir);
bool vm_halted(const struct pool *p);
void dump_pool(const struct pool *p, const char *when);

/* The kernel log. */
int kmsg_open(void);
bool kmsg_find(int fd, const char *needle, char *line, size_t len);
bool reserve_failure_logged(int kmsg, pid_t pid, char *line, size_t len);

bool settle(void);

#endif /* NPTPOOL_H */
