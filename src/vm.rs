// SPDX-License-Identifier: GPL-2.0

//! One VM's pool: its reservation, the `PTAllocSpec` allocator under the VM's spinlock,
//! the tables KVM gave back for reuse, and its debugfs directory.

use core::sync::atomic::AtomicU32;

use kernel::{
    alloc::KVVec,
    debugfs::{
        Dir,
        File,
        Scope, //
    },
    fmt,
    prelude::*,
    str::CString,
    sync::{
        atomic::{
            Atomic,
            Relaxed, //
        },
        new_spinlock,
        Arc,
        SpinLock, //
    },
};

use crate::{
    kvm::VmMemslots,
    ptalloc::{
        footprint::{
            footprint,
            Footprint, //
        },
        recycle::{
            FreeTables,
            Refused,
            Taker,
            NEVER, //
        },
        Layout,
        PtAlloc,
        Region,
        PAGE_SIZE, //
    },
    reservation::{
        MemcgLimit,
        Reservation, //
    }, //
};

// Where the two sides meet: KVM's tables are the kernel's pages, and the core carves pools
// in the page its cfg selected. Were they ever to differ, KVM would be handed tables that
// overlap; the build fails instead.
const _: () = assert!(kernel::page::PAGE_SIZE as u64 == PAGE_SIZE);

/// Module-wide state the VMs share: the sizes from the module parameters, the debugfs
/// root and the global counters.
pub(crate) struct Context {
    pub(crate) pud_pages: u32,
    pub(crate) pmd_pages: u32,
    pub(crate) debugfs: Dir,
    pub(crate) stats: Arc<Stats>,
}

/// The global counters, each shown by its own debugfs file.
#[pin_data]
pub(crate) struct Stats {
    /// VMs that have a pool.
    #[pin]
    vms: File<Atomic<u64>>,
    /// Pages reserved for all pools.
    #[pin]
    pages_reserved: File<Atomic<u64>>,
    /// Pages handed out as tables from all pools.
    #[pin]
    pages_in_use: File<Atomic<u64>>,
    /// Names VMs uniquely in debugfs, also when a VMM creates several.
    next_id: Atomic<u64>,
}

impl Stats {
    /// Counters at zero, with their files in `dir`.
    pub(crate) fn new(dir: &Dir) -> impl PinInit<Self> + '_ {
        pin_init!(Self {
            vms <- dir.read_only_file(c"vms", Atomic::new(0)),
            pages_reserved <- dir.read_only_file(c"pages_reserved", Atomic::new(0)),
            pages_in_use <- dir.read_only_file(c"pages_in_use", Atomic::new(0)),
            next_id: Atomic::new(0),
        })
    }
}

/// What the VM's lock guards: the spec's allocator and the right to take given-back
/// tables off their stacks.
struct Locked {
    ptalloc: PtAlloc,
    taker: Taker,
}

/// The part of a VM's pool that its debugfs files read too.
///
/// # Invariants
///
/// The allocator's layout lies inside `reservation`, and `free` is laid out for the
/// same pool, with the one [`Taker`] for it inside `alloc`.
#[pin_data]
struct VmState {
    name: CString,
    start_level: i8,
    /// The VM's memslots, for the footprint its debugfs shows.
    memslots: VmMemslots,
    /// The pool's memory. Released with the state, after the debugfs files that read it.
    reservation: Reservation,
    stats: Arc<Stats>,
    /// The tables KVM gave back. Given back to without the lock, from any context.
    free: FreeTables<KVVec<AtomicU32>>,
    /// Give-backs refused: KVM's counts of the VM's tables and the pool's disagree.
    refused: Atomic<u64>,
    /// The spec's per-VM NPT lock and the state it guards. Allocation needs `&mut PtAlloc`,
    /// which only the lock's guard gives out.
    #[pin]
    alloc: SpinLock<Locked>,
}

