// SPDX-License-Identifier: GPL-2.0

//! A VM's pool memory: one physically contiguous reservation, from `nptpool_kvm.c`, and
//! what the pages handed out of it still hold.

use kernel::{
    error::to_result,
    page::PAGE_SIZE,
    prelude::*, //
};

mod ffi {
    use kernel::ffi::{
        c_char,
        c_int, //
    };

    extern "C" {
        pub(super) fn nptpool_pool_reserve(
            pages: u64,
            zero: bool,
            phys: *mut u64,
            reserved: *mut u64,
            charged: *mut bool,
        ) -> c_int;
        pub(super) fn nptpool_pool_release(phys: u64, pages: u64);
        pub(super) fn nptpool_memcg_limit(
            pages: u64,
            path: *mut c_char,
            len: usize,
            max: *mut u64,
            usage: *mut u64,
        ) -> bool;
        pub(super) fn nptpool_page_count(phys: u64) -> c_int;
        pub(super) fn nptpool_page_clear(phys: u64);
        pub(super) fn nptpool_page_is_zero(phys: u64) -> bool;
        pub(super) fn nptpool_free_pages(pages: u64, short_of_memory: *mut bool) -> u64;
    }
}

/// A physically contiguous range of pages counted in `SecPageTables` and charged to the
/// reserving task's memory cgroup, whatever its size. Zeroed whole as it is reserved, or
/// not at all, each page then zeroed as it becomes a table ([`Reservation::clear_page`]).
///
/// # Invariants
///
/// `phys` and `pages` describe a live reservation from `nptpool_pool_reserve`, released
/// exactly once, on drop: `phys` is page aligned and each of the `pages` pages from it has
/// a `struct page`. If `zeroed`, every page was zeroed before `new` returned.
pub(crate) struct Reservation {
    phys: u64,
    pages: u64,
    charged: bool,
    zeroed: bool,
}

impl Reservation {
    /// Reserves at least `pages` pages (rounded up to a whole buddy block when the page
    /// allocator serves them), all zeroed if `zero`; may sleep.
    pub(crate) fn new(pages: u64, zero: bool) -> Result<Self> {
        let mut phys = 0u64;
        let mut reserved = 0u64;
        let mut charged = false;
        // SAFETY: the out-pointers are valid for writes for the duration of the call.
        to_result(unsafe {
            ffi::nptpool_pool_reserve(pages, zero, &mut phys, &mut reserved, &mut charged)
        })?;
        // INVARIANT: the call succeeded, so `phys`/`reserved` are a live reservation of
        // whole pages (`page_to_phys` of its first page), all zeroed if `zero`.
        Ok(Self {
            phys,
            pages: reserved,
            charged,
            zeroed: zero,
        })
    }

    /// Whether every page was zeroed as it was reserved.
    pub(crate) fn zeroed(&self) -> bool {
        self.zeroed
    }

    /// How many pages it holds: at least the number asked for.
    pub(crate) fn pages(&self) -> u64 {
        self.pages
    }

    /// The first page's physical address.
    pub(crate) fn phys(&self) -> u64 {
        self.phys
    }

    /// Whether the pages were reserved charged to the reserving task's memory cgroup
    /// (always, since patch 5 of `patches/`).
    pub(crate) fn charged(&self) -> bool {
        self.charged
    }

    /// The reference count of the page at `phys`: 1, the pool's own, plus KVM's while it
    /// is a table (1 for the table and 1 per live entry), plus any transient ones. `None`
    /// unless `phys` is a page of this reservation: only those are known to have a
    /// `struct page` for as long as `self` lives.
    pub(crate) fn page_count(&self, phys: u64) -> Option<i32> {
        self.holds(phys).then_some(())?;
        // SAFETY: `phys` is a page of this live reservation (checked just above), so it
        // has a `struct page` that stays while `self` is borrowed.
        Some(unsafe { ffi::nptpool_page_count(phys) })
    }

