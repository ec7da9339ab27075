// SPDX-License-Identifier: GPL-2.0

//! How many stage-2 tables a VM's memslots can need at once: the bound on what its pool
//! hands out.
//!
//! Plain Rust on `core` only, tested on the host with the allocator core it sits in.
//!
//! KVM maps a guest page only inside a memslot, or at a device address that
//! `kvm_phys_addr_ioremap()` is given, so every table it holds lies in a span some such
//! range touches, and it gives a table back when the unmap that removes its last entry
//! visits it, or after its grace period when a block replaces it (patch 4 of patches/).
//! The tables in place at any moment therefore never exceed those that map every page of
//! every memslot page by page: at each level
//! below the root, one table per aligned span of the guest-physical space that the table
//! covers and that some memslot touches. A span two memslots share needs its table once.
//!
//! ```text
//! tables(L) = |{ a >> span_shift(L) : a in some memslot }|   for L = start+1 ..= 3
//! span_shift(L) = PAGE_SHIFT + (4 - L) * (PAGE_SHIFT - 3)
//! ```
//!
//! With 4 KiB pages a last-level table covers 2 MiB, one at level 2 1 GiB and one at
//! level 1 512 GiB: a 1 GiB memslot aligned to 1 GiB needs 512 + 1 tables below a
//! level-1 root, about 1/512 of the memory it maps.

use super::{Region, LAST_LEVEL, MAX_PMD_PAGES, MAX_PUD_PAGES, PAGE_SHIFT};

/// One memslot's guest-physical range, in bytes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Range {
    /// First byte.
    pub start: u64,
    /// Length in bytes; an empty range maps nothing.
    pub len: u64,
}

/// The table pages each region needs to map a set of memslots page by page, root
/// excluded (its size is fixed when the VM is created).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Footprint {
    /// The pud region's tables: one level below the root, unless that is the last
    /// level (a two-level stage-2 has no pud region).
    pub pud: u64,
    /// The pmd region's tables: every level below the pud region's, down to the last.
    pub pmd: u64,
}

/// log2 of the guest-physical bytes one table at `level` covers.
fn span_shift(level: i8) -> Option<u32> {
    let below = u32::try_from(4i16.checked_sub(i16::from(level))?).ok()?;
    below.checked_mul(PAGE_SHIFT - 3)?.checked_add(PAGE_SHIFT)
}

/// The span of `shift` that holds `addr`: a span of 64 bits or more covers the space.
fn span_of(addr: u64, shift: u32) -> u64 {
    addr.checked_shr(shift).unwrap_or(0)
}

/// The tables needed to map every page of `ranges` in a stage-2 whose root is at
/// `start_level`, or `None` for a level outside -1..=2 or a range that wraps the
/// 64-bit space. `ranges` is sorted in place; memslots never overlap, and ranges that
/// do are counted as their union all the same.
pub fn footprint(ranges: &mut [Range], start_level: i8) -> Option<Footprint> {
    if !(-1..LAST_LEVEL).contains(&start_level) {
        return None;
    }
    for r in ranges.iter() {
        r.start.checked_add(r.len)?;
    }
    ranges.sort_unstable_by_key(|r| r.start);

    let mut total = Footprint::default();
    let mut level = start_level.checked_add(1)?;
    while level <= LAST_LEVEL {
        let shift = span_shift(level)?;
        let mut tables: u64 = 0;
        // The last span counted so far: ranges are sorted, so a span shared with an
        // earlier range can only be the last one counted.
        let mut counted: Option<u64> = None;
        for r in ranges.iter().filter(|r| r.len != 0) {
            let mut first = span_of(r.start, shift);
            // Checked above: start + len does not wrap, and len is not 0.
            let last = span_of(r.start + (r.len - 1), shift);
            if let Some(c) = counted {
                if first <= c {
                    first = c.checked_add(1)?;
                }
            }
            if first <= last {
                tables = tables.checked_add(last - first + 1)?;
            }
            counted = Some(counted.map_or(last, |c| c.max(last)));
        }
        match Region::for_level(level, start_level)? {
            Region::Pgd => return None,
            Region::Pud => total.pud = total.pud.checked_add(tables)?,
            Region::Pmd => total.pmd = total.pmd.checked_add(tables)?,
        }
        level = level.checked_add(1)?;
    }
    Some(total)
}

