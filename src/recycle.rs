// SPDX-License-Identifier: GPL-2.0

//! The tables KVM gave back, kept for reuse inside the same VM's pool.
//!
//! PTAllocSpec's bump allocator (`ptalloc.rs`) stays the only source of fresh pages. KVM
//! gives a table up when the last mapping under it goes (an unmap, a memslot deleted or
//! moved), when a block replaces it, or when a vCPU that took it loses the race to install
//! it; this layer keeps each such pud- or pmd-region page and hands it out again before
//! the region's bump pointer moves. So the pages a VM takes from its pool are bounded by
//! the tables it holds at once, not by how many it ever held. The root is never given
//! back before the VM dies and is not kept.
//!
//! Pages come back from any context: KVM frees unlinked tables from RCU callbacks, in
//! softirq context, possibly on a CPU that holds the VM's lock in a fault. Giving back is
//! therefore lock-free: a push on a stack per region, linked through an array with one
//! entry per pool page. Taking is done by one taker at a time (the [`Taker`], kept under
//! the VM's lock), which makes the stack free of ABA: a page can come back to the top of
//! its stack only after the taker took it off.
//!
//! Plain Rust on `core` only, like `ptalloc.rs`: the module compiles this file and the
//! host tests compile the same file.

use core::ops::Deref;
use core::sync::atomic::{
    AtomicU32, AtomicU64,
    Ordering::{
        AcqRel,
        Acquire,
        Relaxed,
        Release, //
    },
};

use super::{
    Layout,
    Region,
    PAGE_SIZE, //
};

/// The end of a stack.
const NIL: u32 = u32::MAX;
/// The link of a page handed out and on no stack.
const TAKEN: u32 = u32::MAX - 1;
/// The link of a page never handed out: it cannot be given back.
pub const NEVER: u32 = u32::MAX - 2;

/// Why a page was not taken back.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Refused {
    /// Not a page of the pool's pud or pmd region (the root, which is never reused, or
    /// no page of this pool at all).
    NotReusable,
    /// Already on its stack: given back twice without being taken in between.
    AlreadyFree,
    /// Never handed out ([`FreeTables::handed_out`] was not told of it).
    NeverHandedOut,
}

/// The tables given back to one pool, by region.
///
/// # Invariants
///
/// `links` has one entry per page of the pool's pud and pmd regions, in address order.
/// Every head and every link is [`NIL`], [`TAKEN`], [`NEVER`] or the index of a page of
/// the same region. A page's link is [`TAKEN`] or [`NEVER`] exactly when the page is on
/// no stack ([`NEVER`] until it is first handed out), and each page is on its region's
/// stack at most once. Only the holder of this pool's [`Taker`] takes pages off the
/// stacks.
pub struct FreeTables<S> {
    /// The first page of the pud region, page 0 of `links`.
    base: u64,
    /// The pud and pmd regions' bounds.
    pud: (u64, u64),
    pmd: (u64, u64),
    links: S,
    /// The top of the pud and of the pmd stack.
    heads: [AtomicU32; 2],
    /// Pages on each stack, for the counters only: a give-back counts itself after its
    /// push, a take before it returns.
    free: [AtomicU64; 2],
}

/// The right to take pages off one [`FreeTables`]' stacks, which exactly one holder may
/// have at a time: the VM keeps it with its allocator under its lock. Made only with its
/// [`FreeTables`], by [`FreeTables::new`]; its holder uses it with no other.
pub struct Taker(());

impl<S: Deref<Target = [AtomicU32]>> FreeTables<S> {
    /// Pages of `layout` that need a link: those of its pud and pmd regions.
    pub fn links_needed(layout: &Layout) -> u64 {
        let (start, _) = layout.bounds(Region::Pud);
        let (_, end) = layout.bounds(Region::Pmd);
        (end - start) / PAGE_SIZE
    }

    /// Empty stacks for the pool of `layout`, with `links`, [`links_needed`] entries all
    /// [`NEVER`], and the one [`Taker`] for them; `None` if `links` is not that.
    ///
    /// [`links_needed`]: Self::links_needed
    pub fn new(layout: &Layout, links: S) -> Option<(Self, Taker)> {
        let pages = Self::links_needed(layout);
        // The indices must stay below the two markers.
        if u64::try_from(links.len()).ok()? != pages
            || pages >= u64::from(TAKEN)
            || links.iter().any(|l| l.load(Relaxed) != NEVER)
        {
            return None;
        }
        let pud = layout.bounds(Region::Pud);
        // INVARIANT: one link per page, all NEVER, empty stacks; the taker is returned once.
        Some((
            FreeTables {
                base: pud.0,
                pud,
                pmd: layout.bounds(Region::Pmd),
                links,
                heads: [AtomicU32::new(NIL), AtomicU32::new(NIL)],
                free: [AtomicU64::new(0), AtomicU64::new(0)],
            },
            Taker(()),
        ))
    }

