// SPDX-License-Identifier: GPL-2.0

//! SeKVM's `PTAllocSpec`, stated as a program.
//!
//! Each definition of the Coq specification is one function here, in the spec's order and
//! with the spec's names, together with the lower-layer definitions it calls
//! (`get_*_next_spec`, `set_*_next_spec`, `check64_spec`, `panic_spec`, from SeKVM's
//! `AbstractMachine` layer) and the predicates of its `rely`s (from SeKVM's `Constants`).
//!
//! Conventions of the transcription:
//! - Coq's `Z` is [`Z`], an `i128`: every value the spec computes (64-bit addresses plus a
//!   page) fits, so no arithmetic here can wrap where the spec's would not.
//! - `option`'s `None` is "no behaviour": a `rely` that fails, or a lock not held, means
//!   the caller broke the contract and the spec promises nothing. [`rely!`] returns it.
//! - `Z64` values (`VZ64 n`) are plain [`Z`]s: the constructor carries no meaning here.
//! - `ZMap.get` of a key never set yields the map's default: [`Lock::LockFalse`] for
//!   locks, an all-zero [`Npt`] for a VM's page-table state.
//!
//! What SeKVM fixes as constants of its memory layout (`pgd_start vmid`, ...), nptpool
//! decides when a VM's pool is reserved: the bounds are per-VM data in [`RData::bounds`],
//! read and never written by these specs (see docs/spec-mapping.md).

use std::collections::BTreeMap;

/// Coq's `Z`, wide enough for every value the spec computes.
pub type Z = i128;

/// `PAGE_SIZE` (Constants). Coq fixes it at 4096; no proof of PTAllocSpec depends on the
/// value beyond its being positive, so the model takes the granule the implementation is
/// built for (the same page-size cfg as `src/ptalloc.rs`), and the refinement checks run
/// once per granule.
#[cfg(CONFIG_ARM64_64K_PAGES)]
pub const PAGE_SIZE: Z = 65536;
/// `PAGE_SIZE` (Constants), 16 KiB build.
#[cfg(CONFIG_ARM64_16K_PAGES)]
pub const PAGE_SIZE: Z = 16384;
/// `PAGE_SIZE` (Constants), 4 KiB build: Coq's value.
#[cfg(not(any(CONFIG_ARM64_16K_PAGES, CONFIG_ARM64_64K_PAGES)))]
pub const PAGE_SIZE: Z = 4096;
/// `HOSTVISOR` and `COREVISOR` (Constants): the range of `is_vmid`.
pub const HOSTVISOR: Z = 0;
/// See [`HOSTVISOR`].
pub const COREVISOR: Z = 16;
/// `NPT_ID` (Ident): the lock of VM `vmid`'s page tables is `NPT_ID + vmid`. Its value
/// only has to keep those ids apart from other locks.
pub const NPT_ID: Z = 0x100;
/// `KVM_ADDR_SPACE` (Constants), the bound of `is_addr`. SeKVM's is 2^48; nptpool's pools
/// are physical memory of a host with up to 52-bit physical addresses.
pub const KVM_ADDR_SPACE: Z = 1 << 52;

/// `is_vmid` (Constants).
pub fn is_vmid(vmid: Z) -> bool {
    HOSTVISOR <= vmid && vmid <= COREVISOR
}

/// `is_addr` (Constants).
pub fn is_addr(addr: Z) -> bool {
    0 <= addr && addr < KVM_ADDR_SPACE
}

/// `is_int64` (Constants).
pub fn is_int64(n: Z) -> bool {
    0 <= n && n <= Z::from(u64::MAX)
}

/// `rely P;`: no behaviour unless `P` holds.
#[macro_export]
macro_rules! rely {
    ($cond:expr) => {
        if !$cond {
            return None;
        }
    };
}

/// A lock's state in the spec's `lock` map (`LockStatus`).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Lock {
    /// Nobody on this CPU holds it.
    #[default]
    LockFalse,
    /// Held; `LockOwn true` is "held by the caller".
    LockOwn(bool),
}

/// One VM's page-table allocator state (`NPT`): the three bump pointers.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Npt {
    pub pt_pgd_next: Z,
    pub pt_pud_next: Z,
    pub pt_pmd_next: Z,
}

/// A VM's region bounds: `pgd_start vmid`, `pud_start vmid`, `pmd_start vmid`,
/// `pool_end vmid`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Bounds {
    pub pgd_start: Z,
    pub pud_start: Z,
    pub pmd_start: Z,
    pub pool_end: Z,
}

/// The shared part of the abstract state this spec touches (`shared adt`).
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Shared {
    /// `npts`: per-VM allocator state, by vmid.
    pub npts: BTreeMap<Z, Npt>,
}

