// SPDX-License-Identifier: GPL-2.0

//! One VM's pool: its reservation, the `PTAllocSpec` allocator under the VM's spinlock,
//! the tables KVM gave back for reuse, and its debugfs directory.

use core::{
    cell::UnsafeCell,
    sync::atomic::AtomicU32, //
};

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
        new_mutex,
        new_spinlock,
        Arc,
        Mutex,
        MutexGuard,
        SpinLock, //
    },
};

use crate::{
    kvm::VmMemslots,
    ptalloc::{
        footprint::{
            fitted,
            footprint,
            Footprint,
            Range, //
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
        free_pages,
        MemcgLimit,
        Reservation, //
    }, //
};

// Where the two sides meet: KVM's tables are the kernel's pages, and the core carves pools
// in the page its cfg selected. Were they ever to differ, KVM would be handed tables that
// overlap; the build fails instead.
const _: () = assert!(kernel::page::PAGE_SIZE as u64 == PAGE_SIZE);

/// How the VMs' pools are sized, from the module parameters.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Sizing {
    /// Every pool has these regions, in pages: `pud_pages` and `pmd_pages`.
    Fixed { pud_pages: u32, pmd_pages: u32 },
    /// A pool holds the root until the VM first runs, then the tables its memslots can
    /// need ([`fitted`]); a memslot added later that would not fit is refused.
    Fit,
}

/// Module-wide state the VMs share: the sizing from the module parameters, the debugfs
/// root and the global counters.
pub(crate) struct Context {
    pub(crate) sizing: Sizing,
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

/// A pool: its memory, the spec's allocator over it and the tables KVM gave back.
///
/// # Invariants
///
/// The allocator's layout lies inside `reservation`, and `free` is laid out for the
/// same pool, with the one [`Taker`] for it inside `alloc`. The pages of each region at
/// and beyond its bump pointer were never handed out, and nothing writes to them: if
/// `reservation.zeroed()`, they are still zero.
#[pin_data]
struct Pool {
    /// The pool's memory. Released with the pool, after the debugfs files that read it.
    reservation: Reservation,
    /// The tables KVM gave back. Given back to without the lock, from any context.
    free: FreeTables<KVVec<AtomicU32>>,
    /// The spec's per-VM NPT lock and the state it guards. Allocation needs `&mut PtAlloc`,
    /// which only the lock's guard gives out.
    #[pin]
    alloc: SpinLock<Locked>,
}

/// What a VM's debugfs files read: its name and memslots, and its pool.
///
/// # Invariants
///
/// `pool` is replaced only by [`Vm::fit`], holding `pool_lock`, while KVM runs no other
/// callback of the VM; the pool replaced waits in `retired` until [`Vm::fitted`], which
/// takes it out holding `pool_lock` too. Anything else reads `pool` from KVM's
/// callbacks, or holding `pool_lock`, and never reads `retired`.
#[pin_data]
struct VmState {
    name: CString,
    /// The VMM's process id, for log lines.
    pid: i32,
    start_level: i8,
    sizing: Sizing,
    /// The VM's memslots, for the footprint its debugfs shows and the fit.
    memslots: VmMemslots,
    stats: Arc<Stats>,
    /// Give-backs refused: KVM's counts of the VM's tables and the pool's disagree.
    refused: Atomic<u64>,
    /// Whether the pool was fitted: memslots created or moved since must fit it.
    fitted: Atomic<u32>,
    /// Memslots refused, whose lines are limited.
    slots_refused: Atomic<u64>,
    /// Failed reservations of the fitted pool, whose lines are limited.
    fit_failures: Atomic<u64>,
    /// The range the VMM will map later (`KVM_CAP_ARM_S2_TABLE_RANGE`), if it named one.
    #[pin]
    provisioned: Mutex<Option<Range>>,
    /// Keeps debugfs readers off `pool` while a fit replaces it.
    #[pin]
    pool_lock: Mutex<()>,
    pool: UnsafeCell<Pin<KBox<Pool>>>,
    retired: UnsafeCell<Option<Pin<KBox<Pool>>>>,
}

/// Lines a VM logs for memslots it refuses.
const SLOT_LINES: u64 = 4;

/// Lines a VM logs for failed reservations of its fitted pool.
const FIT_LINES: u64 = 4;

// What `VmState`'s `Send` and `Sync` below rest on, besides the two cells.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Pool>();
    send_sync::<VmMemslots>();
    send_sync::<Stats>();
    send_sync::<Mutex<()>>();
};

