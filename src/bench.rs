// SPDX-License-Identifier: GPL-2.0

//! The allocator's own cost, for `make bench`: debugfs `alloc_bench`.
//!
//! Reading the file times, on the reading CPU, [`ROUNDS`] table allocations the way a VM
//! makes them (take the spinlock, bump, release) from one allocator shared by every
//! reader, so readers on several CPUs at once measure the lock under contention; then as
//! many pages taken and given back the way KVM's stock memcache gets them (a zeroed,
//! memcg-charged page from the page allocator). Only addresses are handed out: the
//! shared allocator spans no memory, so nothing needs reserving or zeroing.

use kernel::{
    alloc::flags::{
        __GFP_ZERO,
        GFP_KERNEL_ACCOUNT, //
    },
    fmt,
    page::Page,
    prelude::*,
    sync::{
        new_spinlock,
        SpinLock, //
    },
    time::{
        Instant,
        Monotonic, //
    },
};

use crate::ptalloc::{
    Layout,
    PtAlloc,
    Region, //
};

/// Allocations timed per read, on each side.
const ROUNDS: u32 = 20000;

/// Regions large enough that no run of reads exhausts them: 2^38 pages of addresses.
const BENCH_PAGES: u64 = 1 << 38;

/// The allocator every reader of `alloc_bench` shares.
#[pin_data]
pub(crate) struct AllocBench {
    #[pin]
    alloc: SpinLock<PtAlloc>,
}

impl AllocBench {
    pub(crate) fn new() -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            alloc <- new_spinlock!(
                PtAlloc::new(Layout::new(0, 1, 1, BENCH_PAGES).ok_or(EINVAL)?),
                "nptpool_alloc_bench"
            ),
        })
    }

    /// Nanoseconds for `ROUNDS` lock-bump-unlock rounds; `None` if the shared allocator ran
    /// dry (it cannot within any realistic run) or halted.
    fn time_pool(&self) -> Option<i64> {
        let start = Instant::<Monotonic>::now();
        for _ in 0..ROUNDS {
            self.alloc.lock().alloc(Region::Pmd)?;
        }
        Some(start.elapsed().as_nanos())
    }

    /// Nanoseconds for `ROUNDS` zeroed, charged pages allocated and freed one by one.
    fn time_page_allocator() -> Result<i64> {
        let start = Instant::<Monotonic>::now();
        for _ in 0..ROUNDS {
            drop(Page::alloc_page(GFP_KERNEL_ACCOUNT | __GFP_ZERO)?);
        }
        Ok(start.elapsed().as_nanos())
    }
}

/// The debugfs read: one line per measurement, `NAME VALUE`.
pub(crate) fn show(bench: &AllocBench, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let per_alloc = |ns: i64| ns / i64::from(ROUNDS);
    writeln!(f, "rounds {ROUNDS}")?;
    match bench.time_pool() {
        Some(ns) => writeln!(f, "ptalloc_alloc_ns {}", per_alloc(ns))?,
        None => writeln!(f, "ptalloc_alloc_ns exhausted")?,
    }
    match AllocBench::time_page_allocator() {
        Ok(ns) => writeln!(f, "memcache_alloc_ns {}", per_alloc(ns)),
        Err(_) => writeln!(f, "memcache_alloc_ns enomem"),
    }
}
