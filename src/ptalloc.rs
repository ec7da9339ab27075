// SPDX-License-Identifier: GPL-2.0

//! The stage-2 table allocator of SeKVM's `PTAllocSpec`, for one VM's pool.
//!
//! Plain Rust on `core` only: the module compiles this file, and the host tests compile the
//! very same file to check it against the specification.
//!
//! A pool is one physically contiguous range split into three regions, each served by a
//! bump pointer:
//!
//! ```text
//! pgd_start ....... pud_start ....... pmd_start ....... pool_end
//! |  pgd region    |   pud region    |   pmd region     |
//! ```
//!
//! One allocation hands out the page at the region's bump pointer and advances it by a
//! page, or, when the region has no page left, halts the allocator: that and every later
//! call return nothing and change nothing. Pages are never given back one by one; the pool
//! goes back whole when the VM dies.

// The tables KVM gave back, reused above this allocator; `#[path]` keeps it next to this
// file in both builds, where this file is the host crate's root and a module of the kernel's.
#[path = "recycle.rs"]
pub mod recycle;

// The bound on what a VM's memslots can make KVM hold at once, shown beside the regions.
#[path = "footprint.rs"]
pub mod footprint;

/// log2 of the unit the pool is carved in: the kernel's page, as KVM's tables are pages.
/// The kernel build sets the page-size cfg from its `.config`; the host tests build this
/// file once per granule with the same cfg, and the module checks at build time that the
/// two agree.
#[cfg(CONFIG_ARM64_64K_PAGES)]
pub const PAGE_SHIFT: u32 = 16;
/// log2 of the unit the pool is carved in (16 KiB kernel).
#[cfg(CONFIG_ARM64_16K_PAGES)]
pub const PAGE_SHIFT: u32 = 14;
/// log2 of the unit the pool is carved in (4 KiB kernel).
#[cfg(not(any(CONFIG_ARM64_16K_PAGES, CONFIG_ARM64_64K_PAGES)))]
pub const PAGE_SHIFT: u32 = 12;

/// The unit the pool is carved in, in bytes.
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;

/// The deepest level of an Arm stage-2: it holds only leaf entries, so the tables at it
/// are the last-level tables.
pub const LAST_LEVEL: i8 = 3;

/// log2 of the guest memory one last-level table maps (2 MiB, 32 MiB, 512 MiB): a table
/// is a page of 8-byte entries, each mapping a page.
pub const LAST_TABLE_SPAN_SHIFT: u32 = PAGE_SHIFT + (PAGE_SHIFT - 3);

/// log2 of the guest memory one table at the level above the last maps (1 GiB, 64 GiB,
/// 4 TiB).
pub const LEVEL2_TABLE_SPAN_SHIFT: u32 = LAST_TABLE_SPAN_SHIFT + (PAGE_SHIFT - 3);

/// Default size of the pmd region: the last-level tables for 1920 MiB of guest memory
/// mapped page by page (960 pages with 4 KiB pages, 60 with 16 KiB), and at least 16,
/// so that a few sparse memslots fit with 64 KiB pages (where 4 would do the 1920 MiB).
pub const DEFAULT_PMD_PAGES: u32 = max_u32(span_tables(1920 << 20, LAST_TABLE_SPAN_SHIFT), 16);

/// Default size of the pud region: the tables one level above the last for 32 GiB of
/// IPA space (32 with 4 KiB pages), at least 4.
pub const DEFAULT_PUD_PAGES: u32 = max_u32(span_tables(32 << 30, LEVEL2_TABLE_SPAN_SHIFT), 4);

/// Upper bounds of the module parameters, the same memory on every granule: 1 GiB of
/// pmd region (262144 pages of 4 KiB), 16 MiB of pud region.
pub const MAX_PMD_PAGES: u32 = (1u64 << (30 - PAGE_SHIFT)) as u32;
/// See [`MAX_PMD_PAGES`].
pub const MAX_PUD_PAGES: u32 = (1u64 << (24 - PAGE_SHIFT)) as u32;