// SAFETY: `pool` and `retired` are written only under the exclusion the type invariant
// states, which makes every access to them race free from any thread; the rest is
// `Sync` already.
unsafe impl Sync for VmState {}
// SAFETY: as for `Sync`; nothing in the state is tied to the thread that made it.
unsafe impl Send for VmState {}

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

impl Pool {
    /// Reserves a pool of `pgd_pages`, `pud_pages` and `pmd_pages` for the VM `name` of
    /// `pid` and lays it out, zeroed whole if `zero`; may sleep. On failure, if `failing`
    /// names what fails for want of it, a line says why.
    fn reserve(
        name: &CStr,
        pid: i32,
        failing: Option<&str>,
        zero: bool,
        pgd_pages: u64,
        pud_pages: u64,
        pmd_pages: u64,
    ) -> Result<Pin<KBox<Pool>>> {
        let pages = Layout::total_pages(pgd_pages, pud_pages, pmd_pages).ok_or(ENOMEM)?;
        // A root of several concatenated pages must be aligned to its size, which
        // alloc_contig_pages() does not promise: reserve room to align it.
        let slack = pgd_pages.checked_sub(1).ok_or(EINVAL)?;
        let wanted = pages.checked_add(slack).ok_or(ENOMEM)?;
        let reservation = Reservation::new(wanted, zero).inspect_err(|_| {
            let Some(what) = failing else {
                return;
            };
            let kib = |pages: u64| pages.saturating_mul(PAGE_SIZE / 1024);
            match MemcgLimit::find(wanted) {
                Some(limit) => pr_err!(
                    "{}: cannot reserve a {} KiB stage-2 table pool for the VM of pid {}, {} fails with ENOMEM: memory cgroup {} is at its limit (memory.max {} KiB, {} KiB charged)\n",
                    name,
                    kib(wanted),
                    pid,
                    what,
                    limit.path(),
                    kib(limit.max()),
                    kib(limit.usage())
                ),
                None => {
                    let (free, short) = free_pages(wanted);
                    pr_err!(
                        "{}: cannot reserve a {} KiB stage-2 table pool for the VM of pid {}, {} fails with ENOMEM: {} KiB free{}\n",
                        name,
                        kib(wanted),
                        pid,
                        what,
                        kib(free),
                        if short {
                            ", fewer than the pool takes"
                        } else {
                            // Plenty free and still no pool (README: Fragmented hosts).
                            ", but no physically contiguous range of the pool's size was free or could be freed: memory likely fragmented by unmovable pages"
                        }
                    )
                }
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

        // INVARIANT: `base` is `reservation.phys()` aligned up by at most `slack` pages and
        // the layout spans `pages`, so it ends within the `wanted` pages reserved; `free`
        // and its taker were made for the same layout. The bump pointers start at their
        // regions' starts (`PtAlloc::new`), nothing has touched the pages, and if `zero`
        // the whole reservation is zero (`Reservation`'s invariant).
        KBox::pin_init(
            pin_init!(Pool {
                reservation,
                free,
                alloc <- new_spinlock!(
                    Locked {
                        ptalloc: PtAlloc::new(layout),
                        taker,
                    },
                    "nptpool_vm"
                ),
            }),
            GFP_KERNEL,
        )
    }

    /// The pages of `region` handed out and not given back, as of `alloc`: the tables KVM
    /// holds, or has queued for a grace period.
    fn in_use(&self, alloc: &PtAlloc, region: Region) -> u64 {
        alloc
            .used_pages(region)
            .saturating_sub(self.free.free_pages(region))
    }

    /// The pages of every region handed out and not given back.
    fn in_use_total(&self) -> u64 {
        let locked = self.alloc.lock();
        Region::ALL.iter().fold(0u64, |sum, r| {
            sum.saturating_add(self.in_use(&locked.ptalloc, *r))
        })
    }

    /// Takes the pool out of the global counters as it goes: its reservation, and the
    /// pages it has handed out and not got back.
    fn uncount(&self, stats: &Stats) {
        stats.pages_in_use.fetch_sub(self.in_use_total(), Relaxed);
        stats
            .pages_reserved
            .fetch_sub(self.reservation.pages(), Relaxed);
    }

    /// The allocator's state as of now.
    fn snapshot(&self) -> PtAlloc {
        self.alloc.lock().ptalloc.clone()
    }

    /// Makes the `pages` pages from `phys` ready to become a table: zeroed. Clears them,
    /// unless they are [`Handout::Fresh`] from a reservation zeroed whole, which they still
    /// are (checked, and cleared if not, in a `CONFIG_DEBUG_VM` kernel). `Some(phys)`, or
    /// `None` with a line if they were not the pool's, which the type invariant rules out
    /// (they stay counted in use, as the allocator handed them out).
    ///
    /// # Safety
    ///
    /// The pages were just handed out to the caller, who alone has them until it returns
    /// them to KVM; they are [`Handout::Fresh`] only if never handed out before.
    unsafe fn prepare_table(
        &self,
        name: &CStr,
        phys: u64,
        pages: u32,
        handout: Handout,
    ) -> Option<u64> {
        let zeroed = handout == Handout::Fresh && self.reservation.zeroed();
        for page in 0..u64::from(pages) {
            let Some(at) = page
                .checked_mul(PAGE_SIZE)
                .and_then(|offset| phys.checked_add(offset))
                .filter(|at| self.reservation.holds(*at))
            else {
                pr_err!(
                    "{}: table page {} of 0x{:x} is not the pool's: not handed out\n",
                    name,
                    page,
                    phys
                );
                return None;
            };
            if zeroed && !self.written_since_zeroed(name, at) {
                continue;
            }
            // SAFETY: the caller alone has the page, by this function's requirements; it
            // is the pool's (checked above), so this clears it.
            unsafe { self.reservation.clear_page(at) };
        }
        Some(phys)
    }

    /// Whether the fresh page at `at` of a reservation zeroed whole is not zero any more,
    /// which the type invariant rules out: a `CONFIG_DEBUG_VM` kernel checks it, and
    /// warns the first time after the module is loaded, so that `page_poison=1` (make
    /// check-debug) still catches a table handed out unzeroed.
    fn written_since_zeroed(&self, name: &CStr, at: u64) -> bool {
        static WARNED: Atomic<bool> = Atomic::new(false);
        if !cfg!(CONFIG_DEBUG_VM) || self.reservation.is_zero(at) != Some(false) {
            return false;
        }
        if !WARNED.xchg(true, Relaxed) {
            pr_err!(
                "{}: fresh table page 0x{:x} of a pool reserved zeroed is not zero: cleared\n",
                name,
                at
            );
            kernel::warn_on!(true);
        }
        true
    }
}

/// Where a table handed out comes from, for [`Pool::prepare_table`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Handout {
    /// Never handed out before: the spec's allocator's next page(s).
    Fresh,
    /// Given back by KVM, with whatever it left in it.
    GivenBack,
}

impl VmState {
    /// The pool, for KVM's callbacks.
    ///
    /// # Safety
    ///
    /// Called from a KVM callback of the VM other than `vm_fit` and `vm_fitted`, which
    /// KVM never runs alongside them: the pool cannot be replaced while the borrow lasts.
    unsafe fn kvm_pool(&self) -> &Pool {
        // SAFETY: by the type invariant only `Vm::fit` writes `pool`, and KVM runs it with
        // no other callback of the VM, so none is under way now, by this function's
        // requirements.
        unsafe { &*self.pool.get() }
    }

    /// What the VM's tables are sized for: its memslots but `except` (see
    /// [`VmMemslots::ranges_except`]), and the range the VMM will map later, if it named
    /// one, which a memslot inside it then needs nothing more for. May sleep.
    fn ranges_to_map(&self, except: Option<u32>) -> Result<KVVec<Range>> {
        let mut ranges = self.memslots.ranges_except(except)?;
        if let Some(range) = *self.provisioned.lock() {
            ranges.push(range, GFP_KERNEL)?;
        }
        Ok(ranges)
    }

    /// The pool, held in place by `pool_lock` for as long as the guard lives.
    fn lock_pool(&self) -> PoolGuard<'_> {
        let guard = self.pool_lock.lock();
        // SAFETY: `pool` is only written with `pool_lock` held (type invariant), which
        // `guard` holds for as long as the borrow, both living in the `PoolGuard`.
        let pool = unsafe { &*self.pool.get() };
        PoolGuard {
            _guard: guard,
            pool,
        }
    }
}

/// A VM's pool, and `pool_lock` held so that no fit replaces it.
struct PoolGuard<'a> {
    _guard: MutexGuard<'a, ()>,
    pool: &'a Pool,
}