/// The regions of a pool fitted to `bound`: the bound, and beyond it, for memslots the
/// VMM adds once the VM runs (a flash device's memslot as firmware flips it, a test's
/// scratch memslot), an eighth more and at least [`FIT_MIN_PUD`] and [`FIT_MIN_PMD`]. The
/// headroom stops at what the module parameters may ask for; the bound never does, as a
/// pool below it could halt its VM.
pub fn fitted(bound: Footprint, start_level: i8) -> Option<Footprint> {
    let region = |need: u64, min: u64, max: u32| {
        let with_headroom = need.checked_add((need / 8).max(min))?;
        Some(with_headroom.min(u64::from(max)).max(need))
    };
    let pud = if Region::Pud.used_from(start_level) {
        region(bound.pud, FIT_MIN_PUD, MAX_PUD_PAGES)?
    } else {
        0
    };
    Some(Footprint {
        pud,
        pmd: region(bound.pmd, FIT_MIN_PMD, MAX_PMD_PAGES)?,
    })
}

/// The fewest spare pud-region tables of a fitted pool: a memslot far from the others
/// needs one at most (two where it straddles a span boundary).
pub const FIT_MIN_PUD: u64 = 2;
/// The fewest spare pmd-region tables of a fitted pool: room for a few small memslots
/// away from the others.
pub const FIT_MIN_PMD: u64 = 8;

#[cfg(test)]
mod tests {
    use super::*;

    extern crate std;
    use std::{collections::BTreeSet, vec::Vec};

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    /// Every span index a range touches at `shift`, by walking it span by span.
    fn brute(ranges: &[Range], start_level: i8) -> Footprint {
        let mut total = Footprint::default();
        for level in start_level + 1..=LAST_LEVEL {
            let shift = span_shift(level).unwrap();
            let mut spans = BTreeSet::new();
            for r in ranges.iter().filter(|r| r.len != 0) {
                let mut a = r.start;
                let end = r.start + r.len;
                while a < end {
                    spans.insert(span_of(a, shift));
                    match (span_of(a, shift) + 1).checked_shl(shift) {
                        Some(next) if shift < 64 && next > a => a = next,
                        _ => break,
                    }
                }
            }
            let n = spans.len() as u64;
            match Region::for_level(level, start_level).unwrap() {
                Region::Pud => total.pud += n,
                Region::Pmd => total.pmd += n,
                Region::Pgd => unreachable!(),
            }
        }
        total
    }

    #[test]
    fn one_aligned_slot_needs_a_table_per_span() {
        // 4 KiB pages, 40-bit IPA: root at level 1, level-2 tables are the pud region's.
        if PAGE_SHIFT != 12 {
            return;
        }
        let mut r = [Range {
            start: GIB,
            len: GIB,
        }];
        assert_eq!(footprint(&mut r, 1), Some(Footprint { pud: 1, pmd: 512 }));
        // 48-bit IPA: root at level 0, the level-1 and level-2 tables are both below
        // the pud region.
        let mut r = [Range {
            start: GIB,
            len: GIB,
        }];
        assert_eq!(
            footprint(&mut r, 0),
            Some(Footprint {
                pud: 1,
                pmd: 1 + 512
            })
        );
    }

    #[test]
    fn an_unaligned_slot_pays_for_both_ends() {
        if PAGE_SHIFT != 12 {
            return;
        }
        // 4 MiB starting 4 KiB before a 2 MiB boundary: 3 last-level tables.
        let mut r = [Range {
            start: 2 * MIB - 4096,
            len: 4 * MIB,
        }];
        assert_eq!(footprint(&mut r, 1), Some(Footprint { pud: 1, pmd: 3 }));
    }