/// Tables of `1 << span_shift` bytes each needed to map `bytes`, rounded up.
const fn span_tables(bytes: u64, span_shift: u32) -> u32 {
    let tables = bytes.div_ceil(1 << span_shift);
    if tables > u32::MAX as u64 {
        u32::MAX
    } else {
        tables as u32
    }
}

const fn max_u32(a: u32, b: u32) -> u32 {
    if a > b {
        a
    } else {
        b
    }
}

/// The three regions of a pool.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Region {
    /// The root table (possibly several concatenated pages).
    Pgd,
    /// Tables one level below the root.
    Pud,
    /// All deeper tables.
    Pmd,
}

impl Region {
    /// Every region, in pool order.
    pub const ALL: [Region; 3] = [Region::Pgd, Region::Pud, Region::Pmd];

    /// The region that serves a table at `level` of a stage-2 whose root is at
    /// `start_level`, or `None` for a level that cannot hold a table of it.
    ///
    /// The root is the pgd region's, the last-level tables are the pmd region's whatever
    /// the number of levels, and the pud region serves the level below the root when
    /// that is not the last: a stage-2 of two levels (16K and 64K pages at their default
    /// IPA sizes, 4K pages at 32 bits) has no pud tables.
    pub fn for_level(level: i8, start_level: i8) -> Option<Region> {
        // Arm stage-2 tables live at levels -1..=3; the root is above the last level.
        if !(-1..LAST_LEVEL).contains(&start_level) || level < start_level || level > LAST_LEVEL {
            return None;
        }
        match i16::from(level) - i16::from(start_level) {
            0 => Some(Region::Pgd),
            1 if level < LAST_LEVEL => Some(Region::Pud),
            _ => Some(Region::Pmd),
        }
    }

    /// Whether a stage-2 whose root is at `start_level` has tables of this region: a
    /// region it has none of is not reserved.
    pub fn used_from(self, start_level: i8) -> bool {
        (-1..LAST_LEVEL).contains(&start_level)
            && (self != Region::Pud || start_level < LAST_LEVEL - 1)
    }

    /// The name used in log lines and debugfs.
    pub fn name(self) -> &'static str {
        match self {
            Region::Pgd => "pgd",
            Region::Pud => "pud",
            Region::Pmd => "pmd",
        }
    }
}

/// Where a pool's regions lie, as physical addresses.
///
/// # Invariants
///
/// `pgd_start <= pud_start <= pmd_start <= pool_end`, all multiples of [`PAGE_SIZE`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Layout {
    pgd_start: u64,
    pud_start: u64,
    pmd_start: u64,
    pool_end: u64,
}

impl Layout {
    /// Lays out regions of the given sizes, in pages, from `base` on; `None` if `base`
    /// is not page aligned or the pool would not fit below 2^64.
    pub fn new(base: u64, pgd_pages: u64, pud_pages: u64, pmd_pages: u64) -> Option<Layout> {
        if base % PAGE_SIZE != 0 {
            return None;
        }
        let pud_start = base.checked_add(pgd_pages.checked_mul(PAGE_SIZE)?)?;
        let pmd_start = pud_start.checked_add(pud_pages.checked_mul(PAGE_SIZE)?)?;
        let pool_end = pmd_start.checked_add(pmd_pages.checked_mul(PAGE_SIZE)?)?;
        Some(Layout {
            pgd_start: base,
            pud_start,
            pmd_start,
            pool_end,
        })
    }

    /// Total pages needed for regions of these sizes, `None` on overflow.
    pub fn total_pages(pgd_pages: u64, pud_pages: u64, pmd_pages: u64) -> Option<u64> {
        pgd_pages.checked_add(pud_pages)?.checked_add(pmd_pages)
    }

    /// The region's `[start, end)` bounds.
    pub fn bounds(&self, region: Region) -> (u64, u64) {
        match region {
            Region::Pgd => (self.pgd_start, self.pud_start),
            Region::Pud => (self.pud_start, self.pmd_start),
            Region::Pmd => (self.pmd_start, self.pool_end),
        }
    }

