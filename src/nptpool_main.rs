// SPDX-License-Identifier: GPL-2.0

//! nptpool: per-VM, physically contiguous stage-2 page-table pools for arm64 KVM.
//!
//! Every stage-2 table page of a VM created while the module is loaded comes from that
//! VM's own pool, through the bump allocator specified by SeKVM's `PTAllocSpec`
//! (`ptalloc.rs`), under a per-VM spinlock (`vm.rs`). Running out of pool halts that one
//! VM, never the host; the pool goes back whole when the VM dies.
//!
//! KVM reaches the allocator through the extension point added by `patches/`, via the C
//! shim in `nptpool_kvm.c` (`kvm.rs` is the Rust side of that boundary).

mod bench;
mod kvm;
#[expect(
    unreachable_pub,
    reason = "also the root of the host test crate (Cargo.toml), whose API is its `pub` items"
)]
mod ptalloc;
mod ptalloc_kunit;
mod reservation;
mod vm;

use kernel::{
    debugfs::{
        Dir,
        File, //
    },
    prelude::*,
    sync::Arc, //
};

use bench::AllocBench;
use kvm::{
    HostMode,
    Registration, //
};
use vm::{
    Context,
    Sizing,
    Stats, //
};

module! {
    type: NptPool,
    name: "nptpool",
    authors: ["The nptpool developers"],
    description: "Per-VM contiguous stage-2 page-table pools for arm64 KVM",
    license: "GPL",
    params: {
        pud_pages: u32 {
            default: crate::ptalloc::DEFAULT_PUD_PAGES,
            description: "Kernel pages in each VM's region for the tables one level below the root, when that is not the last level (up to 16 MiB; default 32 with 4K pages, 4 with 16K or 64K)",
        },
        fit: u32 {
            default: 0,
            description: "1: size each VM's pool as the VM first runs, from the memslots its VMM declared (the tables they can need, plus an eighth), and refuse with ENOSPC a memslot added later that would not fit; pud_pages and pmd_pages are not used then. 0: every pool has the regions pud_pages and pmd_pages say",
        },
        pmd_pages: u32 {
            default: crate::ptalloc::DEFAULT_PMD_PAGES,
            description: "Kernel pages in each VM's region for the last-level tables and any between them and the pud region's (up to 1 GiB; default 960 with 4K pages, 60 with 16K, 16 with 64K: 1920 MiB of guest memory mapped page by page)",
        },
    },
}

/// A module parameter with the range it must lie in.
struct Param {
    name: &'static str,
    value: u32,
    min: u32,
    max: u32,
}

impl Param {
    fn check(&self) -> Result<u32> {
        if (self.min..=self.max).contains(&self.value) {
            return Ok(self.value);
        }
        pr_err!(
            "{}={} is out of range, it must be {}..{}\n",
            self.name,
            self.value,
            self.min,
            self.max
        );
        Err(EINVAL)
    }
}

/// The loaded module. Fields drop in order: KVM stops calling in before the context and
/// the debugfs files it uses go away.
struct NptPool {
    _registration: Registration,
    _alloc_bench: Pin<KBox<File<AllocBench>>>,
    _ctx: Pin<KBox<Context>>,
}

impl kernel::Module for NptPool {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let pud_pages = Param {
            name: "pud_pages",
            value: *module_parameters::pud_pages.value(),
            min: 1,
            max: ptalloc::MAX_PUD_PAGES,
        }
        .check()?;
        let pmd_pages = Param {
            name: "pmd_pages",
            value: *module_parameters::pmd_pages.value(),
            min: 1,
            max: ptalloc::MAX_PMD_PAGES,
        }
        .check()?;
        let fit = Param {
            name: "fit",
            value: *module_parameters::fit.value(),
            min: 0,
            max: 1,
        }
        .check()?;
        let sizing = if fit == 1 {
            Sizing::Fit
        } else {
            Sizing::Fixed {
                pud_pages,
                pmd_pages,
            }
        };
        let mode = HostMode::current()?;
        if mode == HostMode::Protected {
            pr_err!("refusing to load: in protected mode (pKVM) EL2 owns guest stage-2 tables, not the host\n");
            return Err(EPERM);
        }

        let debugfs = Dir::new(c"nptpool");
        let stats = Arc::pin_init(Stats::new(&debugfs), GFP_KERNEL)?;
        let alloc_bench = KBox::pin_init(
            debugfs.read_callback_file(c"alloc_bench", AllocBench::new(), &bench::show),
            GFP_KERNEL,
        )?;
        let ctx = KBox::pin(
            Context {
                sizing,
                debugfs,
                stats,
            },
            GFP_KERNEL,
        )?;
        let ctx_ptr: *const Context = &*ctx;
        // SAFETY: `ctx` is pinned in the module struct, which drops `_registration` before
        // `_ctx`; a VM created meanwhile holds a module reference, so the module (and
        // `ctx`) outlives it.
        let registration = unsafe { Registration::new(ctx_ptr) }.inspect_err(|e| {
            pr_err!("cannot register with KVM: error {}\n", e.to_errno());
        })?;
        match sizing {
            Sizing::Fixed { .. } => pr_info!(
                "loaded: KVM host mode {}, {} KiB pages, pud_pages={} pmd_pages={}\n",
                mode.name(),
                ptalloc::PAGE_SIZE / 1024,
                pud_pages,
                pmd_pages
            ),
            Sizing::Fit => pr_info!(
                "loaded: KVM host mode {}, {} KiB pages, pools fitted to each VM's memslots\n",
                mode.name(),
                ptalloc::PAGE_SIZE / 1024
            ),
        }
        Ok(Self {
            _registration: registration,
            _alloc_bench: alloc_bench,
            _ctx: ctx,
        })
    }
}

impl Drop for NptPool {
    fn drop(&mut self) {
        pr_info!("unloaded\n");
    }
}
