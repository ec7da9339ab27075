// SPDX-License-Identifier: GPL-2.0
/*
 * nptpool's window on KVM arm64: the only file of the module that includes KVM headers.
 */

#include <linux/kvm_host.h>
#include <asm/virt.h>

#include "nptpool_kvm.h"

/*
 * The CPU capabilities behind these helpers are final once userspace runs, so the answer
 * cannot change while the module is loaded.
 */
int nptpool_kvm_host_mode(void)
{
	if (is_protected_kvm_enabled())
		return NPTPOOL_HOST_PROTECTED;
	if (has_vhe())
		return NPTPOOL_HOST_VHE;
	return NPTPOOL_HOST_NVHE;
}
