// SPDX-License-Identifier: GPL-2.0

//! nptpool: per-VM, physically contiguous stage-2 page-table pools for arm64 KVM.
//!
//! Every stage-2 table page of a VM is meant to come from that VM's own pool through the
//! bump allocator specified by SeKVM's `PTAllocSpec`, so that running out of table memory
//! halts that one VM and never the host.

mod kvm;

use kernel::prelude::*;

use kvm::HostMode;

module! {
    type: NptPool,
    name: "nptpool",
    authors: ["The nptpool developers"],
    description: "Per-VM contiguous stage-2 page-table pools for arm64 KVM",
    license: "GPL",
    params: {
        pud_pages: u32 {
            default: 32,
            description: "Pages in each VM's region for tables one level below the root (1..4096, default 32)",
        },
        pmd_pages: u32 {
            default: 2048,
            description: "Pages in each VM's region for all deeper tables (1..262144, default 2048 = 8 MiB)",
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
    fn check(&self) -> Result {
        if (self.min..=self.max).contains(&self.value) {
            return Ok(());
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

/// Region sizes, in pages, read once at load: 7.2's Rust parameters are read-only.
struct PoolGeometry {
    pud_pages: u32,
    pmd_pages: u32,
}

impl PoolGeometry {
    fn from_params() -> Result<Self> {
        let pud = Param {
            name: "pud_pages",
            value: *module_parameters::pud_pages.value(),
            min: 1,
            max: 4096,
        };
        let pmd = Param {
            name: "pmd_pages",
            value: *module_parameters::pmd_pages.value(),
            min: 1,
            max: 262144,
        };
        pud.check()?;
        pmd.check()?;
        Ok(Self {
            pud_pages: pud.value,
            pmd_pages: pmd.value,
        })
    }
}

struct NptPool {
    mode: HostMode,
}

impl kernel::Module for NptPool {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let geometry = PoolGeometry::from_params()?;
        let mode = HostMode::current()?;
        if mode == HostMode::Protected {
            pr_err!("refusing to load: in protected mode (pKVM) EL2 owns guest stage-2 tables, not the host\n");
            return Err(EPERM);
        }
        pr_info!(
            "loaded: KVM host mode {}, pud_pages={} pmd_pages={}\n",
            mode.name(),
            geometry.pud_pages,
            geometry.pmd_pages
        );
        Ok(Self { mode })
    }
}

impl Drop for NptPool {
    fn drop(&mut self) {
        pr_info!("unloaded (KVM host mode {})\n", self.mode.name());
    }
}