    #[test]
    fn slots_sharing_a_span_need_its_table_once() {
        let span = 1u64 << span_shift(LAST_LEVEL).unwrap();
        // Two halves of one last-level span, given in reverse order, and one far away.
        let mut r = [
            Range {
                start: span + span / 2,
                len: span / 2,
            },
            Range {
                start: span,
                len: span / 2,
            },
            Range {
                start: 40 * span,
                len: 1,
            },
        ];
        let f = footprint(&mut r, 1).unwrap();
        assert_eq!(f.pmd, 2);
        assert_eq!(f, brute(&r, 1));
    }

    #[test]
    fn no_memory_needs_no_table() {
        assert_eq!(footprint(&mut [], 1), Some(Footprint::default()));
        let mut r = [Range {
            start: 5 * GIB,
            len: 0,
        }];
        assert_eq!(footprint(&mut r, 0), Some(Footprint::default()));
    }

    #[test]
    fn bad_input_is_refused() {
        let mut r = [Range {
            start: u64::MAX - 10,
            len: 11,
        }];
        assert_eq!(footprint(&mut r, 1), None);
        assert_eq!(footprint(&mut [], 3), None);
        assert_eq!(footprint(&mut [], -2), None);
        // The last byte of the space is fine.
        let mut r = [Range {
            start: u64::MAX - 10,
            len: 10,
        }];
        assert!(footprint(&mut r, 0).is_some());
    }

    #[test]
    fn random_slot_sets_match_a_span_by_span_count() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            seed >> 16
        };
        let page = 1u64 << PAGE_SHIFT;
        // Small enough for the span-by-span walk, large enough to cross level-2 spans
        // with every granule.
        let space = 1u64 << (span_shift(2).unwrap() + 2);
        for _ in 0..2000 {
            let mut ranges = Vec::new();
            let mut at = 0u64;
            for _ in 0..(next() % 6) {
                // Page-aligned, non-overlapping, in increasing order, then shuffled.
                at += (next() % (space / 8 / page)) * page;
                let len = (next() % (space / 8 / page)) * page;
                if at + len > space {
                    break;
                }
                ranges.push(Range { start: at, len });
                at += len;
            }
            let n = ranges.len();
            for i in 0..n {
                let j = (next() as usize) % n;
                ranges.swap(i, j);
            }
            for start_level in [-1i8, 0, 1, 2] {
                let expected = brute(&ranges, start_level);
                let mut copy = ranges.clone();
                assert_eq!(
                    footprint(&mut copy, start_level),
                    Some(expected),
                    "{ranges:?}"
                );
            }
        }
    }

    #[test]
    fn a_fitted_pool_holds_its_bound_and_headroom() {
        let start = if PAGE_SHIFT == 12 { 0 } else { 1 };
        let none = fitted(Footprint::default(), start).unwrap();
        assert_eq!(none.pmd, FIT_MIN_PMD);
        let has_pud = Region::Pud.used_from(start);
        assert_eq!(none.pud, if has_pud { FIT_MIN_PUD } else { 0 });

        let big = fitted(Footprint { pud: 80, pmd: 1600 }, start).unwrap();
        assert_eq!(big.pmd, 1800);
        assert_eq!(big.pud, if has_pud { 90 } else { 0 });

        // A two-level stage-2 has no pud region to fit.
        assert_eq!(fitted(Footprint { pud: 5, pmd: 5 }, 2).unwrap().pud, 0);

        // The headroom stops at what the module parameters may ask for, the bound never.
        let max = u64::from(MAX_PMD_PAGES);
        let near = fitted(
            Footprint {
                pud: 0,
                pmd: max - 3,
            },
            0,
        )
        .unwrap();
        assert_eq!(near.pmd, max);
        let past = fitted(
            Footprint {
                pud: 0,
                pmd: max + 5,
            },
            0,
        )
        .unwrap();
        assert_eq!(past.pmd, max + 5);
        let half = u64::MAX / 2;
        let huge = fitted(
            Footprint {
                pud: half,
                pmd: half,
            },
            0,
        )
        .unwrap();
        assert_eq!((huge.pud, huge.pmd), (half, half));
        assert!(fitted(
            Footprint {
                pud: 0,
                pmd: u64::MAX
            },
            0
        )
        .is_none());
    }
}
