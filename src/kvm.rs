// SPDX-License-Identifier: GPL-2.0

//! The typed Rust side of the boundary with `nptpool_kvm.c` (see `nptpool_kvm.h`).

use kernel::prelude::*;

mod ffi {
    use kernel::ffi::c_int;

    extern "C" {
        pub(super) fn nptpool_kvm_host_mode() -> c_int;
    }
}

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
            1 => Ok(Self::Vhe),
            2 => Ok(Self::Nvhe),
            3 => Ok(Self::Protected),
            _ => Err(EINVAL),
        }
    }

    /// The name used in log lines and debugfs.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Vhe => "vhe",
            Self::Nvhe => "nvhe",
            Self::Protected => "protected",
        }
    }
}