/// Why KVM asks for a table, which decides what running out of room does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Need {
    /// A guest's stage-2 fault, which cannot go on without the table: the spec's
    /// allocation, whose failure halts the VM.
    Fault,
    /// A guest's stage-2 fault that KVM retries without the table, as tables it gave up
    /// are still waiting for their RCU grace period: no room is no halt, yet.
    FaultRetry,
    /// Eager splitting, a device mapping (`kvm_phys_addr_ioremap`) or the root at VM
    /// creation: KVM copes without the table, so the VM must not halt for want of it.
    BestEffort,
}

/// A VM's pool, owned by KVM (through the C shim) from `vm_init` to `vm_destroy`.
///
/// The state is the data of the VM's debugfs directory: the scope removes the directory,
/// waiting for its readers, before it drops the state, so no reader sees the pool go.
///
/// # Invariants
///
/// While a `Vm` exists it is counted once in [`Stats::vms`] and its reservation in
/// [`Stats::pages_reserved`]; dropping it takes both back.
#[pin_data(PinnedDrop)]
pub(crate) struct Vm {
    #[pin]
    state: Scope<VmState>,
}

impl Vm {
    /// Reserves and lays out a VM's pool; may sleep.
    ///
    /// `pid` names the VMM, `start_level` is the stage-2 start level KVM picked for the
    /// VM's IPA size and `pgd_pages` the number of concatenated pages of its root.
    pub(crate) fn create(
        ctx: &Context,
        memslots: VmMemslots,
        pid: i32,
        start_level: i8,
        pgd_pages: u32,
    ) -> Result<Pin<KBox<Vm>>> {
        let id = ctx.stats.next_id.fetch_add(1, Relaxed);
        let name = CString::try_from_fmt(fmt!("vm-{}-{}", pid, id))?;
        let pgd_pages = u64::from(pgd_pages);
        // A stage-2 of two levels has no tables for the pud region: none is reserved.
        let pud_pages = if Region::Pud.used_from(start_level) {
            u64::from(ctx.pud_pages)
        } else {
            0
        };
        let pmd_pages = u64::from(ctx.pmd_pages);
        let pages = Layout::total_pages(pgd_pages, pud_pages, pmd_pages).ok_or(ENOMEM)?;
        // A root of several concatenated pages must be aligned to its size, which
        // alloc_contig_pages() does not promise: reserve room to align it.
        let slack = pgd_pages.checked_sub(1).ok_or(EINVAL)?;
        let wanted = pages.checked_add(slack).ok_or(ENOMEM)?;
        let reservation = Reservation::new(wanted).inspect_err(|_| {
            let kib = |pages: u64| pages.saturating_mul(PAGE_SIZE / 1024);
            match MemcgLimit::find(wanted) {
                Some(limit) => pr_err!(
                    "{}: cannot reserve a {} KiB stage-2 table pool for the VM of pid {}, VM creation fails with ENOMEM: memory cgroup {} is at its limit (memory.max {} KiB, {} KiB charged)\n",
                    &*name,
                    kib(wanted),
                    pid,
                    limit.path(),
                    kib(limit.max()),
                    kib(limit.usage())
                ),
                None => pr_err!(
                    "{}: cannot reserve a {} KiB stage-2 table pool for the VM of pid {}, VM creation fails with ENOMEM\n",
                    &*name,
                    kib(wanted),
                    pid
                ),
            }
        })?;
        let align = pgd_pages.checked_mul(PAGE_SIZE).ok_or(EINVAL)?;
        let base = reservation
            .phys()
            .checked_next_multiple_of(align)
            .ok_or(ENOMEM)?;
        let layout = Layout::new(base, pgd_pages, pud_pages, pmd_pages).ok_or(ENOMEM)?;

        // One link per pud and pmd page, none handed out yet.
        let links = usize::try_from(FreeTables::<KVVec<AtomicU32>>::links_needed(&layout))
            .map_err(|_| ENOMEM)?;
        let mut link_vec = KVVec::with_capacity(links, GFP_KERNEL)?;
        for _ in 0..links {
            link_vec.push(AtomicU32::new(NEVER), GFP_KERNEL)?;
        }
        let (free, taker) = FreeTables::new(&layout, link_vec).ok_or(EINVAL)?;

        let reserved = reservation.pages();
        // The state keeps the name for log lines; the directory is named by a copy.
        let dir_name = CString::try_from(&*name)?;
        // INVARIANT: `base` is `reservation.phys()` aligned up by at most `slack` pages and
        // the layout spans `pages`, so it ends within the `wanted` pages reserved; `free`
        // and its taker were made for the same layout.
        let state = pin_init!(VmState {
            name,
            start_level,
            memslots,
            reservation,
            stats: ctx.stats.clone(),
            free,
            refused: Atomic::new(0),
            alloc <- new_spinlock!(
                Locked {
                    ptalloc: PtAlloc::new(layout),
                    taker,
                },
                "nptpool_vm"
            ),
        });
        let vm = KBox::pin_init(
            pin_init!(Vm {
                state <- ctx.debugfs.scope(state, &dir_name, |state, dir| {
                    dir.read_callback_file(c"regions", state, &VmState::write_regions);
                    dir.read_callback_file(c"tables", state, &VmState::write_tables);
                    dir.read_callback_file(c"halted", state, &VmState::write_halted);
                    dir.read_callback_file(c"footprint", state, &VmState::write_footprint);
                }),
            }),
            GFP_KERNEL,
        )?;
        // INVARIANT: counted as soon as the `Vm` exists; nothing in between can fail and
        // drop it. A failure before never counted, and never ran the `Vm`'s drop.
        ctx.stats.vms.add(1, Relaxed);
        ctx.stats.pages_reserved.add(reserved, Relaxed);
        Ok(vm)
    }

