// SPDX-License-Identifier: GPL-2.0

//! Refinement checks: the allocator core (`src/ptalloc.rs`, the file the kernel module
//! compiles) against PTAllocSpec as a program (`ptalloc_spec`).
//!
//! A system of VMs is driven by operations (take or drop a VM's lock, allocate from one of
//! its regions, allocate a root of several pages). Every operation runs on both sides:
//! - the spec: the high-level `alloc_*_page_spec`, and the low-level `alloc_*_page_spec0`,
//!   which must agree with it;
//! - the core: `PtAlloc::alloc`, reachable only while the VM's lock is held, as in the
//!   kernel where only the spinlock's guard gives out `&mut PtAlloc`.
//!
//! After each step they must agree on the returned address (the core's `None` is the
//! spec's 0 with `halt` set), on the three bump pointers and on `halt`; and the core must
//! never hand out a page outside its region or a page it handed out before, nor change any
//! other VM. A call without the lock has no behaviour in the spec; it must be exactly the
//! calls the core cannot be reached by.
//!
//! Each VM is checked against its own instance of the spec: SeKVM's `halt` stops the whole
//! hypervisor, nptpool's stops one VM (docs/spec-mapping.md).

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestError, TestRng, TestRunner};
use ptalloc::{Layout, PtAlloc, Region, PAGE_SIZE};
use ptalloc_spec::{self as spec, Bounds, RData, Z};

/// The spec's vmid of our single VM per spec instance.
const VMID: Z = 1;

/// One operation on VM `vm` of the system.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    Lock(usize),
    Unlock(usize),
    Alloc(usize, Region),
    /// A root of `pages` concatenated pages: that many `alloc_pgd_page`s in a row.
    Root(usize, u32),
}

/// One VM on both sides: the spec's state, and the core with the lock the kernel keeps it
/// under.
#[derive(Clone, PartialEq, Eq, Debug)]
struct VmPair {
    spec: SpecState,
    locked: bool,
    core: PtAlloc,
}

/// The part of the spec's `RData` that one VM's operations can change.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct SpecState {
    halt: bool,
    locked: bool,
    next: [Z; 3],
}

fn spec_alloc(region: Region) -> fn(Z, &RData) -> Option<(RData, Z)> {
    match region {
        Region::Pgd => spec::alloc_pgd_page_spec,
        Region::Pud => spec::alloc_pud_page_spec,
        Region::Pmd => spec::alloc_pmd_page_spec,
    }
}

fn spec_alloc_low(region: Region) -> fn(Z, &RData) -> Option<(RData, Z)> {
    match region {
        Region::Pgd => spec::alloc_pgd_page_spec0,
        Region::Pud => spec::alloc_pud_page_spec0,
        Region::Pmd => spec::alloc_pmd_page_spec0,
    }
}

fn bounds_of(layout: &Layout) -> Bounds {
    let z = |r| Z::from(layout.bounds(r).0);
    Bounds {
        pgd_start: z(Region::Pgd),
        pud_start: z(Region::Pud),
        pmd_start: z(Region::Pmd),
        pool_end: Z::from(layout.pool().1),
    }
}

/// A system of VMs, each with its own pool, and every page handed out so far.
#[derive(Clone, Debug)]
struct System {
    vms: Vec<VmPair>,
    bounds: Vec<Bounds>,
    handed_out: HashSet<u64>,
}

impl System {
    fn new(layouts: &[Layout]) -> System {
        let vms = layouts
            .iter()
            .map(|l| {
                let b = bounds_of(l);
                VmPair {
                    spec: SpecState {
                        halt: false,
                        locked: false,
                        next: [b.pgd_start, b.pud_start, b.pmd_start],
                    },
                    locked: false,
                    core: PtAlloc::new(*l),
                }
            })
            .collect();
        System {
            vms,
            bounds: layouts.iter().map(bounds_of).collect(),
            handed_out: HashSet::new(),
        }
    }

    /// VM `vm`'s spec instance as an `RData`.
    fn rdata(&self, vm: usize) -> RData {
        let s = &self.vms[vm].spec;
        let mut adt = spec::init_vm(VMID, self.bounds[vm], &RData::default());
        adt.shared.npts.insert(
            VMID,
            spec::Npt {
                pt_pgd_next: s.next[0],
                pt_pud_next: s.next[1],
                pt_pmd_next: s.next[2],
            },
        );
        adt.halt = s.halt;
        if s.locked {
            adt = spec::acquire_npt_lock(VMID, &adt);
        }
        adt
    }