    /// The whole pool's `[start, end)` bounds.
    pub fn pool(&self) -> (u64, u64) {
        (self.pgd_start, self.pool_end)
    }
}

/// One VM's allocator state: the spec's three `next` pointers and its `halt` flag.
///
/// The kernel keeps it inside the VM's spinlock, so that `&mut self`, and with it every
/// allocation, is only reachable through the lock's guard: the spec's `LockOwn true`.
///
/// # Invariants
///
/// For each region, `start <= next <= end` and `next` is a multiple of [`PAGE_SIZE`]
/// (the spec's `rely` on the bump pointers).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct PtAlloc {
    layout: Layout,
    pgd_next: u64,
    pud_next: u64,
    pmd_next: u64,
    halt: bool,
}

impl PtAlloc {
    /// A fresh allocator: every bump pointer at the start of its region.
    pub fn new(layout: Layout) -> PtAlloc {
        PtAlloc {
            layout,
            pgd_next: layout.pgd_start,
            pud_next: layout.pud_start,
            pmd_next: layout.pmd_start,
            halt: false,
        }
    }

    /// The pool's layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The region's bump pointer (the spec's `get_*_next`).
    pub fn next(&self, region: Region) -> u64 {
        match region {
            Region::Pgd => self.pgd_next,
            Region::Pud => self.pud_next,
            Region::Pmd => self.pmd_next,
        }
    }

    /// The spec's `set_*_next`; callers keep the type invariant.
    fn set_next(&mut self, region: Region, next: u64) {
        match region {
            Region::Pgd => self.pgd_next = next,
            Region::Pud => self.pud_next = next,
            Region::Pmd => self.pmd_next = next,
        }
    }

    /// Whether the allocator has halted (the spec's `halt`).
    pub fn halted(&self) -> bool {
        self.halt
    }

    /// Pages handed out from the region so far.
    pub fn used_pages(&self, region: Region) -> u64 {
        // By the type invariant, `next >= start`: this cannot wrap.
        (self.next(region) - self.layout.bounds(region).0) / PAGE_SIZE
    }

    /// The region's size in pages.
    pub fn region_pages(&self, region: Region) -> u64 {
        let (start, end) = self.layout.bounds(region);
        (end - start) / PAGE_SIZE
    }

    /// `alloc_pgd_page`, `alloc_pud_page` and `alloc_pmd_page` of the spec: the physical
    /// address of a fresh page of `region`, or `None` (the spec's 0) when halted or when
    /// the region is out of room, which halts the allocator.
    pub fn alloc(&mut self, region: Region) -> Option<u64> {
        if self.halt {
            return None;
        }
        let (_, end) = self.layout.bounds(region);
        let next = self.next(region);
        match next.checked_add(PAGE_SIZE) {
            Some(after) if after <= end => {
                self.set_next(region, after);
                Some(next)
            }
            // The spec's `panic`: halt, return 0.
            _ => {
                self.halt = true;
                None
            }
        }
    }

    /// Whether `pages` fresh pages of `region` (one for `pages` 0, as
    /// [`alloc_contiguous`](Self::alloc_contiguous) hands out) can be handed out now: the
    /// allocator is not halted and the region has room for all of them. Not part of the
    /// spec and changes nothing: a caller that can do without the pages asks this first,
    /// so that a request the region cannot serve never reaches the halting `alloc`.
    pub fn has_room(&self, region: Region, pages: u32) -> bool {
        if self.halt {
            return false;
        }
        let (_, end) = self.layout.bounds(region);
        u64::from(pages.max(1))
            .checked_mul(PAGE_SIZE)
            .and_then(|len| self.next(region).checked_add(len))
            .is_some_and(|after| after <= end)
    }