    /// A table for `level`: `pages` pages, more than one only for a root of concatenated
    /// pages, zeroed. A single page comes from the tables KVM gave back to the region if
    /// it has any, else fresh from the spec's allocator. For a [`Need::Fault`],
    /// `None` once the region for `level` is exhausted, which halts the VM for good; for
    /// the other needs, `None` while the region has no room, which changes nothing. Runs
    /// under `kvm->mmu_lock`: does not sleep.
    pub(crate) fn alloc_table(&self, level: i8, pages: u32, need: Need) -> Option<u64> {
        let state = &self.state;
        let Some(region) = Region::for_level(level, state.start_level) else {
            pr_err!(
                "{}: KVM asked for a table at level {}, below no region of a stage-2 starting at level {}\n",
                &*state.name,
                level,
                state.start_level
            );
            return None;
        };
        if pages != 1 && region != Region::Pgd {
            return None;
        }

        let mut locked = state.alloc.lock();
        // A halted VM gets nothing, not even a table given back since.
        if locked.ptalloc.halted() {
            return None;
        }
        let reused = if pages == 1 {
            state.free.take(region, &mut locked.taker)
        } else {
            None
        };
        if let Some(phys) = reused {
            drop(locked);
            state.stats.pages_in_use.add(1, Relaxed);
            // SAFETY: KVM gave the page back and it was just taken off its stack, under
            // the lock that admits one taker: nobody else has it until it is returned.
            return unsafe { state.clear(phys, 1) };
        }

        let alloc = &mut locked.ptalloc;
        // A request KVM can do without, or retries, must not halt the VM: it reaches the
        // spec's allocation only when the region has room for it.
        if need != Need::Fault && !alloc.has_room(region, pages) {
            return None;
        }
        let table = alloc.alloc_contiguous(region, pages);
        // Not halted before (checked above): a halt now is this call's. Only its log line
        // needs the region's size.
        let halted_now = alloc.halted().then(|| alloc.region_pages(region));
        drop(locked);

        match table {
            Some(phys) => {
                // A pud or pmd page may come back from now on; the root never does.
                state.free.handed_out(phys);
                state.stats.pages_in_use.add(u64::from(pages), Relaxed);
                // The pool is reserved unzeroed: a VM pays for zeroing the tables it uses,
                // once each, not for its whole pool when it is created.
                // SAFETY: the spec's allocator handed the pages out, for the first time,
                // to this call alone: nobody else has them before they are returned.
                unsafe { state.clear(phys, pages) }
            }
            None => {
                // Logged once per VM: the halt is sticky, later calls fail silently, and
                // KVM stops asking once a fault got nothing (patch 4 of patches/).
                if let Some(region_pages) = halted_now {
                    pr_err!(
                        "{}: {} region exhausted ({} pages of {} KiB), VM halted: its KVM_RUN fails with ENOMEM from now on; raise the module parameter {}\n",
                        &*state.name,
                        region.name(),
                        region_pages,
                        PAGE_SIZE / 1024,
                        region.parameter()
                    );
                }
                None
            }
        }
    }