    fn set_rdata(&mut self, vm: usize, adt: &RData) {
        let npt = adt.npt(VMID);
        self.vms[vm].spec = SpecState {
            halt: adt.halt,
            locked: adt.lock_of(spec::NPT_ID + VMID) == spec::Lock::LockOwn(true),
            next: [npt.pt_pgd_next, npt.pt_pud_next, npt.pt_pmd_next],
        };
    }

    /// Runs `op` on both sides and checks that they agree.
    fn step(&mut self, op: Op) -> Result<(), String> {
        let vm = match op {
            Op::Lock(v) | Op::Unlock(v) | Op::Alloc(v, _) | Op::Root(v, _) => v,
        };
        let others: Vec<VmPair> = self.vms.clone();
        match op {
            Op::Lock(_) => {
                let adt = spec::acquire_npt_lock(VMID, &self.rdata(vm));
                self.set_rdata(vm, &adt);
                self.vms[vm].locked = true;
            }
            Op::Unlock(_) => {
                let adt = spec::release_npt_lock(VMID, &self.rdata(vm));
                self.set_rdata(vm, &adt);
                self.vms[vm].locked = false;
            }
            Op::Alloc(_, region) => self.alloc(vm, region)?,
            Op::Root(_, pages) => self.root(vm, pages)?,
        }
        for (i, (before, now)) in others.iter().zip(&self.vms).enumerate() {
            if i != vm && before != now {
                return Err(format!("{op:?} changed VM {i}"));
            }
        }
        self.agree(vm).map_err(|e| format!("after {op:?}: {e}"))
    }

    /// One `alloc_*_page` call.
    fn alloc(&mut self, vm: usize, region: Region) -> Result<(), String> {
        let adt = self.rdata(vm);
        let high = spec_alloc(region)(VMID, &adt);
        let low = spec_alloc_low(region)(VMID, &adt);
        if high != low {
            return Err(format!("{region:?}: spec and spec0 disagree: {high:?} vs {low:?}"));
        }
        let Some((adt2, ret)) = high else {
            // No behaviour: only a call without the lock may get here, and the core
            // cannot be called then.
            return if self.vms[vm].locked {
                Err(format!("{region:?}: the core reached a state the spec relies away"))
            } else {
                Ok(())
            };
        };
        if !self.vms[vm].locked && !adt.halt {
            return Err(format!("{region:?}: spec has behaviour without the lock"));
        }
        let got = if self.vms[vm].locked {
            self.vms[vm].core.alloc(region)
        } else {
            // Halted and unlocked: the spec's 0; the core is not called.
            None
        };
        self.set_rdata(vm, &adt2);
        let want = if adt2.halt { None } else { Some(ret) };
        if got.map(Z::from) != want {
            return Err(format!("{region:?}: core returned {got:x?}, spec {ret:#x} (halt {})", adt2.halt));
        }
        if let Some(page) = got {
            let (start, end) = self.vms[vm].core.layout().bounds(region);
            if page < start || page >= end || page % PAGE_SIZE != 0 {
                return Err(format!("{region:?}: page {page:#x} outside [{start:#x}, {end:#x})"));
            }
            if !self.handed_out.insert(page) {
                return Err(format!("{region:?}: page {page:#x} handed out twice"));
            }
        }
        Ok(())
    }

