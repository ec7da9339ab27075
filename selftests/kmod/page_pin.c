// SPDX-License-Identifier: GPL-2.0
/*
 * page_pin: take a reference on one page, chosen by physical address, at the moment KVM
 * finds that page's table empty and is about to drop its last reference: the transient
 * reference of someone else (a speculative folio_try_get(), memory-failure handling)
 * landing between KVM's count check and its put.  A test module, for nptpool's selftests
 * only: a kretprobe on the stage-2 mm_ops' page_count callback (module parameter
 * 'symbol') takes the reference when the call for the armed page returns 1.
 *
 * debugfs page_pin/page:
 *   write "PHYS"  arm: the next page_count() of the page at PHYS (0x hex, 0 octal or
 *                 decimal) that returns 1 takes a reference on it; EBUSY when armed or
 *                 holding, EINVAL unless PHYS is a page of online memory
 *   write "0"     disarm, and drop the reference if one was taken
 *   read          "phys=0x... count=N buddy=0|1 held=0|1" for the last page armed, after
 *                 rcu_barrier(), so that frees queued through RCU before the read have run
 */
#include <linux/atomic.h>
#include <linux/debugfs.h>
#include <linux/fs.h>
#include <linux/kernel.h>
#include <linux/kprobes.h>
#include <linux/memory_hotplug.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/page-flags.h>
#include <linux/ptrace.h>
#include <linux/rcupdate.h>
#include <linux/uaccess.h>

static char *symbol = "kvm_s2_alloc_page_count";
module_param(symbol, charp, 0400);
MODULE_PARM_DESC(symbol, "The stage-2 mm_ops page_count callback to probe");

static DEFINE_MUTEX(page_pin_lock);	/* serialises the debugfs file */
static struct dentry *page_pin_dir;
static unsigned long page_pin_pfn;	/* the last page armed, 0 for none */
/* The armed page, read by the probe; NULL when disarmed. */
static struct page *page_pin_target;
/* 1 once the probe took its reference on the target. */
static atomic_t page_pin_taken;

static int page_count_entry(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	*(void **)ri->data = (void *)regs_get_kernel_argument(regs, 0);
	return 0;
}

/* In the caller's context (any, RCU callbacks included): no sleeping. */
static int page_count_return(struct kretprobe_instance *ri, struct pt_regs *regs)
{
	struct page *target = READ_ONCE(page_pin_target);
	void *addr = *(void **)ri->data;

	if (!target || (int)regs_return_value(regs) != 1 || !virt_addr_valid(addr) ||
	    virt_to_page(addr) != target)
		return 0;
	if (atomic_cmpxchg(&page_pin_taken, 0, 1) == 0 && !get_page_unless_zero(target))
		atomic_set(&page_pin_taken, 0);
	return 0;
}

static struct kretprobe page_pin_probe = {
	.entry_handler	= page_count_entry,
	.handler	= page_count_return,
	.data_size	= sizeof(void *),
	.maxactive	= 64,
};

static void page_pin_disarm(void)
{
	struct page *target = page_pin_target;

	WRITE_ONCE(page_pin_target, NULL);
	/* No probe handler still looks at the target after this. */
	synchronize_rcu();
	if (target && atomic_xchg(&page_pin_taken, 0))
		put_page(target);
}

static ssize_t page_pin_write(struct file *file, const char __user *ubuf, size_t len,
			      loff_t *ppos)
{
	struct page *page;
	u64 phys;
	int err;

	err = kstrtou64_from_user(ubuf, len, 0, &phys);
	if (err)
		return err;

	mutex_lock(&page_pin_lock);
	if (!phys) {
		page_pin_disarm();
		goto out;
	}
	if (page_pin_target) {
		err = -EBUSY;
		goto out;
	}
	page = PAGE_ALIGNED(phys) ? pfn_to_online_page(PHYS_PFN(phys)) : NULL;
	if (!page) {
		err = -EINVAL;
		goto out;
	}
	page_pin_pfn = PHYS_PFN(phys);
	atomic_set(&page_pin_taken, 0);
	WRITE_ONCE(page_pin_target, page);
out:
	mutex_unlock(&page_pin_lock);
	return err ? err : len;
}

static ssize_t page_pin_read(struct file *file, char __user *ubuf, size_t len, loff_t *ppos)
{
	struct page *page;
	phys_addr_t phys;
	char buf[96];
	int n;

	rcu_barrier();
	mutex_lock(&page_pin_lock);
	page = page_pin_pfn ? pfn_to_online_page(page_pin_pfn) : NULL;
	phys = PFN_PHYS(page_pin_pfn);
	if (page)
		n = scnprintf(buf, sizeof(buf), "phys=%pa count=%d buddy=%d held=%d\n", &phys,
			      page_ref_count(page), PageBuddy(page),
			      atomic_read(&page_pin_taken));
	else
		n = scnprintf(buf, sizeof(buf), "none\n");
	mutex_unlock(&page_pin_lock);
	return simple_read_from_buffer(ubuf, len, ppos, buf, n);
}

static const struct file_operations page_pin_fops = {
	.owner = THIS_MODULE,
	.read = page_pin_read,
	.write = page_pin_write,
	.llseek = default_llseek,
};

static int __init page_pin_init(void)
{
	int err;

	page_pin_probe.kp.symbol_name = symbol;
	err = register_kretprobe(&page_pin_probe);
	if (err) {
		pr_err("page_pin: cannot probe %s: %d\n", symbol, err);
		return err;
	}
	page_pin_dir = debugfs_create_dir("page_pin", NULL);
	debugfs_create_file("page", 0600, page_pin_dir, NULL, &page_pin_fops);
	return 0;
}

static void __exit page_pin_exit(void)
{
	debugfs_remove(page_pin_dir);
	unregister_kretprobe(&page_pin_probe);
	page_pin_disarm();
}

module_init(page_pin_init);
module_exit(page_pin_exit);
MODULE_DESCRIPTION("Pins a stage-2 table page as KVM drops it, for nptpool's selftests");
MODULE_LICENSE("GPL");