impl core::ops::Deref for PoolGuard<'_> {
    type Target = Pool;

    fn deref(&self) -> &Pool {
        self.pool
    }
}

impl Vm {
    /// Reserves and lays out a VM's pool; may sleep.
    ///
    /// `pid` names the VMM, `start_level` is the stage-2 start level KVM picked for the
    /// VM's IPA size and `pgd_pages` the number of concatenated pages of its root. A pool
    /// to be fitted holds the root alone until then.
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
        let (pud_pages, pmd_pages) = match ctx.sizing {
            Sizing::Fixed {
                pud_pages,
                pmd_pages,
            } => (u64::from(pud_pages), u64::from(pmd_pages)),
            Sizing::Fit => (0, 0),
        };
        // A stage-2 of two levels has no tables for the pud region: none is reserved.
        let pud_pages = if Region::Pud.used_from(start_level) {
            pud_pages
        } else {
            0
        };
        let pool = Pool::reserve(
            &name,
            pid,
            Some("VM creation"),
            // A pool to be fitted is its root alone, all of it a table from the start; a
            // fixed pool is mostly never used: each page is zeroed as it becomes a table.
            ctx.sizing == Sizing::Fit,
            pgd_pages,
            pud_pages,
            pmd_pages,
        )?;
        let reserved = pool.reservation.pages();
        // The state keeps the name for log lines; the directory is named by a copy.
        let dir_name = CString::try_from(&*name)?;
        // INVARIANT: nothing has replaced the pool yet, and nothing is retired.
        let state = pin_init!(VmState {
            name,
            pid,
            start_level,
            sizing: ctx.sizing,
            memslots,
            stats: ctx.stats.clone(),
            refused: Atomic::new(0),
            fitted: Atomic::new(0),
            slots_refused: Atomic::new(0),
            fit_failures: Atomic::new(0),
            provisioned <- new_mutex!(None),
            pool_lock <- new_mutex!(()),
            pool: UnsafeCell::new(pool),
            retired: UnsafeCell::new(None),
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
    ///
    /// # Safety
    ///
    /// Called from KVM's `zalloc_table` (see [`VmState::kvm_pool`]).
    pub(crate) unsafe fn alloc_table(&self, level: i8, pages: u32, need: Need) -> Option<u64> {
        let state = &self.state;
        // SAFETY: KVM's `zalloc_table`, by this function's requirements.
        let pool = unsafe { state.kvm_pool() };
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

        let mut locked = pool.alloc.lock();
        // A halted VM gets nothing, not even a table given back since.
        if locked.ptalloc.halted() {
            return None;
        }
        let reused = if pages == 1 {
            pool.free.take(region, &mut locked.taker)
        } else {
            None
        };
        if let Some(phys) = reused {
            drop(locked);
            state.stats.pages_in_use.add(1, Relaxed);
            // SAFETY: KVM gave the page back and it was just taken off its stack, under
            // the lock that admits one taker: nobody else has it until it is returned.
            return unsafe { pool.prepare_table(&state.name, phys, 1, Handout::GivenBack) };
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
                pool.free.handed_out(phys);
                state.stats.pages_in_use.add(u64::from(pages), Relaxed);
                // SAFETY: the spec's allocator handed the pages out, for the first time,
                // to this call alone: nobody else has them before they are returned.
                unsafe { pool.prepare_table(&state.name, phys, pages, Handout::Fresh) }
            }
            None => {
                // Logged once per VM: the halt is sticky, later calls fail silently, and
                // KVM stops asking once a fault got nothing (patch 4 of patches/).
                if let Some(region_pages) = halted_now {
                    pr_err!(
                        "{}: {} region exhausted ({} pages of {} KiB), VM halted: its KVM_RUN fails with ENOMEM from now on; {}\n",
                        &*state.name,
                        region.name(),
                        region_pages,
                        PAGE_SIZE / 1024,
                        region.remedy(state.sizing)
                    );
                }
                None
            }
        }
    }

    /// KVM gave up the table at `phys`: keep it for the region's next table. From any
    /// context, without the VM's lock, which the same CPU may hold.
    ///
    /// # Safety
    ///
    /// Called from KVM's `free_table` (see [`VmState::kvm_pool`]).
    pub(crate) unsafe fn free_table(&self, phys: u64) {
        let state = &self.state;
        // SAFETY: KVM's `free_table`, by this function's requirements.
        let pool = unsafe { state.kvm_pool() };
        match pool.free.give_back(phys) {
            Ok(_) => {
                state.stats.pages_in_use.fetch_sub(1, Relaxed);
            }
            // The root's pages, as KVM tears the tables down: never reused.
            Err(Refused::NotReusable) if pool.reservation.holds(phys) => {}
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

    /// KVM's `vm_fit`, as the VM first runs: for a pool to be fitted, reserves one that
    /// holds the tables the VM's memslots can need ([`fitted`]), takes its root and puts
    /// it in the place of the current pool, which waits for [`Vm::fitted`]. Returns the
    /// new root's address, `None` to keep the pool, or the error that fails the VM's
    /// `KVM_RUN` (with a line). May sleep.
    ///
    /// # Safety
    ///
    /// KVM runs no other callback of the VM from this call until [`Vm::fitted`] returns,
    /// and no table but the root is handed out: it will install the root returned and
    /// drop every reference to the current one before calling [`Vm::fitted`].
    pub(crate) unsafe fn fit(&self) -> Result<Option<u64>> {
        let state = &self.state;
        if state.sizing != Sizing::Fit {
            return Ok(None);
        }
        let mut ranges = state.ranges_to_map(None)?;
        let bound = footprint(&mut ranges, state.start_level).ok_or(EINVAL)?;
        let want = fitted(bound, state.start_level).ok_or(ENOMEM)?;

        let (pgd_pages, in_use) = {
            let pool = state.lock_pool();
            (
                pool.snapshot().region_pages(Region::Pgd),
                pool.in_use_total(),
            )
        };
        // KVM checked its root is its only table (patch 6): were the pool to disagree,
        // the tables it holds would go with it.
        if in_use != pgd_pages {
            pr_err!(
                "{}: not fitted: {} pages of the pool are in use, the root has {}\n",
                &*state.name,
                in_use,
                pgd_pages
            );
            return Err(EBUSY);
        }
        // A VMM may retry KVM_RUN without end: the first failures say why, then one
        // line says the rest do not. `fit` runs under KVM's `slots_lock`: one at a time.
        let failures = state.fit_failures.load(Relaxed);
        // Held from the reservation to the swap: debugfs shows the old pool or the new.
        let guard = state.pool_lock.lock();
        let new = Pool::reserve(
            &state.name,
            state.pid,
            (failures < FIT_LINES).then_some("its first KVM_RUN"),
            // Zeroed now, before the VM runs, so that no fault taking a fresh table
            // clears one. A fitted pool is what mappings of the memslots at the page
            // size need (about 1/512 of their size with 4 KiB pages), zeroed once
            // whatever the guest maps with blocks.
            true,
            pgd_pages,
            want.pud,
            want.pmd,
        )
        .inspect_err(|e| {
            state
                .fit_failures
                .store(failures.saturating_add(1), Relaxed);
            if failures == FIT_LINES {
                pr_err!(
                    "{}: its first KVM_RUN failed again ({:?}), as {} times before: not logged any more\n",
                    &*state.name,
                    e,
                    FIT_LINES
                );
            }
        })?;
        let pgd = u32::try_from(pgd_pages)?;
        let root = new.alloc.lock().ptalloc.alloc_contiguous(Region::Pgd, pgd);
        // SAFETY: the spec's allocator handed the pages out, for the first time, to this
        // call alone, from a pool nobody else has yet.
        let root = root
            .and_then(|phys| unsafe { new.prepare_table(&state.name, phys, pgd, Handout::Fresh) });
        let Some(root) = root else {
            pr_err!(
                "{}: the fitted pool has no room for the root\n",
                &*state.name
            );
            return Err(ENOMEM);
        };
        state
            .stats
            .pages_reserved
            .add(new.reservation.pages(), Relaxed);
        state.stats.pages_in_use.add(pgd_pages, Relaxed);
        // SAFETY: `pool_lock` is held (`guard`) and KVM runs no other callback of the VM,
        // by this function's requirements: nobody reads `pool` or `retired` meanwhile.
        unsafe {
            let old = core::mem::replace(&mut *state.pool.get(), new);
            *state.retired.get() = Some(old);
        }
        drop(guard);
        // INVARIANT: replaced holding `pool_lock`, with KVM's callbacks held off; the old
        // pool waits in `retired`.
        state.fitted.store(1, Relaxed);
        Ok(Some(root))
    }

    /// KVM's `vm_fitted`: KVM uses the root [`Vm::fit`] returned and holds no reference on
    /// the pool before it, which goes back. May sleep.
    ///
    /// # Safety
    ///
    /// As for [`Vm::fit`].
    pub(crate) unsafe fn fitted(&self) {
        let state = &self.state;
        let guard = state.pool_lock.lock();
        // SAFETY: `pool_lock` is held and KVM runs no other callback of the VM, by this
        // function's requirements: nobody else touches `retired`.
        let old = unsafe { (*state.retired.get()).take() };
        drop(guard);
        if let Some(old) = old {
            old.uncount(&state.stats);
        }
    }

    /// KVM's `vm_provision`: the VMM will map `range` later, so the fit, still to come,
    /// takes it as one more memslot. Replaces a range named before. May sleep.
    pub(crate) fn provision(&self, range: Range) -> Result {
        *self.state.provisioned.lock() = Some(range);
        Ok(())
    }

    /// KVM's `prepare_memslot`: whether the memslot `slot` (as
    /// `KVM_SET_USER_MEMORY_REGION` numbers it) created or moved to `new` keeps the VM's
    /// memslots within its fitted pool; `moved` if it replaces the memslot of the same
    /// number. `ENOSPC`, with a line, if not. Before the fit, and for pools sized by the
    /// module parameters, any memslot fits. May sleep.
    pub(crate) fn prepare_memslot(&self, slot: u32, moved: bool, new: Range) -> Result {
        let state = &self.state;
        // Relaxed: KVM calls this and `fit` under the same `kvm->slots_lock`.
        if state.sizing != Sizing::Fit || state.fitted.load(Relaxed) == 0 {
            return Ok(());
        }
        let mut ranges = state.ranges_to_map(moved.then_some(slot))?;
        ranges.push(new, GFP_KERNEL)?;
        let need = footprint(&mut ranges, state.start_level).ok_or(EINVAL)?;
        let alloc = state.lock_pool().snapshot();
        let (pud, pmd) = (
            alloc.region_pages(Region::Pud),
            alloc.region_pages(Region::Pmd),
        );
        if need.pud <= pud && need.pmd <= pmd {
            return Ok(());
        }
        // A VMM may retry without end: the first few say why, the rest are counted.
        let refused = state.slots_refused.fetch_add(1, Relaxed);
        if refused >= SLOT_LINES {
            if refused == SLOT_LINES {
                pr_err!(
                    "{}: more memslots refused with ENOSPC, not logged\n",
                    &*state.name
                );
            }
            return Err(ENOSPC);
        }
        pr_err!(
            "{}: memslot {} at 0x{:x} ({} KiB) refused with ENOSPC: the VM's memslots would need {} pud and {} pmd tables, its pool, fitted as it first ran, has {} and {}\n",
            &*state.name,
            slot,
            new.start,
            new.len / 1024,
            need.pud,
            need.pmd,
            pud,
            pmd
        );
        Err(ENOSPC)
    }
}

// The debugfs reads copy what they show under the VM's lock and format it after: the
// lock is the one the VM's vCPUs take for every new table, under `kvm->mmu_lock`. They
// hold `pool_lock` throughout, so that a fit does not replace the pool under them.
impl VmState {
    fn write_regions(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pool = self.lock_pool();
        let alloc = pool.snapshot();
        let (start, end) = alloc.layout().pool();
        writeln!(f, "start_level {}", self.start_level)?;
        writeln!(
            f,
            "pool start=0x{:x} end=0x{:x} reserved_start=0x{:x} reserved_pages={} memcg_charged={}",
            start,
            end,
            pool.reservation.phys(),
            pool.reservation.pages(),
            u8::from(pool.reservation.charged())
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
                pool.free.free_pages(region),
            )?;
        }
        Ok(())
    }

    fn write_tables(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The refcounts too are read without the lock: they are KVM's, not the lock's.
        // Shown as KVM counts them, without the reference the pool keeps on each page
        // (patch 4 of patches/): 1 plus the table's live entries, 0 once KVM gave it up,
        // and one more for each reference someone else holds at the moment.
        let pool = self.lock_pool();
        let alloc = pool.snapshot();
        for region in Region::ALL {
            let (start, _) = alloc.layout().bounds(region);
            let mut phys = start;
            while phys < alloc.next(region) {
                // By the type invariant every handed-out page is one of the reservation.
                let count = pool
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
        let pool = self.lock_pool();
        let alloc = pool.snapshot();
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
            pool.in_use(&alloc, Region::Pud),
            pool.in_use(&alloc, Region::Pmd)
        )?;
        let pool_bytes = pool.reservation.pages().saturating_mul(PAGE_SIZE);
        writeln!(
            f,
            "pool pud={} pmd={} bytes={} ratio=1/{}",
            alloc.region_pages(Region::Pud),
            alloc.region_pages(Region::Pmd),
            pool_bytes,
            ratio(pool_bytes)
        )?;
        if let Some(range) = *self.provisioned.lock() {
            writeln!(
                f,
                "provisioned start=0x{:x} bytes={}",
                range.start, range.len
            )?;
        }
        writeln!(
            f,
            "sizing {}",
            match self.sizing {
                Sizing::Fixed { .. } => "parameters",
                Sizing::Fit if self.fitted.load(Relaxed) != 0 => "fitted",
                Sizing::Fit => "root-until-first-run",
            }
        )
    }

    fn write_halted(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let halted = self.lock_pool().alloc.lock().ptalloc.halted();
        writeln!(f, "{}", u8::from(halted))
    }
}

#[pinned_drop]
impl PinnedDrop for Vm {
    fn drop(self: Pin<&mut Self>) {
        // KVM gave back what it could before `vm_destroy`: the pages still in use are
        // those handed out and not given back.
        let state = &self.state;
        state.lock_pool().uncount(&state.stats);
        let refused = state.refused.load(Relaxed);
        if refused > 1 {
            pr_err!("{}: {} give-backs refused in all\n", &*state.name, refused);
        }
        state.stats.vms.fetch_sub(1, Relaxed);
    }
}

impl Region {
    /// What to do about the region's exhaustion, for its log line.
    fn remedy(self, sizing: Sizing) -> &'static str {
        match (sizing, self) {
            (_, Region::Pgd) => "the root's size is fixed by the IPA size",
            (Sizing::Fixed { .. }, Region::Pud) => {
                "raise the module parameter pud_pages, or load nptpool without pud_pages, pmd_pages and fit=0 to fit each pool to its VM"
            }
            (Sizing::Fixed { .. }, Region::Pmd) => {
                "raise the module parameter pmd_pages, or load nptpool without pud_pages, pmd_pages and fit=0 to fit each pool to its VM"
            }
            (Sizing::Fit, _) => {
                "the pool was fitted to the memslots, which a fault should never outgrow: please report it"
            }
        }
    }
}
