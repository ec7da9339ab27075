// SPDX-License-Identifier: GPL-2.0

//! The typed Rust side of the KVM boundary with `nptpool_kvm.c` (see `nptpool_kvm.h`):
//! the host mode, nptpool's registration with KVM, the callbacks KVM reaches through the
//! C shim, and a VM's memslots. The top of the module's layers: it calls into `vm.rs`,
//! which calls back up only to read the memslots of the VM it serves ([`VmMemslots`]).

use core::ffi::c_void;

use kernel::{
    alloc::KVVec,
    error::to_result,
    ffi::c_int,
    prelude::*,
    types::ForeignOwnable, //
};

use crate::{
    ptalloc::footprint::Range,
    vm::{
        Context,
        Need,
        Sizing,
        Vm, //
    },
};

mod ffi {
    use core::{
        ffi::c_void,
        mem::{
            offset_of,
            size_of, //
        },
    };
    use kernel::ffi::c_int;

    // `enum nptpool_host_mode`; nptpool_kvm.c asserts the same values.
    pub(super) const NPTPOOL_HOST_VHE: c_int = 1;
    pub(super) const NPTPOOL_HOST_NVHE: c_int = 2;
    pub(super) const NPTPOOL_HOST_PROTECTED: c_int = 3;

    // `enum kvm_s2_table_need` of patch 4; nptpool_kvm.c asserts KVM's values are these.
    pub(super) const KVM_S2_TABLE_BEST_EFFORT: c_int = 0;
    pub(super) const KVM_S2_TABLE_FAULT_RETRY: c_int = 1;
    pub(super) const KVM_S2_TABLE_FAULT: c_int = 2;

    // `NPTPOOL_NO_MEMSLOT`: no memslot, where one may be named.
    pub(super) const NPTPOOL_NO_MEMSLOT: u32 = u32::MAX;

    extern "C" {
        pub(super) fn nptpool_kvm_host_mode() -> c_int;
        pub(super) fn nptpool_kvm_register(ctx: *const c_void, fit: bool) -> c_int;
        pub(super) fn nptpool_kvm_unregister();
        pub(super) fn nptpool_kvm_memslots(
            kvm: *mut c_void,
            ranges: *mut u64,
            len: u64,
            except: u32,
        ) -> u64;
    }

    /// What KVM tells nptpool about a new VM: `struct nptpool_vm_info`.
    #[repr(C)]
    pub(crate) struct VmInfo {
        /// The VM's `struct kvm`, for [`super::VmMemslots`].
        pub(crate) kvm: *mut c_void,
        /// The VMM's process id, to name the VM in logs and debugfs.
        pub(crate) pid: i32,
        /// The stage-2 start level KVM picked for the VM's IPA size.
        pub(crate) start_level: i8,
        /// Concatenated pages of the root table.
        pub(crate) pgd_pages: u32,
    }

    // The layout of `struct nptpool_vm_info`, pinned to the numbers nptpool_kvm.c pins
    // the C struct to: a change to either definition fails its own side's build until
    // its numbers change, and those numbers are the other side's too.
    const _: () = assert!(offset_of!(VmInfo, kvm) == 0);
    const _: () = assert!(offset_of!(VmInfo, pid) == 8);
    const _: () = assert!(offset_of!(VmInfo, start_level) == 12);
    const _: () = assert!(offset_of!(VmInfo, pgd_pages) == 16);
    const _: () = assert!(size_of::<VmInfo>() == 24);
    const _: () = assert!(size_of::<*mut c_void>() == 8);
}

pub(crate) use ffi::VmInfo;

/// How the host runs KVM, fixed at boot by `kvm-arm.mode=`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum HostMode {
    /// The host kernel runs at EL2 (the default on CPUs with VHE).
    Vhe,
    /// The host kernel runs at EL1 and enters EL2 through hypercalls (`kvm-arm.mode=nvhe`).
    Nvhe,
    /// pKVM: EL2 owns the guests' stage-2 tables (`kvm-arm.mode=protected`).
    Protected,
}

