/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The kernel's fault-injection knobs (debugfs), set for a test and put back as they were
 * at exit, also when an assertion ends the test early (lib/fault_inject.c, libc only).
 */
#ifndef NPTPOOL_FAULT_INJECT_H
#define NPTPOOL_FAULT_INJECT_H

#include <linux/types.h>

#define FAIL_PAGE_ALLOC	"/sys/kernel/debug/fail_page_alloc"
#define FAILSLAB	"/sys/kernel/debug/failslab"

void set_knob(const char *dir, const char *name, const char *val);
void restore_knobs(void);
unsigned int order_of(u64 pages);

#endif /* NPTPOOL_FAULT_INJECT_H */
