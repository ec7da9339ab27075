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
            default: 0,
            description: "Give every VM's pool this many kernel pages for the tables one level below the root, when that is not the last level, instead of fitting it (up to 16 MiB of pool). 0: not given (with fit=0 or pmd_pages: 32 with 4K pages, 4 with 16K or 64K)",
        },
        fit: u32 {
            default: 1,
            description: "1 (default): size each VM's pool as the VM first runs, from the memslots its VMM declared (the tables they can need, plus an eighth), and refuse with ENOSPC a memslot added later that would not fit. 0: give every pool fixed regions (pud_pages, pmd_pages, or their built-in sizes). Giving pud_pages or pmd_pages implies 0",
        },
        pmd_pages: u32 {
            default: 0,
            description: "Give every VM's pool this many kernel pages for the last-level tables and any between them and the pud region's, instead of fitting it (up to 1 GiB of pool). 0: not given (with fit=0 or pud_pages: 960 with 4K pages, 60 with 16K, 16 with 64K, i.e. 1920 MiB of guest memory mapped page by page)",
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

/// A region-size parameter's value, or `default` when it was not given (0).
fn given_or(value: u32, default: u32) -> u32 {
    if value == 0 {
        default
    } else {
        value
    }
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
            min: 0,
            max: ptalloc::MAX_PUD_PAGES,
        }
        .check()?;
        let pmd_pages = Param {
            name: "pmd_pages",
            value: *module_parameters::pmd_pages.value(),
            min: 0,
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
        // A region size given is an override: every pool gets fixed regions, the one not
        // given at its built-in size.  Nothing given and fit=1 (the default): fitted pools.
        let sizing = if fit == 1 && pud_pages == 0 && pmd_pages == 0 {
            Sizing::Fit
        } else {
            Sizing::Fixed {
                pud_pages: given_or(pud_pages, ptalloc::DEFAULT_PUD_PAGES),
                pmd_pages: given_or(pmd_pages, ptalloc::DEFAULT_PMD_PAGES),
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
            Sizing::Fixed {
                pud_pages,
                pmd_pages,
            } => pr_info!(
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