impl HostMode {
    /// Reads the mode the host booted in.
    pub(crate) fn current() -> Result<Self> {
        // SAFETY: `nptpool_kvm_host_mode` only reads CPU capabilities that are final once
        // modules can load; it takes no locks and has no preconditions.
        match unsafe { ffi::nptpool_kvm_host_mode() } {
            ffi::NPTPOOL_HOST_VHE => Ok(Self::Vhe),
            ffi::NPTPOOL_HOST_NVHE => Ok(Self::Nvhe),
            ffi::NPTPOOL_HOST_PROTECTED => Ok(Self::Protected),
            _ => Err(EINVAL),
        }
    }

    /// The name used in log lines.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Vhe => "vhe",
            Self::Nvhe => "nvhe",
            Self::Protected => "protected",
        }
    }
}

/// KVM's registration of nptpool as the stage-2 table allocator of new VMs; dropping it
/// unregisters. VMs created meanwhile keep the allocator, and a reference on this module,
/// until they die.
///
/// # Invariants
///
/// KVM holds the registration from `new` until drop.
pub(crate) struct Registration(());

impl Registration {
    /// Registers nptpool; KVM's callbacks receive `ctx`.
    ///
    /// # Safety
    ///
    /// `ctx` stays valid until the registration is dropped and, since a VM created
    /// meanwhile pins the module, until the module's exit.
    pub(crate) unsafe fn new(ctx: *const Context) -> Result<Self> {
        // SAFETY: valid for reads by this function's safety requirements.
        let fit = unsafe { (*ctx).sizing } == Sizing::Fit;
        // SAFETY: the allocator it registers is a static of the C file; `ctx` lives long
        // enough by this function's safety requirements.
        to_result(unsafe { ffi::nptpool_kvm_register(ctx.cast(), fit) })?;
        // INVARIANT: registration succeeded.
        Ok(Self(()))
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: `self` exists only after a successful `nptpool_kvm_register`.
        unsafe { ffi::nptpool_kvm_unregister() }
    }
}

/// The memslots of the VM a pool serves, read for debugfs.
///
/// # Invariants
///
/// `kvm` is the `struct kvm` of the VM whose `vm_init` created the pool that holds this;
/// it, its memslots and its SRCU stay usable as long as the pool: KVM calls `vm_destroy`
/// before it frees any of them.
pub(crate) struct VmMemslots {
    kvm: *mut c_void,
}

// SAFETY: the VM outlives the pool that holds this (type invariant) whichever thread
// reads it, and `nptpool_kvm_memslots` may run on any thread: it takes the VM's SRCU for
// the memslots and reads the vGIC fields once each.
unsafe impl Send for VmMemslots {}
// SAFETY: as for `Send`; reading through `&VmMemslots` changes nothing.
unsafe impl Sync for VmMemslots {}

impl VmMemslots {
    /// The guest-physical ranges KVM may map in the VM's stage-2 now: its memslots, and
    /// the device range KVM maps itself for a GICv2 guest. A snapshot, for debugfs. May
    /// sleep.
    pub(crate) fn ranges(&self) -> Result<KVVec<Range>> {
        self.ranges_except(None)
    }

    /// As [`VmMemslots::ranges`], without the memslot `except` (numbered as
    /// `KVM_SET_USER_MEMORY_REGION` numbers it), if any.
    pub(crate) fn ranges_except(&self, except: Option<u32>) -> Result<KVVec<Range>> {
        let except = except.unwrap_or(ffi::NPTPOOL_NO_MEMSLOT);
        // Pairs of start and length; QEMU declares a handful of memslots.
        let mut len: u64 = 16;
        loop {
            let words = usize::try_from(len.checked_mul(2).ok_or(ENOMEM)?)?;
            let mut buf = KVVec::from_elem(0u64, words, GFP_KERNEL)?;
            // SAFETY: `kvm` lives as long as the pool (type invariant), and so does
            // `self`; `buf` has room for `len` pairs.
            let n = unsafe { ffi::nptpool_kvm_memslots(self.kvm, buf.as_mut_ptr(), len, except) };
            if n > len {
                // Memslots were added meanwhile: read them again, all of them.
                len = n;
                continue;
            }
            // Room for two more: a memslot on its way in, a range the VMM will map.
            let room = usize::try_from(n.checked_add(2).ok_or(ENOMEM)?)?;
            let mut ranges = KVVec::with_capacity(room, GFP_KERNEL)?;
            for pair in buf.chunks_exact(2).take(usize::try_from(n)?) {
                if let [start, len] = *pair {
                    ranges.push(Range { start, len }, GFP_KERNEL)?;
                }
            }
            return Ok(ranges);
        }
    }
}