/// The abstract state (`RData`), restricted to what `PTAllocSpec` reads or writes.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct RData {
    /// `halt`: once set, every spec returns 0 and changes nothing.
    pub halt: bool,
    /// `lock`: ownership of each lock, by lock id.
    pub lock: BTreeMap<Z, Lock>,
    pub shared: Shared,
    /// The region bounds of each VM (constants of the layout in SeKVM).
    pub bounds: BTreeMap<Z, Bounds>,
}

impl RData {
    /// `ZMap.get id (lock adt)`.
    pub fn lock_of(&self, id: Z) -> Lock {
        self.lock.get(&id).copied().unwrap_or_default()
    }

    /// `vmid @ (npts (shared adt))`.
    pub fn npt(&self, vmid: Z) -> Npt {
        self.shared.npts.get(&vmid).copied().unwrap_or_default()
    }

    /// `adt {shared: (shared adt) {npts: (npts (shared adt)) # vmid == npt'}}`.
    pub fn with_npt(&self, vmid: Z, npt: Npt) -> RData {
        let mut adt = self.clone();
        adt.shared.npts.insert(vmid, npt);
        adt
    }

    /// `adt {halt: true}`.
    pub fn with_halt(&self) -> RData {
        RData {
            halt: true,
            ..self.clone()
        }
    }

    fn bounds_of(&self, vmid: Z) -> Bounds {
        self.bounds.get(&vmid).copied().unwrap_or_default()
    }

    /// `pgd_start vmid`.
    pub fn pgd_start(&self, vmid: Z) -> Z {
        self.bounds_of(vmid).pgd_start
    }

    /// `pud_start vmid`.
    pub fn pud_start(&self, vmid: Z) -> Z {
        self.bounds_of(vmid).pud_start
    }

    /// `pmd_start vmid`.
    pub fn pmd_start(&self, vmid: Z) -> Z {
        self.bounds_of(vmid).pmd_start
    }

    /// `pool_end vmid`.
    pub fn pool_end(&self, vmid: Z) -> Z {
        self.bounds_of(vmid).pool_end
    }
}

// ---------------------------------------------------------------------------------------
// Section PTAllocSpec: the high-level specs.

/// `alloc_pgd_page_spec`.
pub fn alloc_pgd_page_spec(vmid: Z, adt: &RData) -> Option<(RData, Z)> {
    rely!(is_vmid(vmid));
    if adt.halt {
        return Some((adt.clone(), 0));
    }
    let id = NPT_ID + vmid;
    match adt.lock_of(id) {
        Lock::LockOwn(true) => {
            let npt = adt.npt(vmid);
            let next = npt.pt_pgd_next;
            rely!(adt.pgd_start(vmid) <= next && next <= adt.pud_start(vmid));
            if next + PAGE_SIZE <= adt.pud_start(vmid) {
                let npt2 = Npt {
                    pt_pgd_next: next + PAGE_SIZE,
                    ..npt
                };
                Some((adt.with_npt(vmid, npt2), next))
            } else {
                Some((adt.with_halt(), 0))
            }
        }
        _ => None,
    }
}

/// `alloc_pud_page_spec`.
pub fn alloc_pud_page_spec(vmid: Z, adt: &RData) -> Option<(RData, Z)> {
    rely!(is_vmid(vmid));
    if adt.halt {
        return Some((adt.clone(), 0));
    }
    let id = NPT_ID + vmid;
    match adt.lock_of(id) {
        Lock::LockOwn(true) => {
            let npt = adt.npt(vmid);
            let next = npt.pt_pud_next;
            rely!(adt.pud_start(vmid) <= next && next <= adt.pmd_start(vmid));
            if next + PAGE_SIZE <= adt.pmd_start(vmid) {
                let npt2 = Npt {
                    pt_pud_next: next + PAGE_SIZE,
                    ..npt
                };
                Some((adt.with_npt(vmid, npt2), next))
            } else {
                Some((adt.with_halt(), 0))
            }
        }
        _ => None,
    }
}

