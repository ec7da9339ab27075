# SPDX-License-Identifier: GPL-2.0
#
# nptpool entry points; `make help` lists them.  Everything is built out of tree: the
# kernel in $(NPTPOOL_CACHE) (shared between clones), the rest in ./build.
#
# Inside Kbuild (the kernel's make includes this directory for M=) only Kbuild is read.

SHELL := /bin/bash
.DEFAULT_GOAL := module
.DELETE_ON_ERROR:

export NPTPOOL_CACHE ?= $(HOME)/.cache/nptpool
export PATH := /usr/lib/llvm-19/bin:$(HOME)/.cargo/bin:$(PATH)

# BUILD and KCONFIG (one fragment or several, later ones adding) select the tree a run
# uses; check-debug points both elsewhere so the two kernels never share build products.
BUILD ?= $(CURDIR)/build
B := $(abspath $(BUILD))
KCONFIG ?= qemu-config/kernel.config
KMAKE = $(MAKE) -s -C "$$(cat $(B)/kdir)" ARCH=arm64 LLVM=1
MODMAKE = $(KMAKE) M=$(CURDIR) MO=$(B)/module CLIPPY=1

# CMD reaches the guest as typed: neither make nor the host shell expands its $ or quotes.
GUEST_CMD = '$(subst ','\'',$(value CMD))'

# `make guest` knobs, passed to qemu-config/run-qemu.sh through the environment.
export SMP MEM TIMEOUT KERNEL_ARGS GUEST_FILES NPTPOOL GIC VM PERF HUGEPAGES NUMA

.PHONY: help deps kernel module lint selftests initramfs vm perf guest run test-host fuzz check check-granules check-debug check-large-vms bench clean

help:
	@sed -n 's/^## //p' $(MAKEFILE_LIST)

## deps        install toolchains, QEMU and build dependencies (no-op when present)
deps:
	@scripts/deps.sh

## kernel      fetch, patch, configure and build the arm64 host kernel (cached)
kernel: deps
	@mkdir -p $(B)
	@scripts/kernel.sh $(KCONFIG) | tail -n 1 > $(B)/kdir.tmp && mv $(B)/kdir.tmp $(B)/kdir

## module      build nptpool.ko with the kernel's rustc, clippy on, warnings as errors
module: kernel
	@mkdir -p $(B)/module
	+@$(MODMAKE) modules
	@echo "module: $(B)/module/nptpool.ko"

## lint        rustfmt --check, and checkpatch.pl --strict on the C file and the patches
lint: module
	@scripts/lint.sh "$$(cat $(B)/kdir)"

## selftests   build upstream arm64 KVM selftests and ours, static arm64
selftests: kernel
	+@scripts/selftests.sh "$$(cat $(B)/kdir)" $(B)/selftests $(SELFTESTS_FROM)

## initramfs   pack busybox, nptpool.ko and the selftests into the guest's initramfs
initramfs: module selftests
	@qemu-config/initramfs.sh "$$(cat $(B)/kdir)" $(B)

## vm          Debian's arm64 QEMU, a guest kernel and its initramfs, for real VMs in the test host
vm: initramfs
	@qemu-config/vm.sh "$$(cat $(B)/kdir)" $(B)

## perf        Debian's arm64 perf with its libraries, for test host boots with PERF=1
perf: initramfs
	@qemu-config/perf.sh "$$(cat $(B)/kdir)" $(B)

## guest       boot the QEMU arm64 KVM host, load nptpool.ko, run CMD='...', exit with its status
guest: initramfs
	@qemu-config/run-qemu.sh "$$(cat $(B)/kdir)" $(B) $(GUEST_CMD)

## run         boot, load nptpool.ko, run a real guest under Debian's QEMU and show its pool;
##              DEMO=selftest: one KVM selftest VM instead, with its tables one by one
DEMO ?= vm
run: $(if $(filter selftest,$(DEMO)),initramfs,vm)
ifeq ($(DEMO),selftest)
	@qemu-config/run-qemu.sh "$$(cat $(B)/kdir)" $(B) "/selftests/run-demo.sh"
else
	@VM=1 qemu-config/run-qemu.sh "$$(cat $(B)/kdir)" $(B) "/selftests/run-vm-demo.sh"
endif

## test-host   host-side tests (no QEMU): the allocator core under cargo test, the TAP counter
test-host:
	@scripts/test-host.sh $(B)

## fuzz        random systems against PTAllocSpec for FUZZ_SECONDS (default 600); FUZZ_SEED replays
fuzz:
	@cd $(CURDIR) && CARGO_TARGET_DIR=$(B)/cargo FUZZ_SECONDS=$${FUZZ_SECONDS:-600} \
		cargo test --locked --offline -q -p ptalloc-spec --test refinement fuzz_refinement \
		-- --ignored --nocapture

# The 16K and 64K test hosts: kernel.config plus a page-size fragment, each built in
# $(B)/granule-G with the userspace selftests of the 4K build (they do not depend on it).
# make check boots both for a smoke, without LPA2 (scripts/check.sh says why);
# make check-granules runs the whole granule list on both, with LPA2.
GRANULES := 16k 64k
CHECK_GRANULES ?= $(GRANULES)
granule-initramfs-%: selftests
	+@$(MAKE) --no-print-directory initramfs BUILD=$(B)/granule-$* \
		KCONFIG="$(KCONFIG) qemu-config/granule-$*.config" SELFTESTS_FROM=$(B)/selftests

## check       deps, module + lint, host tests, guest selftests; ends with 'N passed, N failed, N skipped'
check: lint initramfs vm $(addprefix granule-initramfs-,$(CHECK_GRANULES))
	@CHECK_GRANULES="$(CHECK_GRANULES)" scripts/check.sh "$$(cat $(B)/kdir)" $(B)

## check-granules  the granule list (load, layout per IPA size, exhaustion, churn, KUnit,
##              upstream stage-2 tests) on a 16K and a 64K test host, LPA2 on (16K: timeouts x4)
check-granules: $(addprefix granule-initramfs-,$(GRANULES))
	@scripts/check.sh --granules "$(GRANULES)" "$$(cat $(B)/kdir)" $(B)

## check-large-vms  Debian's QEMU runs guests of 4 GiB writing all their memory page by
##              page at the default parameters, on a 6 GiB test host (selftests/vm-large.list)
check-large-vms: initramfs vm
	@scripts/check.sh --large-vms "$$(cat $(B)/kdir)" $(B)

## check-debug  make check on the debug kernel (KASAN, lockdep, kmemleak, fault injection);
##              any report in a guest's kernel log fails it, even when every test passed
check-debug:
	+@$(MAKE) --no-print-directory check BUILD=$(B)/debug CHECK_GRANULES= \
		KCONFIG="qemu-config/kernel.config qemu-config/debug.config"

## bench       stage-2 fault benchmarks, stock KVM vs nptpool in one boot per host mode
##              (VHE, nVHE, pKVM stock); results/summary.md and plots; BENCH_REPS=5
bench: vm
	@scripts/bench.sh "$$(cat $(B)/kdir)" $(B)

## clean       remove ./build (the kernel cache in $(NPTPOOL_CACHE) stays)
clean:
	rm -rf $(B)