    /// A root of `pages` pages: the core's `alloc_contiguous`, the spec's `pages` calls.
    fn root(&mut self, vm: usize, pages: u32) -> Result<(), String> {
        if !self.vms[vm].locked {
            return Ok(());
        }
        let mut spec_side = self.clone();
        let mut first = None;
        for i in 0..pages {
            let adt = spec_side.rdata(vm);
            let (adt2, ret) = spec::alloc_pgd_page_spec(VMID, &adt)
                .ok_or_else(|| "root: the core reached a state the spec relies away".to_string())?;
            spec_side.set_rdata(vm, &adt2);
            if i == 0 {
                first = Some(ret);
            }
        }
        let halted = spec_side.vms[vm].spec.halt;
        let got = self.vms[vm].core.alloc_contiguous(Region::Pgd, pages);
        self.vms[vm].spec = spec_side.vms[vm].spec;
        let want = if halted { None } else { first };
        if got.map(Z::from) != want {
            return Err(format!("root of {pages}: core {got:x?}, spec {want:x?}"));
        }
        if let Some(base) = got {
            for i in 0..u64::from(pages) {
                if !self.handed_out.insert(base + i * PAGE_SIZE) {
                    return Err(format!("root page {i} handed out twice"));
                }
            }
        }
        Ok(())
    }

    /// The core and the spec agree on VM `vm`'s bump pointers and halt.
    fn agree(&self, vm: usize) -> Result<(), String> {
        let p = &self.vms[vm];
        let core_next = Region::ALL.map(|r| Z::from(p.core.next(r)));
        if core_next != p.spec.next {
            return Err(format!("next pointers: core {core_next:x?}, spec {:x?}", p.spec.next));
        }
        if p.core.halted() != p.spec.halt {
            return Err(format!("halt: core {}, spec {}", p.core.halted(), p.spec.halt));
        }
        Ok(())
    }
}

fn run(layouts: &[Layout], ops: &[Op]) -> Result<(), String> {
    let mut sys = System::new(layouts);
    for (i, &op) in ops.iter().enumerate() {
        sys.step(op).map_err(|e| format!("step {i} of {ops:?}: {e}"))?;
    }
    Ok(())
}

fn layout(base: u64, pgd: u64, pud: u64, pmd: u64) -> Layout {
    Layout::new(base, pgd, pud, pmd).expect("test layouts fit")
}

fn alphabet(vms: usize) -> Vec<Op> {
    let mut ops = Vec::new();
    for v in 0..vms {
        ops.extend([Op::Lock(v), Op::Unlock(v), Op::Root(v, 2)]);
        ops.extend(Region::ALL.map(|r| Op::Alloc(v, r)));
    }
    ops
}

/// Every sequence of up to `depth` operations from `sys`, depth first; returns the
/// number of steps checked.
fn all_sequences(sys: &System, ops: &[Op], depth: u32, path: &mut Vec<Op>) -> Result<u64, String> {
    if depth == 0 {
        return Ok(0);
    }
    let mut steps = 0;
    for &op in ops {
        let mut next = sys.clone();
        path.push(op);
        next.step(op).map_err(|e| format!("{path:?}: {e}"))?;
        steps += 1 + all_sequences(&next, ops, depth - 1, path)?;
        path.pop();
    }
    Ok(steps)
}

/// Small pools: 0..=2 pages per region, at an ordinary base, at 0 (where the spec's
/// failure value is also a valid address) and just below the top of the 52-bit space.
fn small_layouts() -> Vec<Layout> {
    let mut v = Vec::new();
    for base in [0x4000_0000, 0, (1u64 << 52) - 8 * PAGE_SIZE] {
        for pgd in 0..=2 {
            for pud in 0..=2 {
                for pmd in 0..=2 {
                    v.push(layout(base, pgd, pud, pmd));
                }
            }
        }
    }
    v
}

#[test]
fn exhaustive_sequences_one_vm() {
    let ops = alphabet(1);
    let layouts = small_layouts();
    let mut steps = 0;
    for l in &layouts {
        steps += all_sequences(&System::new(&[*l]), &ops, 6, &mut Vec::new()).unwrap_or_else(|e| panic!("{l:?}: {e}"));
    }
    // Every sequence was run to the end: nothing was pruned.
    let per_layout: u64 = (1..=6).map(|k| (ops.len() as u64).pow(k)).sum();
    assert_eq!(steps, per_layout * layouts.len() as u64);
}

#[test]
fn exhaustive_sequences_two_vms() {
    let ops = alphabet(2);
    let a = layout(0x4000_0000, 1, 1, 2);
    for b in [layout(0x5000_0000, 2, 0, 1), layout(0x4000_0000 + 4 * PAGE_SIZE, 1, 2, 1)] {
        all_sequences(&System::new(&[a, b]), &ops, 4, &mut Vec::new()).unwrap_or_else(|e| panic!("{b:?}: {e}"));
    }
}