    /// The stack of the region `phys` lies in and its index in `links`.
    fn locate(&self, phys: u64) -> Option<(usize, u32)> {
        let stack = if (self.pud.0..self.pud.1).contains(&phys) {
            0
        } else if (self.pmd.0..self.pmd.1).contains(&phys) {
            1
        } else {
            return None;
        };
        if phys % PAGE_SIZE != 0 {
            return None;
        }
        // Below TAKEN by the invariant on `links`' length.
        let index = u32::try_from((phys - self.base) / PAGE_SIZE).ok()?;
        Some((stack, index))
    }

    fn stack_of(region: Region) -> Option<usize> {
        match region {
            Region::Pgd => None,
            Region::Pud => Some(0),
            Region::Pmd => Some(1),
        }
    }

    /// Records that the fresh page at `phys` was handed out, so that it may be given
    /// back. For the allocator that handed it out, before KVM can see it.
    pub fn handed_out(&self, phys: u64) {
        if let Some(link) = self
            .locate(phys)
            .and_then(|(_, index)| self.links.get(index as usize))
        {
            // Only a page never handed out: one on a stack or taken keeps its link.
            let _ = link.compare_exchange(NEVER, TAKEN, Relaxed, Relaxed);
        }
    }

    /// Keeps the table at `phys` for reuse; its region's pages then count one more free.
    /// Lock-free: callable from any context, concurrently with everything else.
    pub fn give_back(&self, phys: u64) -> Result<Region, Refused> {
        let (stack, index) = self.locate(phys).ok_or(Refused::NotReusable)?;
        let link = self.links.get(index as usize).ok_or(Refused::NotReusable)?;
        // A page on no stack goes on it once: its link leaves TAKEN here, before the push.
        link.compare_exchange(TAKEN, NIL, AcqRel, Acquire)
            .map_err(|now| {
                if now == NEVER {
                    Refused::NeverHandedOut
                } else {
                    Refused::AlreadyFree
                }
            })?;
        // Counted before the push, so that a take never finds more pages than counted.
        self.free[stack].fetch_add(1, Relaxed);
        let head = &self.heads[stack];
        let mut top = head.load(Relaxed);
        loop {
            link.store(top, Relaxed);
            // Release: the taker that finds `index` on top reads the link stored above.
            match head.compare_exchange_weak(top, index, Release, Relaxed) {
                Ok(_) => break,
                Err(now) => top = now,
            }
        }
        Ok(if stack == 0 { Region::Pud } else { Region::Pmd })
    }

    /// A page given back to `region`, off its stack, or `None` if there is none. Its
    /// contents are whatever KVM left in it.
    pub fn take(&self, region: Region, _taker: &mut Taker) -> Option<u64> {
        let stack = Self::stack_of(region)?;
        let head = &self.heads[stack];
        let mut top = head.load(Acquire);
        loop {
            if top == NIL {
                return None;
            }
            let link = self.links.get(top as usize)?;
            // Only the taker removes pages, so `top` stays on the stack, with this link,
            // until the exchange below: pushes only put pages above it.
            let next = link.load(Relaxed);
            match head.compare_exchange_weak(top, next, Acquire, Acquire) {
                Ok(_) => {
                    link.store(TAKEN, Release);
                    self.free[stack].fetch_sub(1, Relaxed);
                    return Some(self.base + u64::from(top) * PAGE_SIZE);
                }
                Err(now) => top = now,
            }
        }
    }

