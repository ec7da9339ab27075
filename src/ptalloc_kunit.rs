// SPDX-License-Identifier: GPL-2.0

//! KUnit suite `nptpool_ptalloc`: the allocator core as the module runs it, inside the
//! kernel, on a real pool from the module's own reservation path and under the VM lock
//! type, built by the kernel's compiler for the kernel's target. The host checks the same
//! core against the spec exhaustively (spec/); these check that what they proved is what
//! runs here.

use kernel::prelude::*;

#[kunit_tests(nptpool_ptalloc)]
mod tests {
    use kernel::{
        prelude::*,
        sync::{
            new_spinlock,
            SpinLock, //
        },
    };

    use crate::{
        ptalloc::{
            Layout,
            PtAlloc,
            Region,
            PAGE_SIZE, //
        },
        reservation::Reservation, //
    };

    /// A real pool of `pgd + pud + pmd` pages and its allocator under a spinlock.
    fn pool(pgd: u64, pud: u64, pmd: u64) -> Result<(Reservation, Pin<KBox<SpinLock<PtAlloc>>>)> {
        let pages = Layout::total_pages(pgd, pud, pmd).ok_or(EINVAL)?;
        let reservation = Reservation::new(pages, false)?;
        let layout = Layout::new(reservation.phys(), pgd, pud, pmd).ok_or(EINVAL)?;
        let alloc = KBox::pin_init(new_spinlock!(PtAlloc::new(layout)), GFP_KERNEL)?;
        Ok((reservation, alloc))
    }

    #[test]
    fn every_pool_page_is_handed_out_once_in_its_region_then_the_vm_halts() -> Result {
        let (reservation, alloc) = pool(1, 2, 5)?;
        let mut a = alloc.lock();
        let mut expected = reservation.phys();
        for region in Region::ALL {
            let (start, end) = a.layout().bounds(region);
            assert_eq!(start, expected);
            for _ in 0..a.region_pages(region) {
                let page = a.alloc(region).ok_or(ENOMEM)?;
                assert_eq!(page, expected);
                assert!(page >= start && page < end);
                // A fresh pool page: nobody else holds a reference to it.
                assert_eq!(reservation.page_count(page), Some(1));
                expected = expected.checked_add(PAGE_SIZE).ok_or(EINVAL)?;
            }
        }
        // Counts are read for pages of the reservation only.
        let first = reservation.phys();
        let end = reservation
            .pages()
            .checked_mul(PAGE_SIZE)
            .and_then(|len| first.checked_add(len))
            .ok_or(EINVAL)?;
        let unaligned = first.checked_add(8).ok_or(EINVAL)?;
        assert_eq!(reservation.page_count(unaligned), None);
        assert_eq!(reservation.page_count(end), None);
        assert_eq!(reservation.page_count(first.wrapping_sub(PAGE_SIZE)), None);
        assert!(!a.halted());
        assert_eq!(a.alloc(Region::Pmd), None);
        assert!(a.halted());
        let before = a.clone();
        for region in Region::ALL {
            assert_eq!(a.alloc(region), None);
        }
        assert_eq!(*a, before);
        Ok(())
    }

    /// A pool reserved zeroed reads zero in every page, so its fresh pages go to KVM as
    /// they are; one reserved unzeroed does once each page is cleared. Meaningful where
    /// free pages are poisoned (make check-debug boots with `page_poison=1`).
    #[test]
    fn a_pool_reserved_zeroed_reads_zero_and_an_unzeroed_one_once_cleared() -> Result {
        // Buddy-served and, with 4 KiB pages, one page over a 4 MiB block: from
        // alloc_contig_pages(). Larger pages' largest blocks are too large for a test.
        let large = if PAGE_SIZE == 4096 { 1025 } else { 65 };
        for pages in [64u64, large] {
            for zero in [true, false] {
                let reservation = Reservation::new(pages, zero)?;
                assert_eq!(reservation.zeroed(), zero);
                // Exactly as many: alloc_contig_pages(), not a buddy block rounded up.
                if pages == large && PAGE_SIZE == 4096 {
                    assert_eq!(reservation.pages(), pages);
                }
                for page in 0..reservation.pages() {
                    let at = page
                        .checked_mul(PAGE_SIZE)
                        .and_then(|offset| reservation.phys().checked_add(offset))
                        .ok_or(EINVAL)?;
                    if !zero {
                        // SAFETY: a page of a reservation this test alone has.
                        unsafe { reservation.clear_page(at) }.ok_or(EINVAL)?;
                    }
                    assert_eq!(reservation.is_zero(at), Some(true));
                }
            }
        }
        Ok(())
    }

    #[test]
    fn one_empty_region_halts_the_whole_vm() -> Result {
        let (_reservation, alloc) = pool(1, 1, 4)?;
        let mut a = alloc.lock();
        assert!(a.alloc(Region::Pud).is_some());
        assert!(a.alloc(Region::Pud).is_none());
        // The pmd region still has room, but the VM is halted.
        assert_eq!(a.alloc(Region::Pmd), None);
        assert_eq!(a.used_pages(Region::Pmd), 0);
        Ok(())
    }

    #[test]
    fn a_root_of_sixteen_concatenated_pages_is_consecutive() -> Result {
        let (reservation, alloc) = pool(16, 1, 1)?;
        let mut a = alloc.lock();
        assert_eq!(
            a.alloc_contiguous(Region::Pgd, 16),
            Some(reservation.phys())
        );
        assert_eq!(a.used_pages(Region::Pgd), 16);
        assert_eq!(
            a.alloc(Region::Pud),
            reservation.phys().checked_add(16 * PAGE_SIZE)
        );
        Ok(())
    }

    /// A long pseudo-random run on one pool: every allocation is the region's next page,
    /// and the first failure comes exactly when the chosen region is full.
    #[test]
    fn random_allocations_follow_the_bump_pointers() -> Result {
        let (_reservation, alloc) = pool(2, 16, 200)?;
        let mut a = alloc.lock();
        let mut x: u32 = 0x9e37_79b9;
        for _ in 0..10_000 {
            // xorshift32: a fixed sequence, so a failure reproduces.
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let region = match x % 3 {
                0 => Region::Pgd,
                1 => Region::Pud,
                _ => Region::Pmd,
            };
            let (_, end) = a.layout().bounds(region);
            let next = a.next(region);
            let full = next == end;
            let halted = a.halted();
            match a.alloc(region) {
                Some(page) => {
                    assert!(!halted && !full);
                    assert_eq!(page, next);
                    assert_eq!(Some(a.next(region)), next.checked_add(PAGE_SIZE));
                }
                None => {
                    assert!(halted || full);
                    assert!(a.halted());
                    assert_eq!(a.next(region), next);
                }
            }
        }
        assert!(a.halted());
        Ok(())
    }
}