    /// Zeroes the page at `phys`; `None`, and nothing done, unless it is a page of this
    /// reservation.
    ///
    /// # Safety
    ///
    /// Nothing else reads or writes the page meanwhile: it was never handed out, or KVM
    /// gave it back, and the caller hands it out only after this returns.
    pub(crate) unsafe fn clear_page(&self, phys: u64) -> Option<()> {
        self.holds(phys).then_some(())?;
        // SAFETY: a page of this live reservation (checked just above), mapped in the
        // kernel's linear map like all of it; nobody else uses it, by this function's
        // safety requirements.
        unsafe { ffi::nptpool_page_clear(phys) };
        Some(())
    }

    /// Whether the page at `phys` reads all zeroes; `None` unless it is a page of this
    /// reservation.
    pub(crate) fn is_zero(&self, phys: u64) -> Option<bool> {
        self.holds(phys).then_some(())?;
        // SAFETY: a page of this live reservation (checked just above), mapped in the
        // kernel's linear map like all of it while `self` is borrowed; the read is C's,
        // so a concurrent writer would only make the answer stale.
        Some(unsafe { ffi::nptpool_page_is_zero(phys) })
    }

    /// Whether `phys` is the address of a page of this reservation.
    pub(crate) fn holds(&self, phys: u64) -> bool {
        let Ok(page_size) = u64::try_from(PAGE_SIZE) else {
            return false;
        };
        // By the type invariant `self.phys` is page aligned, so the offset is exactly when
        // `phys` is.
        phys.checked_sub(self.phys)
            .is_some_and(|offset| offset % page_size == 0 && offset / page_size < self.pages)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // SAFETY: by the type invariant this is a live reservation, released only here.
        // Its owners drop it only when nothing refers to its pages any more: the VM's
        // state from `vm_destroy`, once KVM has torn the tables down and the last RCU
        // callback freeing unlinked ones has run (patch 4 of patches/), and after its
        // debugfs files are gone; or on `Vm::create`'s error paths and in KUnit, before
        // any page of it was handed out.
        unsafe { ffi::nptpool_pool_release(self.phys, self.pages) }
    }
}

/// After [`Reservation::new`] failed for `pages` pages: the host's free pages outside CMA
/// areas as of now, and whether they are fewer than the reservation takes (the host is
/// short of memory rather than of a contiguous range). For a log line only.
pub(crate) fn free_pages(pages: u64) -> (u64, bool) {
    let mut short = false;
    // SAFETY: the out-pointer is valid for a write for the duration of the call.
    let free = unsafe { ffi::nptpool_free_pages(pages, &mut short) };
    (free, short)
}

/// A memory cgroup whose `memory.max` leaves less room than a reservation needed.
pub(crate) struct MemcgLimit {
    /// The cgroup's path, NUL terminated.
    path: [u8; 128],
    /// Its `memory.max`, in pages.
    max: u64,
    /// What is charged to it, in pages.
    usage: u64,
}

impl MemcgLimit {
    /// After [`Reservation::new`] failed for `pages` pages: the calling task's memory
    /// cgroup, or the first one above it, that has less than `pages` pages left under its
    /// limit, the likely cause. `None` if every one has room (the host is short instead).
    pub(crate) fn find(pages: u64) -> Option<Self> {
        let mut limit = Self {
            path: [0; 128],
            max: 0,
            usage: 0,
        };
        // SAFETY: the path buffer is valid for writes of its length, the other two
        // out-pointers for a `u64` each, for the duration of the call.
        let limited = unsafe {
            ffi::nptpool_memcg_limit(
                pages,
                limit.path.as_mut_ptr().cast(),
                limit.path.len(),
                &mut limit.max,
                &mut limit.usage,
            )
        };
        limited.then_some(limit)
    }

    /// The cgroup's path.
    pub(crate) fn path(&self) -> &CStr {
        CStr::from_bytes_until_nul(&self.path).unwrap_or(c"?")
    }

    /// Its `memory.max`, in pages.
    pub(crate) fn max(&self) -> u64 {
        self.max
    }

    /// What is charged to it, in pages.
    pub(crate) fn usage(&self) -> u64 {
        self.usage
    }
}
