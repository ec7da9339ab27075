// SPDX-License-Identifier: GPL-2.0
/*
 * Fault-injection knobs: see include/fault_inject.h.
 */
#include <stdio.h>
#include <stdlib.h>

#include "fault_inject.h"
#include "nptpool.h"

struct knob {
	char path[128];
	char saved[64];
};
static struct knob knobs[32];
static int nr_knobs;

/* Every knob set_knob() changed back as it was; this thread's own fault injection off. */
void restore_knobs(void)
{
	while (nr_knobs > 0) {
		nr_knobs--;
		write_file_ok(knobs[nr_knobs].path, knobs[nr_knobs].saved);
	}
	write_file_ok("/proc/thread-self/make-it-fail", "0");
	write_file_ok("/proc/thread-self/fail-nth", "0");
}

/* Write `val` to the knob `name` of `dir`, saving what it held for restore_knobs(). */
void set_knob(const char *dir, const char *name, const char *val)
{
	struct knob *k;

	if (nr_knobs >= (int)ARRAY_SIZE(knobs))
		nptpool_die("too many knobs\n");
	if (!nr_knobs)
		atexit(restore_knobs);
	k = &knobs[nr_knobs++];
	snprintf(k->path, sizeof(k->path), "%s/%s", dir, name);
	read_file(k->path, k->saved, sizeof(k->saved));
	write_file(k->path, val);
}

/* The order of the buddy allocation that serves `pages` pages. */
unsigned int order_of(u64 pages)
{
	unsigned int order = 0;

	while ((1UL << order) < pages)
		order++;
	return order;
}