/// `alloc_pmd_page_spec`.
pub fn alloc_pmd_page_spec(vmid: Z, adt: &RData) -> Option<(RData, Z)> {
    rely!(is_vmid(vmid));
    if adt.halt {
        return Some((adt.clone(), 0));
    }
    let id = NPT_ID + vmid;
    match adt.lock_of(id) {
        Lock::LockOwn(true) => {
            let npt = adt.npt(vmid);
            let next = npt.pt_pmd_next;
            rely!(adt.pmd_start(vmid) <= next && next <= adt.pool_end(vmid));
            if next + PAGE_SIZE <= adt.pool_end(vmid) {
                let npt2 = Npt {
                    pt_pmd_next: next + PAGE_SIZE,
                    ..npt
                };
                Some((adt.with_npt(vmid, npt2), next))
            } else {
                Some((adt.with_halt(), 0))
            }
        }
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------
// The lower layer's primitives that Section PTAllocSpecLow calls (AbstractMachine).

/// `get_pgd_next_spec`.
pub fn get_pgd_next_spec(vmid: Z, adt: &RData) -> Option<Z> {
    if adt.halt {
        return Some(0);
    }
    rely!(is_vmid(vmid));
    match adt.lock_of(NPT_ID + vmid) {
        Lock::LockOwn(true) => Some(adt.npt(vmid).pt_pgd_next),
        _ => None,
    }
}

/// `set_pgd_next_spec`.
pub fn set_pgd_next_spec(vmid: Z, next: Z, adt: &RData) -> Option<RData> {
    if adt.halt {
        return Some(adt.clone());
    }
    rely!(is_vmid(vmid));
    match adt.lock_of(NPT_ID + vmid) {
        Lock::LockOwn(true) => {
            let npt = Npt {
                pt_pgd_next: next,
                ..adt.npt(vmid)
            };
            Some(adt.with_npt(vmid, npt))
        }
        _ => None,
    }
}

/// `get_pud_next_spec`.
pub fn get_pud_next_spec(vmid: Z, adt: &RData) -> Option<Z> {
    if adt.halt {
        return Some(0);
    }
    rely!(is_vmid(vmid));
    match adt.lock_of(NPT_ID + vmid) {
        Lock::LockOwn(true) => Some(adt.npt(vmid).pt_pud_next),
        _ => None,
    }
}

/// `set_pud_next_spec`.
pub fn set_pud_next_spec(vmid: Z, next: Z, adt: &RData) -> Option<RData> {
    if adt.halt {
        return Some(adt.clone());
    }
    rely!(is_vmid(vmid));
    match adt.lock_of(NPT_ID + vmid) {
        Lock::LockOwn(true) => {
            let npt = Npt {
                pt_pud_next: next,
                ..adt.npt(vmid)
            };
            Some(adt.with_npt(vmid, npt))
        }
        _ => None,
    }
}

/// `get_pmd_next_spec`.
pub fn get_pmd_next_spec(vmid: Z, adt: &RData) -> Option<Z> {
    if adt.halt {
        return Some(0);
    }
    rely!(is_vmid(vmid));
    match adt.lock_of(NPT_ID + vmid) {
        Lock::LockOwn(true) => Some(adt.npt(vmid).pt_pmd_next),
        _ => None,
    }
}

/// `set_pmd_next_spec`.
pub fn set_pmd_next_spec(vmid: Z, next: Z, adt: &RData) -> Option<RData> {
    if adt.halt {
        return Some(adt.clone());
    }
    rely!(is_vmid(vmid));
    match adt.lock_of(NPT_ID + vmid) {
        Lock::LockOwn(true) => {
            let npt = Npt {
                pt_pmd_next: next,
                ..adt.npt(vmid)
            };
            Some(adt.with_npt(vmid, npt))
        }
        _ => None,
    }
}

/// `check64_spec`: the value, or 0 once halted.
pub fn check64_spec(n: Z, adt: &RData) -> Option<Z> {
    if adt.halt {
        Some(0)
    } else {
        Some(n)
    }
}

/// `panic_spec`.
pub fn panic_spec(adt: &RData) -> Option<RData> {
    Some(adt.with_halt())
}

// ---------------------------------------------------------------------------------------
// Section PTAllocSpecLow: the same allocators written over the primitives, as the C code
// is. `when x == f; rest` is `let x = f?; rest`.

/// `alloc_pgd_page_spec0`.
pub fn alloc_pgd_page_spec0(vmid: Z, adt: &RData) -> Option<(RData, Z)> {
    rely!(is_vmid(vmid));
    let next = get_pgd_next_spec(vmid, adt)?;
    rely!(is_addr(next));
    if next + PAGE_SIZE <= adt.pud_start(vmid) {
        let adt2 = set_pgd_next_spec(vmid, next + PAGE_SIZE, adt)?;
        let next2 = check64_spec(next, &adt2)?;
        rely!(is_int64(next2));
        Some((adt2, next2))
    } else {
        let adt2 = panic_spec(adt)?;
        let next2 = check64_spec(next, &adt2)?;
        Some((adt2, next2))
    }
}

/// `alloc_pud_page_spec0`.
pub fn alloc_pud_page_spec0(vmid: Z, adt: &RData) -> Option<(RData, Z)> {
    rely!(is_vmid(vmid));
    let next = get_pud_next_spec(vmid, adt)?;
    rely!(is_addr(next));
    if next + PAGE_SIZE <= adt.pmd_start(vmid) {
        let adt2 = set_pud_next_spec(vmid, next + PAGE_SIZE, adt)?;
        let next2 = check64_spec(next, &adt2)?;
        rely!(is_int64(next2));
        Some((adt2, next2))
    } else {
        let adt2 = panic_spec(adt)?;
        let next2 = check64_spec(next, &adt2)?;
        Some((adt2, next2))
    }
}

/// `alloc_pmd_page_spec0`.
pub fn alloc_pmd_page_spec0(vmid: Z, adt: &RData) -> Option<(RData, Z)> {
    rely!(is_vmid(vmid));
    let next = get_pmd_next_spec(vmid, adt)?;
    rely!(is_addr(next));
    if next + PAGE_SIZE <= adt.pool_end(vmid) {
        let adt2 = set_pmd_next_spec(vmid, next + PAGE_SIZE, adt)?;
        let next2 = check64_spec(next, &adt2)?;
        rely!(is_int64(next2));
        Some((adt2, next2))
    } else {
        let adt2 = panic_spec(adt)?;
        let next2 = check64_spec(next, &adt2)?;
        Some((adt2, next2))
    }
}

// ---------------------------------------------------------------------------------------
// What the spec leaves to its environment: creating a VM's pool, and the lock. These are
// not part of PTAllocSpec; the checks need them to build states.

/// A VM's pool set up as nptpool does at VM creation: bounds recorded, every bump
/// pointer at the start of its region.
pub fn init_vm(vmid: Z, bounds: Bounds, adt: &RData) -> RData {
    let mut adt = adt.with_npt(
        vmid,
        Npt {
            pt_pgd_next: bounds.pgd_start,
            pt_pud_next: bounds.pud_start,
            pt_pmd_next: bounds.pmd_start,
        },
    );
    adt.bounds.insert(vmid, bounds);
    adt
}

/// The caller takes VM `vmid`'s page-table lock.
pub fn acquire_npt_lock(vmid: Z, adt: &RData) -> RData {
    let mut adt = adt.clone();
    adt.lock.insert(NPT_ID + vmid, Lock::LockOwn(true));
    adt
}

/// The caller releases VM `vmid`'s page-table lock.
pub fn release_npt_lock(vmid: Z, adt: &RData) -> RData {
    let mut adt = adt.clone();
    adt.lock.insert(NPT_ID + vmid, Lock::LockFalse);
    adt
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(pgd: Z, pud: Z, pmd: Z) -> RData {
        let base = 0x4000_0000;
        let b = Bounds {
            pgd_start: base,
            pud_start: base + pgd * PAGE_SIZE,
            pmd_start: base + (pgd + pud) * PAGE_SIZE,
            pool_end: base + (pgd + pud + pmd) * PAGE_SIZE,
        };
        init_vm(1, b, &RData::default())
    }

    #[test]
    fn no_behaviour_without_the_lock_or_for_a_bad_vmid() {
        let adt = vm(1, 1, 1);
        assert_eq!(alloc_pmd_page_spec(1, &adt), None);
        let locked = acquire_npt_lock(1, &adt);
        assert_eq!(alloc_pmd_page_spec(COREVISOR + 1, &locked), None);
        assert_eq!(alloc_pmd_page_spec(-1, &locked), None);
        assert!(alloc_pmd_page_spec(1, &locked).is_some());
        // Released again: no behaviour.
        assert_eq!(alloc_pmd_page_spec(1, &release_npt_lock(1, &locked)), None);
    }

    #[test]
    fn halt_returns_zero_and_changes_nothing_even_without_the_lock() {
        let adt = vm(1, 1, 1).with_halt();
        assert_eq!(alloc_pud_page_spec(1, &adt), Some((adt.clone(), 0)));
        assert_eq!(alloc_pud_page_spec0(1, &adt), Some((adt.clone(), 0)));
    }

    #[test]
    fn last_page_then_halt() {
        let adt = acquire_npt_lock(1, &vm(1, 1, 1));
        let (adt, a) = alloc_pgd_page_spec(1, &adt).expect("behaviour");
        assert_eq!(a, 0x4000_0000);
        assert!(!adt.halt);
        let (adt, a) = alloc_pgd_page_spec(1, &adt).expect("behaviour");
        assert_eq!(a, 0);
        assert!(adt.halt);
    }

    #[test]
    fn a_bump_pointer_outside_its_region_has_no_behaviour() {
        let adt = acquire_npt_lock(1, &vm(1, 1, 1));
        let mut npt = adt.npt(1);
        npt.pt_pud_next = adt.pmd_start(1) + PAGE_SIZE;
        assert_eq!(alloc_pud_page_spec(1, &adt.with_npt(1, npt)), None);
    }
}