    /// Pages of `region` given back and not taken again.
    pub fn free_pages(&self, region: Region) -> u64 {
        Self::stack_of(region).map_or(0, |s| self.free[s].load(Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::sync::{Arc, Mutex};
    use std::vec::Vec;

    const BASE: u64 = 0x8000_0000;

    fn links(n: u64) -> Vec<AtomicU32> {
        (0..n).map(|_| AtomicU32::new(NEVER)).collect()
    }

    /// Every pud and pmd page handed out, as a pool does before KVM can give any back.
    fn hand_out_all(l: &Layout, t: &FreeTables<Vec<AtomicU32>>) {
        for region in [Region::Pud, Region::Pmd] {
            let (start, end) = l.bounds(region);
            for p in (start..end).step_by(PAGE_SIZE as usize) {
                t.handed_out(p);
            }
        }
    }

    fn tables(pgd: u64, pud: u64, pmd: u64) -> (Layout, FreeTables<Vec<AtomicU32>>, Taker) {
        let layout = Layout::new(BASE, pgd, pud, pmd).expect("layout fits");
        let n = FreeTables::<Vec<AtomicU32>>::links_needed(&layout);
        assert_eq!(n, pud + pmd);
        let (t, taker) = FreeTables::new(&layout, links(n)).expect("links fit");
        hand_out_all(&layout, &t);
        (layout, t, taker)
    }

    fn page(layout: &Layout, region: Region, i: u64) -> u64 {
        layout.bounds(region).0 + i * PAGE_SIZE
    }

    #[test]
    fn given_back_pages_come_back_last_in_first_out_by_region() {
        let (l, t, mut taker) = tables(2, 2, 3);
        assert_eq!(t.take(Region::Pmd, &mut taker), None);
        assert_eq!(t.give_back(page(&l, Region::Pmd, 0)), Ok(Region::Pmd));
        assert_eq!(t.give_back(page(&l, Region::Pmd, 2)), Ok(Region::Pmd));
        assert_eq!(t.give_back(page(&l, Region::Pud, 1)), Ok(Region::Pud));
        assert_eq!(
            (t.free_pages(Region::Pud), t.free_pages(Region::Pmd)),
            (1, 2)
        );
        assert_eq!(
            t.take(Region::Pmd, &mut taker),
            Some(page(&l, Region::Pmd, 2))
        );
        assert_eq!(
            t.take(Region::Pmd, &mut taker),
            Some(page(&l, Region::Pmd, 0))
        );
        assert_eq!(t.take(Region::Pmd, &mut taker), None);
        assert_eq!(
            t.take(Region::Pud, &mut taker),
            Some(page(&l, Region::Pud, 1))
        );
        assert_eq!(t.take(Region::Pgd, &mut taker), None);
        assert_eq!(t.free_pages(Region::Pmd), 0);
    }

    #[test]
    fn a_page_is_kept_once_and_the_root_never() {
        let (l, t, mut taker) = tables(4, 1, 2);
        let p = page(&l, Region::Pmd, 1);
        assert_eq!(t.give_back(p), Ok(Region::Pmd));
        assert_eq!(t.give_back(p), Err(Refused::AlreadyFree));
        assert_eq!(t.free_pages(Region::Pmd), 1);
        assert_eq!(t.take(Region::Pmd, &mut taker), Some(p));
        assert_eq!(t.take(Region::Pmd, &mut taker), None);
        // Taken again, it may come back again.
        assert_eq!(t.give_back(p), Ok(Region::Pmd));
        for bad in [
            page(&l, Region::Pgd, 0),
            page(&l, Region::Pgd, 3),
            l.pool().1,
            BASE - PAGE_SIZE,
            p + 8,
            0,
            u64::MAX,
        ] {
            assert_eq!(t.give_back(bad), Err(Refused::NotReusable), "{bad:#x}");
        }
    }

    #[test]
    fn a_page_never_handed_out_is_refused() {
        let layout = Layout::new(BASE, 1, 1, 2).expect("fits");
        let (t, mut taker) = FreeTables::new(&layout, links(3)).expect("fits");
        let p = page(&layout, Region::Pmd, 0);
        assert_eq!(t.give_back(p), Err(Refused::NeverHandedOut));
        assert_eq!(t.free_pages(Region::Pmd), 0);
        t.handed_out(p);
        assert_eq!(t.give_back(p), Ok(Region::Pmd));
        // Telling again changes nothing: the page stays on its stack, once.
        t.handed_out(p);
        assert_eq!(t.give_back(p), Err(Refused::AlreadyFree));
        assert_eq!(t.take(Region::Pmd, &mut taker), Some(p));
        assert_eq!(t.take(Region::Pmd, &mut taker), None);
        assert_eq!(
            t.give_back(page(&layout, Region::Pmd, 1)),
            Err(Refused::NeverHandedOut)
        );
    }

    #[test]
    fn new_refuses_links_that_do_not_fit_the_pool() {
        let layout = Layout::new(BASE, 1, 2, 2).expect("fits");
        assert!(FreeTables::new(&layout, links(3)).is_none());
        assert!(FreeTables::new(&layout, links(5)).is_none());
        let stale = links(4);
        stale[2].store(0, Relaxed);
        assert!(FreeTables::new(&layout, stale).is_none());
        assert!(FreeTables::new(&layout, links(4)).is_some());
        // A pool without a pud region keeps pmd pages only.
        let (l, t, mut taker) = tables(1, 0, 2);
        assert_eq!(t.give_back(page(&l, Region::Pmd, 1)), Ok(Region::Pmd));
        assert_eq!(t.take(Region::Pud, &mut taker), None);
    }

    /// A model run: random give-backs (of taken pages, and of pages already free) and
    /// takes against a set of the free pages.
    #[test]
    fn matches_a_set_of_free_pages_over_random_runs() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..200 {
            let (l, t, mut taker) = tables(1, 3, 5);
            let mut free = BTreeSet::new();
            for _ in 0..100 {
                let region = if rand(2) == 0 {
                    Region::Pud
                } else {
                    Region::Pmd
                };
                let pages = l.bounds(region).1 - l.bounds(region).0;
                let p = page(&l, region, rand(pages / PAGE_SIZE));
                if rand(3) == 0 {
                    let got = t.take(region, &mut taker);
                    match got {
                        Some(q) => assert!(free.remove(&q), "took {q:#x}, not free"),
                        None => assert!(
                            !free
                                .iter()
                                .any(|q| l.bounds(region).0 <= *q && *q < l.bounds(region).1),
                            "none taken while the region has free pages"
                        ),
                    }
                } else {
                    let want = if free.insert(p) {
                        Ok(region)
                    } else {
                        Err(Refused::AlreadyFree)
                    };
                    assert_eq!(t.give_back(p), want);
                }
                let in_pmd = free
                    .iter()
                    .filter(|q| **q >= l.bounds(Region::Pmd).0)
                    .count();
                assert_eq!(t.free_pages(Region::Pmd), in_pmd as u64);
                assert_eq!(t.free_pages(Region::Pud), (free.len() - in_pmd) as u64);
            }
        }
    }

    /// Threads give back pages they own while one taker, under a lock, takes them and
    /// gives them to the next thread: no page is ever held twice, none is lost.
    #[test]
    fn concurrent_give_backs_and_a_taker_lose_and_duplicate_nothing() {
        const THREADS: u64 = 4;
        const PER: u64 = 64;
        let layout = Layout::new(BASE, 1, 0, THREADS * PER).expect("fits");
        let n = FreeTables::<Vec<AtomicU32>>::links_needed(&layout);
        let (t, taker) = FreeTables::new(&layout, links(n)).expect("fits");
        hand_out_all(&layout, &t);
        let t = Arc::new(t);
        let taker = Arc::new(Mutex::new(taker));
        let held = Arc::new(Mutex::new(BTreeSet::new()));
        let workers: Vec<_> = (0..THREADS)
            .map(|w| {
                let (t, taker, held) = (t.clone(), taker.clone(), held.clone());
                std::thread::spawn(move || {
                    let mut mine: Vec<u64> = (0..PER)
                        .map(|i| page(&layout, Region::Pmd, w * PER + i))
                        .collect();
                    for p in &mine {
                        assert!(held.lock().unwrap().insert(*p));
                    }
                    for round in 0..2000 {
                        if round % 2 == 0 && !mine.is_empty() {
                            let p = mine.pop().unwrap();
                            assert!(held.lock().unwrap().remove(&p));
                            assert_eq!(t.give_back(p), Ok(Region::Pmd));
                        } else {
                            let got = t.take(Region::Pmd, &mut taker.lock().unwrap());
                            if let Some(p) = got {
                                assert!(held.lock().unwrap().insert(p), "{p:#x} twice");
                                mine.push(p);
                            }
                        }
                    }
                    mine.len() as u64
                })
            })
            .collect();
        let kept: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
        let mut taker = taker.lock().unwrap();
        let mut rest = 0;
        while let Some(p) = t.take(Region::Pmd, &mut taker) {
            assert!(held.lock().unwrap().insert(p), "{p:#x} twice");
            rest += 1;
        }
        assert_eq!(kept + rest, THREADS * PER);
        assert_eq!(held.lock().unwrap().len() as u64, THREADS * PER);
        assert_eq!(t.free_pages(Region::Pmd), 0);
    }
}