/// KVM's `vm_init`, through the C shim: set up a VM's pool.
///
/// # Safety
///
/// `ctx` is the pointer given to `nptpool_kvm_register`, still registered or held alive
/// by the module reference KVM takes for the VM; `info` points to a valid
/// `struct nptpool_vm_info`; `vm` is valid for writes.
#[no_mangle]
pub(crate) unsafe extern "C" fn nptpool_vm_create(
    ctx: *const c_void,
    info: *const VmInfo,
    vm: *mut *mut c_void,
) -> i32 {
    // SAFETY: a live `Context` by the function's safety requirements.
    let ctx = unsafe { &*ctx.cast::<Context>() };
    // SAFETY: valid for reads by the function's safety requirements.
    let info = unsafe { &*info };
    // INVARIANT: `info.kvm` is the VM KVM creates the pool for, which outlives it.
    let memslots = VmMemslots { kvm: info.kvm };
    match Vm::create(ctx, memslots, info.pid, info.start_level, info.pgd_pages) {
        Ok(new) => {
            // SAFETY: valid for writes by the function's safety requirements.
            unsafe { *vm = new.into_foreign() };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// KVM's `zalloc_table`, through the C shim: the physical address of a fresh table, or 0.
/// `need` is KVM's `enum kvm_s2_table_need`: whether a guest's stage-2 fault needs the
/// table, and whether it can wait for tables on their way back.
///
/// # Safety
///
/// `vm` was returned by [`nptpool_vm_create`] and not yet passed to
/// [`nptpool_vm_destroy`].
#[no_mangle]
pub(crate) unsafe extern "C" fn nptpool_vm_alloc_table(
    vm: *mut c_void,
    level: i8,
    pages: u32,
    need: c_int,
) -> u64 {
    // SAFETY: by the function's safety requirements `vm` came from `into_foreign` and
    // `from_foreign` has not been called on it.
    let vm = unsafe { <Pin<KBox<Vm>> as ForeignOwnable>::borrow(vm) };
    let need = match need {
        ffi::KVM_S2_TABLE_FAULT => Need::Fault,
        ffi::KVM_S2_TABLE_FAULT_RETRY => Need::FaultRetry,
        ffi::KVM_S2_TABLE_BEST_EFFORT => Need::BestEffort,
        // A need this module does not know: a refusal that never halts the VM.
        _ => Need::BestEffort,
    };
    // SAFETY: KVM's `zalloc_table`, by the function's safety requirements.
    unsafe { vm.alloc_table(level, pages, need) }.unwrap_or(0)
}

/// KVM's `free_table`, through the C shim: KVM gave up the table at `phys`. From any
/// context, RCU callbacks in softirq included.
///
/// # Safety
///
/// `vm` was returned by [`nptpool_vm_create`] and not yet passed to
/// [`nptpool_vm_destroy`].
#[no_mangle]
pub(crate) unsafe extern "C" fn nptpool_vm_free_table(vm: *mut c_void, phys: u64) {
    // SAFETY: by the function's safety requirements `vm` came from `into_foreign` and
    // `from_foreign` has not been called on it.
    let vm = unsafe { <Pin<KBox<Vm>> as ForeignOwnable>::borrow(vm) };
    // SAFETY: KVM's `free_table`, by the function's safety requirements.
    unsafe { vm.free_table(phys) };
}

/// KVM's `vm_fit`, through the C shim: as the VM first runs, maybe move it to a pool
/// fitted to its memslots. 1 with `*root` the new root's address, 0 to keep the current
/// root, or a negative errno that fails the `KVM_RUN`.
///
/// # Safety
///
/// `vm` was returned by [`nptpool_vm_create`] and not yet passed to
/// [`nptpool_vm_destroy`]; `root` is valid for writes; KVM calls this as patch 6 of
/// `patches/` says: no other callback of the VM runs until [`nptpool_vm_fitted`]
/// returns, and the root is the VM's only table.
#[no_mangle]
pub(crate) unsafe extern "C" fn nptpool_vm_fit(vm: *mut c_void, root: *mut u64) -> c_int {
    // SAFETY: by the function's safety requirements `vm` came from `into_foreign` and
    // `from_foreign` has not been called on it.
    let vm = unsafe { <Pin<KBox<Vm>> as ForeignOwnable>::borrow(vm) };
    // SAFETY: KVM's `vm_fit`, by the function's safety requirements.
    match unsafe { vm.fit() } {
        Ok(Some(new)) => {
            // SAFETY: valid for writes by the function's safety requirements.
            unsafe { *root = new };
            1
        }
        Ok(None) => 0,
        Err(e) => e.to_errno(),
    }
}

/// KVM's `vm_fitted`, through the C shim: the pool before the fit goes back.
///
/// # Safety
///
/// As for [`nptpool_vm_fit`], which returned a root that KVM now uses instead.
#[no_mangle]
pub(crate) unsafe extern "C" fn nptpool_vm_fitted(vm: *mut c_void) {
    // SAFETY: by the function's safety requirements `vm` came from `into_foreign` and
    // `from_foreign` has not been called on it.
    let vm = unsafe { <Pin<KBox<Vm>> as ForeignOwnable>::borrow(vm) };
    // SAFETY: KVM's `vm_fitted`, by the function's safety requirements.
    unsafe { vm.fitted() };
}

/// KVM's `vm_provision`, through the C shim: the VMM will map the `size` bytes from
/// `base` later; 0, or a negative errno for its ioctl.
///
/// # Safety
///
/// `vm` was returned by [`nptpool_vm_create`] and not yet passed to
/// [`nptpool_vm_destroy`].
#[no_mangle]
pub(crate) unsafe extern "C" fn nptpool_vm_provision(
    vm: *mut c_void,
    base: u64,
    size: u64,
) -> c_int {
    // SAFETY: by the function's safety requirements `vm` came from `into_foreign` and
    // `from_foreign` has not been called on it.
    let vm = unsafe { <Pin<KBox<Vm>> as ForeignOwnable>::borrow(vm) };
    match vm.provision(Range {
        start: base,
        len: size,
    }) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// KVM's `prepare_memslot`, through the C shim: 0 if the memslot `slot` (numbered as
/// `KVM_SET_USER_MEMORY_REGION` numbers it) may be created at, or moved to (`moved`),
/// the `len` bytes from `start`; else a negative errno that fails the ioctl.
///
/// # Safety
///
/// `vm` was returned by [`nptpool_vm_create`] and not yet passed to
/// [`nptpool_vm_destroy`].
#[no_mangle]
pub(crate) unsafe extern "C" fn nptpool_vm_prepare_memslot(
    vm: *mut c_void,
    slot: u32,
    moved: bool,
    start: u64,
    len: u64,
) -> c_int {
    // SAFETY: by the function's safety requirements `vm` came from `into_foreign` and
    // `from_foreign` has not been called on it.
    let vm = unsafe { <Pin<KBox<Vm>> as ForeignOwnable>::borrow(vm) };
    match vm.prepare_memslot(slot, moved, Range { start, len }) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// KVM's `vm_destroy`, through the C shim: return the pool whole.
///
/// # Safety
///
/// `vm` was returned by [`nptpool_vm_create`]; KVM calls this once, when its tables are
/// torn down and the last RCU callback freeing unlinked ones has run, and never uses `vm`
/// again.
#[no_mangle]
pub(crate) unsafe extern "C" fn nptpool_vm_destroy(vm: *mut c_void) {
    // SAFETY: by the function's safety requirements `vm` came from `into_foreign` and
    // ownership comes back here once.
    drop(unsafe { <Pin<KBox<Vm>> as ForeignOwnable>::from_foreign(vm) });
}