    /// KVM gave up the table at `phys`: keep it for the region's next table. From any
    /// context, without the VM's lock, which the same CPU may hold.
    pub(crate) fn free_table(&self, phys: u64) {
        let state = &self.state;
        match state.free.give_back(phys) {
            Ok(_) => {
                state.stats.pages_in_use.fetch_sub(1, Relaxed);
            }
            // The root's pages, as KVM tears the tables down: never reused.
            Err(Refused::NotReusable) if state.reservation.holds(phys) => {}
            // KVM's last put of a table it still uses, or of no table of the pool: its
            // counts and the pool's disagree, a bug on one side. Said once per VM, with
            // a warning, since it may come from every put of a table: `Vm`'s drop counts
            // the rest.
            Err(e) => {
                if state.refused.fetch_add(1, Relaxed) == 0 {
                    pr_err!(
                        "{}: KVM gave back 0x{:x}, not a table the pool has out: {:?}; kept out of reuse\n",
                        &*state.name,
                        phys,
                        e
                    );
                    kernel::warn_on!(true);
                }
            }
        }
    }
}

impl VmState {
    /// The pages of `region` handed out and not given back, as of `alloc`: the tables KVM
    /// holds, or has queued for a grace period.
    fn in_use(&self, alloc: &PtAlloc, region: Region) -> u64 {
        alloc
            .used_pages(region)
            .saturating_sub(self.free.free_pages(region))
    }

    /// Zeroes the `pages` pages from `phys` before they become a table; `Some(phys)`, or
    /// `None` with a line if they were not the pool's, which the type invariant rules out
    /// (they stay counted in use, as the allocator handed them out).
    ///
    /// # Safety
    ///
    /// The pages were just handed out to the caller, who alone has them until it returns
    /// them to KVM.
    unsafe fn clear(&self, phys: u64, pages: u32) -> Option<u64> {
        for page in 0..u64::from(pages) {
            let cleared = page
                .checked_mul(PAGE_SIZE)
                .and_then(|offset| phys.checked_add(offset))
                // SAFETY: the caller alone has the page, by this function's requirements.
                .and_then(|at| unsafe { self.reservation.clear_page(at) });
            if cleared.is_none() {
                pr_err!(
                    "{}: table page {} of 0x{:x} is not the pool's: not handed out\n",
                    &*self.name,
                    page,
                    phys
                );
                return None;
            }
        }
        Some(phys)
    }
}

// The debugfs reads copy what they show under the VM's lock and format it after: the
// lock is the one the VM's vCPUs take for every new table, under `kvm->mmu_lock`.
impl VmState {
    /// The allocator's state as of now.
    fn snapshot(&self) -> PtAlloc {
        self.alloc.lock().ptalloc.clone()
    }

    fn write_regions(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let alloc = self.snapshot();
        let (start, end) = alloc.layout().pool();
        writeln!(f, "start_level {}", self.start_level)?;
        writeln!(
            f,
            "pool start=0x{:x} end=0x{:x} reserved_start=0x{:x} reserved_pages={} memcg_charged={}",
            start,
            end,
            self.reservation.phys(),
            self.reservation.pages(),
            u8::from(self.reservation.charged())
        )?;
        for region in Region::ALL {
            let (start, end) = alloc.layout().bounds(region);
            writeln!(
                f,
                "{} start=0x{:x} end=0x{:x} pages={} used={} free={}",
                region.name(),
                start,
                end,
                alloc.region_pages(region),
                alloc.used_pages(region),
                self.free.free_pages(region),
            )?;
        }
        Ok(())
    }