/// Every reachable state of every pool of up to 3 pages per region, with every operation
/// from each: a fixpoint, so no depth bound.
#[test]
fn exhaustive_reachable_states() {
    let ops = alphabet(1);
    let mut states = 0;
    for pgd in 0..=3 {
        for pud in 0..=3 {
            for pmd in 0..=3 {
                let l = layout(0x8000_0000, pgd, pud, pmd);
                let start = System::new(&[l]);
                let mut seen = BTreeSet::new();
                let mut queue = VecDeque::from([start]);
                while let Some(sys) = queue.pop_front() {
                    let key = format!("{:?}", sys.vms);
                    if !seen.insert(key) {
                        continue;
                    }
                    for &op in &ops {
                        let mut next = sys.clone();
                        next.step(op).unwrap_or_else(|e| panic!("{l:?} {:?}: {e}", sys.vms));
                        queue.push_back(next);
                    }
                }
                // Every combination of bump pointer positions is reachable, with the lock
                // held and not.
                let positions = (pgd + 1) * (pud + 1) * (pmd + 1);
                assert!(seen.len() as u64 >= 2 * positions, "{l:?}: {} states", seen.len());
                states += seen.len();
            }
        }
    }
    assert!(states > 3000, "{states} states");
}

fn op_strategy(vms: usize) -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..vms).prop_map(Op::Lock),
        1 => (0..vms).prop_map(Op::Unlock),
        30 => (0..vms, prop::sample::select(Region::ALL.to_vec())).prop_map(|(v, r)| Op::Alloc(v, r)),
        1 => (0..vms, 1..=16u32).prop_map(|(v, n)| Op::Root(v, n)),
    ]
}

/// Region sizes as KVM sees them: tiny (exhausted within a run) up to the module's maxima.
fn region_pages() -> impl Strategy<Value = u64> {
    prop_oneof![0..4u64, 0..64u64, 0..=4096u64, 0..=262_144u64]
}

/// 1..=4 VMs with disjoint pools from a page-aligned base below 2^48, and their operations.
fn system_strategy(max_ops: usize) -> impl Strategy<Value = (Vec<Layout>, Vec<Op>)> {
    (1..=4usize, 0x1_0000u64..(1 << 36)).prop_flat_map(move |(vms, base_page)| {
        (
            prop::collection::vec((1..=16u64, region_pages(), region_pages()), vms).prop_map(move |sizes| {
                let mut base = base_page * PAGE_SIZE;
                sizes
                    .into_iter()
                    .map(|(pgd, pud, pmd)| {
                        let l = layout(base, pgd, pud, pmd);
                        base = l.pool().1;
                        l
                    })
                    .collect::<Vec<_>>()
            }),
            prop::collection::vec(op_strategy(vms), 1..max_ops),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_sequences_agree_with_the_spec((layouts, ops) in system_strategy(3000)) {
        run(&layouts, &ops).map_err(TestCaseError::fail)?;
    }
}

/// `make fuzz`: random systems for FUZZ_SECONDS (default 60), a fresh seed per batch,
/// printed so a failure can be replayed with FUZZ_SEED.
#[test]
#[ignore = "long-running; make fuzz runs it"]
fn fuzz_refinement() {
    let secs = std::env::var("FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64));
    let (mut batches, mut cases) = (0u64, 0u64);
    while Instant::now() < deadline {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&seed.to_le_bytes());
        let config = Config { cases: 500, failure_persistence: None, ..Config::default() };
        let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &bytes));
        let result = runner.run(&system_strategy(5000), |(layouts, ops)| run(&layouts, &ops).map_err(TestCaseError::fail));
        if let Err(e) = result {
            let msg = match e {
                TestError::Fail(why, input) => format!("{why}\nminimal input: {input:?}"),
                TestError::Abort(why) => format!("aborted: {why}"),
            };
            panic!("FUZZ_SEED={seed}: {msg}");
        }
        batches += 1;
        cases += 500;
        seed = seed.wrapping_add(1);
    }
    println!("fuzz: {cases} random systems in {batches} batches, last seed {seed}, no disagreement");
    assert!(cases > 0, "FUZZ_SECONDS={secs} ran nothing");
}