    /// `pages` successive allocations from `region`, for a root of concatenated pages.
    /// Returns the first page's address; the pages are consecutive because each step
    /// advances the same bump pointer. `None`, and halted, if any step fails.
    pub fn alloc_contiguous(&mut self, region: Region, pages: u32) -> Option<u64> {
        let first = self.alloc(region)?;
        for _ in 1..pages {
            self.alloc(region)?;
        }
        Some(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 0x8000_0000;

    fn pool(pgd: u64, pud: u64, pmd: u64) -> PtAlloc {
        PtAlloc::new(Layout::new(BASE, pgd, pud, pmd).expect("layout fits"))
    }

    #[test]
    fn each_region_bumps_by_a_page_from_its_start() {
        let mut a = pool(2, 3, 4);
        assert_eq!(a.alloc(Region::Pmd), Some(BASE + 5 * PAGE_SIZE));
        assert_eq!(a.alloc(Region::Pgd), Some(BASE));
        assert_eq!(a.alloc(Region::Pud), Some(BASE + 2 * PAGE_SIZE));
        assert_eq!(a.alloc(Region::Pmd), Some(BASE + 6 * PAGE_SIZE));
        assert_eq!(a.used_pages(Region::Pmd), 2);
        assert!(!a.halted());
    }

    #[test]
    fn last_page_is_handed_out_then_the_region_halts_everything() {
        let mut a = pool(1, 1, 2);
        assert_eq!(a.alloc(Region::Pud), Some(BASE + PAGE_SIZE));
        assert_eq!(a.alloc(Region::Pud), None);
        assert!(a.halted());
        let before = a.clone();
        for r in Region::ALL {
            assert_eq!(a.alloc(r), None, "{r:?} after halt");
        }
        assert_eq!(a, before, "a halted allocator changes nothing");
    }

    #[test]
    fn root_of_concatenated_pages_is_consecutive() {
        let mut a = pool(16, 1, 1);
        assert_eq!(a.alloc_contiguous(Region::Pgd, 16), Some(BASE));
        assert_eq!(a.used_pages(Region::Pgd), 16);
        assert_eq!(a.alloc(Region::Pgd), None);
    }

    #[test]
    fn empty_region_halts_on_first_use() {
        let mut a = pool(1, 0, 1);
        assert_eq!(a.alloc(Region::Pud), None);
        assert!(a.halted());
    }

    #[test]
    fn has_room_answers_without_changing_anything() {
        let mut a = pool(1, 1, 2);
        assert!(a.has_room(Region::Pmd, 1));
        assert!(a.has_room(Region::Pmd, 2));
        assert!(!a.has_room(Region::Pmd, 3));
        assert_eq!(a.alloc(Region::Pmd), Some(BASE + 2 * PAGE_SIZE));
        assert_eq!(a.alloc(Region::Pmd), Some(BASE + 3 * PAGE_SIZE));
        let full = a.clone();
        for pages in 0..4 {
            assert!(
                !a.has_room(Region::Pmd, pages),
                "{pages} pages of a full region"
            );
        }
        assert_eq!(a, full, "asking changes nothing");
        assert!(
            !a.halted(),
            "a full region is not a halt until alloc finds it full"
        );
        assert_eq!(
            a.alloc(Region::Pud),
            Some(BASE + PAGE_SIZE),
            "other regions serve on"
        );
        assert!(!a.has_room(Region::Pud, 1));
        assert_eq!(a.alloc(Region::Pud), None);
        assert!(a.halted());
        assert!(
            !a.has_room(Region::Pgd, 1),
            "a halted allocator has no room anywhere"
        );
    }

    #[test]
    fn has_room_is_exactly_when_alloc_contiguous_succeeds_without_halting() {
        // Every state of a small pool reached by allocations in each region, every size.
        for pgd in 0..4u64 {
            for pud in 0..3u64 {
                for pmd in 0..3u64 {
                    let mut a = pool(3, 2, 2);
                    for (region, n) in [(Region::Pgd, pgd), (Region::Pud, pud), (Region::Pmd, pmd)]
                    {
                        for _ in 0..n {
                            let _ = a.alloc(region);
                        }
                    }
                    for region in Region::ALL {
                        for pages in 0..5u32 {
                            let mut b = a.clone();
                            let room = a.has_room(region, pages);
                            let got = b.alloc_contiguous(region, pages);
                            assert_eq!(
                                room,
                                got.is_some() && !b.halted(),
                                "{region:?} {pages} pages from {a:?}"
                            );
                            if room {
                                assert_eq!(got, Some(a.next(region)));
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn levels_map_to_regions_for_every_start_level() {
        for start in -1..=1i8 {
            assert_eq!(Region::for_level(start, start), Some(Region::Pgd));
            assert_eq!(Region::for_level(start + 1, start), Some(Region::Pud));
            for deeper in start + 2..=3 {
                assert_eq!(Region::for_level(deeper, start), Some(Region::Pmd));
            }
            assert_eq!(Region::for_level(start - 1, start), None);
            assert_eq!(Region::for_level(4, start), None);
            assert!(Region::ALL.iter().all(|r| r.used_from(start)));
        }
        assert_eq!(Region::for_level(0, -2), None);
        assert!(!Region::Pgd.used_from(-2));
    }

    #[test]
    fn two_level_stage2_takes_last_level_tables_from_pmd_and_no_pud() {
        assert_eq!(Region::for_level(2, 2), Some(Region::Pgd));
        assert_eq!(Region::for_level(3, 2), Some(Region::Pmd));
        assert_eq!(Region::for_level(1, 2), None);
        assert!(Region::Pgd.used_from(2) && Region::Pmd.used_from(2));
        assert!(!Region::Pud.used_from(2));
        // A root cannot sit at the last level.
        assert_eq!(Region::for_level(3, 3), None);
        assert!(Region::ALL.iter().all(|r| !r.used_from(3)));
    }

    #[test]
    fn defaults_cover_the_same_guest_memory_on_every_granule() {
        let mapped = |tables: u32| u64::from(tables) << LAST_TABLE_SPAN_SHIFT;
        assert!(mapped(DEFAULT_PMD_PAGES) >= 1920 << 20);
        assert!(u64::from(DEFAULT_PUD_PAGES) << LEVEL2_TABLE_SPAN_SHIFT >= 32 << 30);
        assert!(DEFAULT_PMD_PAGES >= 16 && DEFAULT_PUD_PAGES >= 4);
        assert_eq!(u64::from(MAX_PMD_PAGES) * PAGE_SIZE, 1 << 30);
        assert_eq!(u64::from(MAX_PUD_PAGES) * PAGE_SIZE, 16 << 20);
        assert!(DEFAULT_PMD_PAGES <= MAX_PMD_PAGES && DEFAULT_PUD_PAGES <= MAX_PUD_PAGES);
        let expected = match PAGE_SHIFT {
            12 => (960, 32, 2 << 20),
            14 => (60, 4, 32 << 20),
            16 => (16, 4, 512 << 20),
            _ => unreachable!("arm64 has 4K, 16K and 64K pages"),
        };
        assert_eq!(
            (
                DEFAULT_PMD_PAGES,
                DEFAULT_PUD_PAGES,
                1u64 << LAST_TABLE_SPAN_SHIFT
            ),
            expected
        );
    }

    #[test]
    fn layout_rejects_overflow_and_misalignment() {
        assert!(Layout::new(BASE + 1, 1, 1, 1).is_none());
        assert!(Layout::new(u64::MAX & !(PAGE_SIZE - 1), 1, 1, 1).is_none());
        assert!(Layout::new(0, u64::MAX / PAGE_SIZE + 1, 0, 0).is_none());
        assert_eq!(Layout::total_pages(u64::MAX, 1, 0), None);
        let l = Layout::new(BASE, 1, 2, 3).expect("fits");
        assert_eq!(l.pool(), (BASE, BASE + 6 * PAGE_SIZE));
    }
}