    fn write_tables(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The refcounts too are read without the lock: they are KVM's, not the lock's.
        // Shown as KVM counts them, without the reference the pool keeps on each page
        // (patch 4 of patches/): 1 plus the table's live entries, 0 once KVM gave it up,
        // and one more for each reference someone else holds at the moment.
        let alloc = self.snapshot();
        for region in Region::ALL {
            let (start, _) = alloc.layout().bounds(region);
            let mut phys = start;
            while phys < alloc.next(region) {
                // By the type invariant every handed-out page is one of the reservation.
                let count = self
                    .reservation
                    .page_count(phys)
                    .and_then(|c| c.checked_sub(1))
                    .ok_or(fmt::Error)?;
                writeln!(f, "0x{:x} {} {}", phys, region.name(), count)?;
                let Some(after) = phys.checked_add(PAGE_SIZE) else {
                    break;
                };
                phys = after;
            }
        }
        Ok(())
    }

    /// The pool against the memory it maps: the memslots, the bound on the tables they
    /// can make KVM hold at once (`ptalloc/footprint.rs`), the tables handed out now, and
    /// the reservation. Ratios are memory over bytes, as `1/N`.
    fn write_footprint(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ranges = self.memslots.ranges().map_err(|_| fmt::Error)?;
        let memory = ranges
            .iter()
            .try_fold(0u64, |sum, r| sum.checked_add(r.len))
            .ok_or(fmt::Error)?;
        let bound: Footprint = footprint(&mut ranges, self.start_level).ok_or(fmt::Error)?;
        let alloc = self.snapshot();
        let ratio = |bytes: u64| memory.checked_div(bytes).unwrap_or(0);
        let bound_pages = bound.pud.saturating_add(bound.pmd);
        let bound_bytes = bound_pages.saturating_mul(PAGE_SIZE);
        writeln!(f, "memory ranges={} bytes={}", ranges.len(), memory)?;
        writeln!(
            f,
            "bound pud={} pmd={} bytes={} ratio=1/{}",
            bound.pud,
            bound.pmd,
            bound_bytes,
            ratio(bound_bytes)
        )?;
        writeln!(
            f,
            "in_use pud={} pmd={}",
            self.in_use(&alloc, Region::Pud),
            self.in_use(&alloc, Region::Pmd)
        )?;
        let pool_bytes = self.reservation.pages().saturating_mul(PAGE_SIZE);
        writeln!(
            f,
            "pool pud={} pmd={} bytes={} ratio=1/{}",
            alloc.region_pages(Region::Pud),
            alloc.region_pages(Region::Pmd),
            pool_bytes,
            ratio(pool_bytes)
        )
    }

    fn write_halted(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let halted = self.alloc.lock().ptalloc.halted();
        writeln!(f, "{}", u8::from(halted))
    }
}

#[pinned_drop]
impl PinnedDrop for Vm {
    fn drop(self: Pin<&mut Self>) {
        // KVM gave back what it could before `vm_destroy`: the pages still in use are
        // those handed out and not given back.
        let locked = self.state.alloc.lock();
        let used = Region::ALL.iter().fold(0u64, |sum, r| {
            sum.saturating_add(self.state.in_use(&locked.ptalloc, *r))
        });
        drop(locked);
        let refused = self.state.refused.load(Relaxed);
        if refused > 1 {
            pr_err!(
                "{}: {} give-backs refused in all\n",
                &*self.state.name,
                refused
            );
        }
        let stats = &self.state.stats;
        stats.vms.fetch_sub(1, Relaxed);
        stats
            .pages_reserved
            .fetch_sub(self.state.reservation.pages(), Relaxed);
        stats.pages_in_use.fetch_sub(used, Relaxed);
    }
}

impl Region {
    /// The module parameter that sizes the region.
    fn parameter(self) -> &'static str {
        match self {
            Region::Pgd => "(none: the root's size is fixed by the IPA size)",
            Region::Pud => "pud_pages",
            Region::Pmd => "pmd_pages",
        }
    }
}
