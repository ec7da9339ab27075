#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""make bench's report: samples.csv in, summary.md and the plots' data out.

usage: bench_report.py [--note TEXT]... [--plots] SAMPLES_CSV OUT_DIR
       bench_report.py --smoke-tap --sizes 'SIZES' --vcpus 'VCPUS' --cpus N
                       [--runner-status N] [--report-dir DIR] SAMPLES_CSV

SAMPLES_CSV has the columns selftests/run-bench.sh writes:
    mode,side,rep,benchmark,config,metric,value,unit
The report gives, per metric, the min and median of each side and the ratio
nptpool/stock of the medians and of the mins; modes vhe and nvhe side by side, stock
KVM in protected mode (pkvm) as a context column.  --plots also runs gnuplot on
scripts/bench_*.gp.  --smoke-tap prints TAP: one test per benchmark, passing when
every expected metric of every configuration has a value on both sides (never a
timing judgement), for make check; with --runner-status, one more for run-bench.sh's
exit status, and with --report-dir one for the report and plots of those samples.
"""
import argparse
import collections
import csv
import math
import os
import shutil
import statistics
import subprocess
import sys

SIDES = ('stock', 'nptpool')
PAIRED_MODES = ('vhe', 'nvhe')    # modes where nptpool can load
CONTEXT_MODE = 'pkvm'             # stock only: the pool of pKVM lives at EL2
# Per-fault samples feed the CDF and the pooled table, not the per-run table.
RAW_METRICS = {'fault_ns'}
HIGHER_IS_BETTER = {'per_vcpu_rate', 'overall_rate', 'write_rate'}
TARGETS = (('table_fault', 'p50_ns'), ('fault_latency', 'p50_ns'), ('fault_latency', 'p99_ns'),
           ('kvm_page_table_test', 'KVM_UPDATE_MAPPINGS'))
BENCH_ORDER = ('kvm_page_table_test', 'demand_paging_test', 'fault_latency', 'table_fault',
               'vm_create', 'vm_first_run', 'alloc_bench', 'real_vm')
BENCH_NOTES = {
    'kvm_page_table_test': 'whole-stage times of the upstream test (-m 6: 40-bit IPA, 4K pages); '
                           'config vCPUS-SIZE-BACKING, SIZE touched by every vCPU; the hugetlb '
                           'runs load nptpool with a larger pmd region (see README, Benchmark)',
    'demand_paging_test': 'upstream test, SIZE split over the vCPUs; rates: higher is better',
    'fault_latency': 'our fault_latency_test: percentiles of one run\'s per-fault latencies as '
                     'the guest timed them (CNTVCT_EL0); SIZE split over the vCPUs',
    'table_fault': 'fault_latency_test -s 2M: one page written per 2 MiB, so that every fault '
                   'allocates the last-level table of its 2 MiB (stock: from the vCPU memcache; '
                   'nptpool: from the bump allocator); config vCPUS-Ntables, N faults per run',
    'vm_create': 'KVM_CREATE_VM + memslot + vCPUs, and their teardown; with nptpool that is '
                 'reserving + zeroing the pool and releasing it (default pool: 4 MiB, large: '
                 'run-bench.sh -L)',
    'vm_first_run': 'vm_create_test -r at the default parameters: as vm_create, and vCPU 0 runs '
                    'once in between, its first stage-2 fault and an MMIO exit (stock: the '
                    'vCPU memcache\'s first top-up; nptpool: the fitted pool\'s reservation); '
                    'destroy then tears those tables down; v1-SIZE-written: a SIZE memslot '
                    'whose guest writes one page per 2 MiB in that run (a table each)',
    'alloc_bench': 'in-kernel, nptpool debugfs alloc_bench: "nptpool" is one table from the bump '
                   'allocator under its spinlock, "stock" one zeroed page from the page '
                   'allocator as KVM\'s memcache gets it; Ncpus: every CPU at once',
    'real_vm': 'Debian\'s QEMU booting the Linux guest of make vm (selftests/real_vm.sh), config '
               'thp_on|thp_off-SIZE: the test host\'s THP, SIZE written once by the guest; '
               'boot_to_init is the guest\'s uptime when its init starts, write_rate its first '
               'write of SIZE (every page a stage-2 fault; higher is better)',
}


def expected(sizes, vcpus, cpus, guest_sizes=(), table_faults=512, written_slots=('32G',)):
    """{benchmark: ([configs], [metrics])} that a run with these knobs must produce;
    real_vm only when it ran with guest sizes."""
    plain = [f'v{v}-{s}' for v in vcpus for s in sizes]
    guest = {}
    if guest_sizes:
        guest = {'real_vm': ([f'thp_{t}-{s}' for t in ('on', 'off') for s in guest_sizes],
                             ['boot_to_init', 'write_rate'])}
    return {
        'kvm_page_table_test': ([f'{c}-{b}' for b in ('anonymous', 'hugetlb2M') for c in plain],
                                ['KVM_CREATE_MAPPINGS', 'KVM_UPDATE_MAPPINGS',
                                 'KVM_ADJUST_MAPPINGS']),
        'demand_paging_test': (plain, ['per_vcpu_rate', 'overall_rate']),
        'fault_latency': (plain, ['p50_ns', 'p90_ns', 'p99_ns', 'max_ns', 'fault_ns']),
        'table_fault': ([f'v{v}-{table_faults}tables' for v in vcpus],
                        ['p50_ns', 'p90_ns', 'p99_ns', 'max_ns']),
        'vm_create': ([f'{c}-{p}_pool' for p in ('default', 'large') for c in plain],
                      ['vm_create_us', 'vm_destroy_us']),
        'vm_first_run': (plain + [f'v1-{s}-written' for s in written_slots],
                         ['vm_create_us', 'vm_first_run_us', 'vm_destroy_us']),
        'alloc_bench': (['1cpu', f'{cpus}cpus'], ['alloc_ns']),
    } | guest


def read_samples(path):
    """[(mode, side, rep, benchmark, config, metric, value, unit)], bad lines rejected."""
    rows = []
    with open(path, newline='', encoding='utf-8') as f:
        for n, rec in enumerate(csv.reader(f), 1):
            if n == 1 and rec and rec[0] == 'mode':
                continue
            if len(rec) != 8:
                raise ValueError(f'{path}:{n}: {len(rec)} fields, want 8: {rec}')
            mode, side, rep, bench, config, metric, value, unit = rec
            if side not in SIDES:
                raise ValueError(f'{path}:{n}: side {side!r}')
            v = float(value)
            if not math.isfinite(v):
                raise ValueError(f'{path}:{n}: value {value!r}')
            rows.append((mode, side, int(rep), bench, config, metric, v, unit))
    return rows


def config_key(config):
    """Sort v2-16M-x after v1-4M-x: by vCPUs, then size in bytes, then the rest."""
    parts = config.split('-')
    key = []
    for p in parts:
        if p.startswith('v') and p[1:].isdigit():
            key.append((0, int(p[1:]), ''))
        elif p[:-1].isdigit() and p[-1] in 'KMG':
            key.append((0, int(p[:-1]) << {'K': 10, 'M': 20, 'G': 30}[p[-1]], ''))
        elif p.endswith('cpus') and p[:-4].isdigit():
            key.append((0, int(p[:-4]), ''))
        elif p.endswith('cpu') and p[:-3].isdigit():
            key.append((0, int(p[:-3]), ''))
        else:
            key.append((1, 0, p))
    # Backing or pool first, so the table groups by it.
    return (key[-1][2] if key and key[-1][0] else '', key)


def bench_key(bench):
    return BENCH_ORDER.index(bench) if bench in BENCH_ORDER else len(BENCH_ORDER)


def fmt(v):
    if v is None:
        return '–'
    if v == 0:
        return '0'
    a = abs(v)
    if a >= 100:
        return f'{v:,.0f}'
    if a >= 10:
        return f'{v:.1f}'
    return f'{v:.3g}'


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def fmt_ratio(r):
    return '–' if r is None else f'{r:.2f}'


def percentile(sorted_vals, pct):
    """Nearest rank, as fault_latency_test computes it."""
    rank = max(1, math.ceil(len(sorted_vals) * pct / 100))
    return sorted_vals[rank - 1]


class Summary:
    def __init__(self, rows):
        self.groups = collections.defaultdict(list)   # (mode, side, bench, config, metric)
        self.by_rep = collections.defaultdict(list)   # the same and the repetition
        self.units = {}
        self.modes = set()
        self.reps = set()
        for mode, side, rep, bench, config, metric, v, unit in rows:
            self.groups[(mode, side, bench, config, metric)].append(v)
            if metric not in RAW_METRICS:
                self.by_rep[(mode, side, bench, config, metric, rep)].append(v)
            self.units[(bench, metric)] = unit
            self.modes.add(mode)
            self.reps.add(rep)

    def values(self, mode, side, bench, config, metric):
        return self.groups.get((mode, side, bench, config, metric), [])

    def keys(self, raw=False):
        """Sorted (bench, config, metric), raw per-fault metrics only if raw."""
        seen = {(b, c, m) for (_, _, b, c, m) in self.groups if (m in RAW_METRICS) == raw}
        metric_order = {}
        for (_, _, b, _, m) in self.groups:
            metric_order.setdefault((b, m), len(metric_order))
        return sorted(seen, key=lambda k: (bench_key(k[0]), config_key(k[1]),
                                           metric_order[(k[0], k[2])]))

    def stats(self, mode, bench, config, metric):
        """Per side (min, median, max, n) and the two ratios, for one row."""
        out = {}
        for side in SIDES:
            vals = self.values(mode, side, bench, config, metric)
            out[side] = ((min(vals), statistics.median(vals), max(vals), len(vals))
                         if vals else (None, None, None, 0))
        s, p = out['stock'], out['nptpool']
        return out, ratio(p[1], s[1]), ratio(p[0], s[0])

    def paired(self, mode, bench, config, metric):
        """The median of the pairs' ratios, and how many pairs: run-bench.sh runs each
        pair's two sides back to back, so in a repetition where every pair's runs gave
        a value, the i-th value of a side pairs with the other side's i-th, seconds
        apart, and a machine whose speed changes between pairs moves both sides of a
        pair alike.  A repetition with a failed run, on either side, cannot tell which
        values pair: it counts as one pair, its ratio of medians."""
        per_rep = {rep: {side: self.by_rep.get((mode, side, bench, config, metric, rep), [])
                         for side in SIDES} for rep in self.reps}
        full = max((len(v) for sides in per_rep.values() for v in sides.values()), default=0)
        rs = []
        for rep in sorted(per_rep):
            s, p = per_rep[rep]['stock'], per_rep[rep]['nptpool']
            if not s or not p:
                continue
            if len(s) == len(p) == full:
                rs += [r for r in map(ratio, p, s) if r is not None]
            else:
                r = ratio(statistics.median(p), statistics.median(s))
                if r is not None:
                    rs.append(r)
        return (statistics.median(rs) if rs else None), len(rs)


def spread_overlap(st):
    s, p = st['stock'], st['nptpool']
    if s[3] == 0 or p[3] == 0:
        return None
    return not (p[2] < s[0] or s[2] < p[0])


def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


def write_summary(summ, out_dir, notes):
    modes = [m for m in PAIRED_MODES if m in summ.modes]
    ctx = CONTEXT_MODE in summ.modes
    lines = ['# make bench: stage-2 faults, stock KVM against nptpool', '']
    lines += [f'- {n}' for n in notes]
    lines += [
        f'- repetitions: {len(summ.reps)}; host modes: {", ".join(sorted(summ.modes))}; '
        'every number is from one QEMU boot per mode, stock and nptpool runs interleaved',
        '- **ratio** = nptpool / stock, of the medians (and of the minimums); '
        'below 1.00 nptpool is faster, except for rates (marked ↑), where above 1.00 is faster',
        '- **paired**: the median of the ratios of the pairs of runs, each pair\'s two sides '
        'run back to back, seconds apart: steadier than the ratio of medians when the '
        'machine\'s speed changes from one pair to the next',
        '- **spread**: "overlap" when the two sides\' [min, max] ranges overlap, i.e. the '
        'difference is within run-to-run noise; "apart" when they do not',
        '- under TCG emulation absolute times mean little; compare sides within a mode',
        '']

    # The targets first: where we stand.
    lines += ['## Targets: nptpool <= stock (ratio of medians <= 1.00)', '',
              '| metric | mode | configs | geomean ratio | geomean paired | max ratio | '
              'configs above 1.00 |',
              '|---|---|---|---|---|---|---|']
    for bench, metric in TARGETS:
        for mode in modes:
            rs = []
            prs = []
            above = []
            for (b, c, m) in summ.keys():
                if (b, m) != (bench, metric):
                    continue
                _, r, _ = summ.stats(mode, b, c, m)
                pr, _ = summ.paired(mode, b, c, m)
                if pr is not None:
                    prs.append(pr)
                if r is not None:
                    rs.append(r)
                    if r > 1.0:
                        above.append(f'{c} ({r:.2f})')
            lines.append(f'| {bench} {metric} | {mode} | {len(rs)} | {fmt_ratio(geomean(rs))} | '
                         f'{fmt_ratio(geomean(prs))} | {fmt_ratio(max(rs) if rs else None)} | '
                         f'{", ".join(above) if above else "none"} |')
    lines.append('')

    head = ('| config | metric | unit | mode | stock min | stock median | nptpool min | '
            'nptpool median | ratio | ratio of mins | paired | spread |')
    sep = '|---|---|---|---|---|---|---|---|---|---|---|---|'
    if ctx:
        head += ' pkvm stock median |'
        sep += '---|'
    current = None
    for (bench, config, metric) in summ.keys():
        if bench != current:
            current = bench
            if lines[-1]:
                lines.append('')
            lines += [f'## {bench}', '']
            if bench in BENCH_NOTES:
                lines += [BENCH_NOTES[bench], '']
            lines += [head, sep]
        unit = summ.units[(bench, metric)]
        name = metric + (' ↑' if metric in HIGHER_IS_BETTER else '')
        if ctx:
            vals = summ.values(CONTEXT_MODE, 'stock', bench, config, metric)
            pkvm = f' {fmt(statistics.median(vals) if vals else None)} |'
        for mode in modes or [CONTEXT_MODE]:
            st, r_med, r_min = summ.stats(mode, bench, config, metric)
            r_pair, _ = summ.paired(mode, bench, config, metric)
            ov = spread_overlap(st)
            row = (f'| {config} | {name} | {unit} | {mode} | {fmt(st["stock"][0])} | '
                   f'{fmt(st["stock"][1])} | {fmt(st["nptpool"][0])} | {fmt(st["nptpool"][1])} | '
                   f'{fmt_ratio(r_med)} | {fmt_ratio(r_min)} | {fmt_ratio(r_pair)} | '
                   f'{"–" if ov is None else ("overlap" if ov else "apart")} |')
            lines.append(row + (pkvm if ctx else ''))
    lines.append('')

    # Every fault of every run pooled: a steadier estimate than medians of percentiles.
    raw = [k for k in summ.keys(raw=True)]
    if raw:
        lines += ['## fault_latency, all faults pooled', '',
                  'Every timed fault of all repetitions together, per side (ns); ratio '
                  'nptpool/stock.', '',
                  '| config | mode | stock faults | stock p50 | stock p90 | stock p99 | '
                  'nptpool faults | nptpool p50 | nptpool p90 | nptpool p99 | '
                  'ratio p50 | ratio p90 | ratio p99 |',
                  '|---|---|---|---|---|---|---|---|---|---|---|---|---|']
        for (bench, config, metric) in raw:
            for mode in sorted(summ.modes, key=lambda m: (m == CONTEXT_MODE, m)):
                pct = {}
                for side in SIDES:
                    vals = sorted(summ.values(mode, side, bench, config, metric))
                    pct[side] = ([len(vals)] + [percentile(vals, p) for p in (50, 90, 99)]
                                 if vals else [0, None, None, None])
                if not pct['stock'][0] and not pct['nptpool'][0]:
                    continue
                row = f'| {config} | {mode} |'
                for side in SIDES:
                    row += ' ' + ' | '.join(fmt(x) for x in pct[side]) + ' |'
                for i in (1, 2, 3):
                    row += f' {fmt_ratio(ratio(pct["nptpool"][i], pct["stock"][i]))} |'
                lines.append(row)
        lines.append('')

    lines += table_allocating_faults(summ)

    text = '\n'.join(lines)
    with open(os.path.join(out_dir, 'summary.md'), 'w', encoding='utf-8') as f:
        f.write(text)
    return text


def split_table_faults(vals, config):
    """A 1-vCPU run's faults (in guest order, runs concatenated) split into those that
    needed a new last-level stage-2 table, the first 4 KiB page of each 2 MiB, and the
    rest; None when the config is not 1-vCPU or the runs do not add up."""
    parts = config.split('-')
    if len(parts) != 2 or parts[0] != 'v1' or not parts[1][:-1].isdigit() or parts[1][-1] not in 'KMG':
        return None
    npages = (int(parts[1][:-1]) << {'K': 10, 'M': 20, 'G': 30}[parts[1][-1]]) // 4096
    if not npages or not vals or len(vals) % npages:
        return None
    table = [v for i, v in enumerate(vals) if (i % npages) % 512 == 0]
    rest = [v for i, v in enumerate(vals) if (i % npages) % 512]
    return table, rest


def table_allocating_faults(summ):
    """The faults where the allocator runs at all: 1 in 512 with 4 KiB pages."""
    rows = []
    for (bench, config, metric) in summ.keys(raw=True):
        for mode in PAIRED_MODES:
            split = {side: split_table_faults(summ.values(mode, side, bench, config, metric),
                                              config) for side in SIDES}
            if not all(split.values()):
                continue
            cells = []
            for i in (0, 1):
                med = {side: statistics.median(split[side][i]) for side in SIDES}
                cells += [f'{len(split["stock"][i])}', fmt(med['stock']), fmt(med['nptpool']),
                          fmt_ratio(ratio(med['nptpool'], med['stock']))]
            rows.append(f'| {config} | {mode} | ' + ' | '.join(cells) + ' |')
    if not rows:
        return []
    return ['## fault_latency: the faults that allocate a table', '',
            'A stage-2 table is allocated only by the first fault in each 2 MiB of guest '
            'memory (a last-level table; the first of the slot also takes one a level up): '
            'with 4 KiB pages 1 fault in 512, so the allocator cannot move the p50 or the '
            'p99. 1-vCPU runs, where that fault is known (the first page of each 2 MiB); '
            'medians in ns, faults per side.', '',
            '| config | mode | table faults | stock median | nptpool median | ratio | '
            'other faults | stock median | nptpool median | ratio |',
            '|---|---|---|---|---|---|---|---|---|---|'] + rows + ['']


def write_plot_data(summ, out_dir):
    """Data for scripts/bench_cdf.gp and scripts/bench_ratios.gp, in OUT_DIR/plotdata."""
    pd = os.path.join(out_dir, 'plotdata')
    os.makedirs(pd, exist_ok=True)

    # CDF: one panel per fault_latency config, one line per mode and side.
    configs = sorted({c for (b, c, m) in summ.keys(raw=True) if b == 'fault_latency'},
                     key=config_key)
    lines_spec = []
    with open(os.path.join(pd, 'cdf.dat'), 'w', encoding='utf-8') as f:
        block = 0
        for panel, config in enumerate(configs, 1):
            for mode in ('vhe', 'nvhe', 'pkvm'):
                for side in SIDES:
                    vals = sorted(summ.values(mode, side, 'fault_latency', config, 'fault_ns'))
                    if not vals:
                        continue
                    n = len(vals)
                    # At most ~400 points a line: the quantiles, plus the tail exactly.
                    step = max(1, n // 400)
                    idx = sorted(set(list(range(0, n, step)) + list(range(max(0, n - 50), n))))
                    f.write(f'# {config} {mode} {side}\n')
                    for i in idx:
                        f.write(f'{vals[i] / 1000:.3f} {(i + 1) / n:.5f}\n')
                    f.write('\n\n')
                    lines_spec.append((panel, block, mode, side))
                    block += 1
    with open(os.path.join(pd, 'cdf_vars.gp'), 'w', encoding='utf-8') as f:
        f.write(f'npanels = {len(configs)}\n')
        f.write(f'panel_titles = "{" ".join(configs)}"\n')
        f.write(f'nlines = {len(lines_spec)}\n')
        for panel in range(1, len(configs) + 1):
            blocks = ' '.join(str(b) for p, b, _, _ in lines_spec if p == panel)
            f.write(f'panel_blocks_{panel} = "{blocks}"\n')
        f.write('line_mode = "' + ' '.join(m for _, _, m, _ in lines_spec) + '"\n')
        f.write('line_side = "' + ' '.join(s for _, _, _, s in lines_spec) + '"\n')

    # Ratios: one row per (benchmark, config, metric), a column pair per paired mode.
    rows = []
    for (bench, config, metric) in summ.keys():
        cells = []
        for mode in PAIRED_MODES:
            _, r_med, r_min = summ.stats(mode, bench, config, metric)
            cells += [r_med, r_min]
        if all(c is None for c in cells):
            continue
        label = f'{bench} {config} {metric}' + (' (↑)' if metric in HIGHER_IS_BETTER else '')
        rows.append((label, cells))
    with open(os.path.join(pd, 'ratios.dat'), 'w', encoding='utf-8') as f:
        f.write('# label\tvhe_median\tvhe_min\tnvhe_median\tnvhe_min\n')
        for label, cells in reversed(rows):     # first row at the top of the plot
            f.write('"' + label + '"\t' +
                    '\t'.join('NaN' if c is None else f'{c:.4f}' for c in cells) + '\n')
    with open(os.path.join(pd, 'ratios_vars.gp'), 'w', encoding='utf-8') as f:
        f.write(f'nrows = {len(rows)}\n')
    return pd


def run_gnuplot(out_dir, pd):
    here = os.path.dirname(os.path.abspath(__file__))
    gp = shutil.which('gnuplot')
    if not gp:
        print('bench_report: no gnuplot, plots skipped (Debian: apt-get install gnuplot-nox)',
              file=sys.stderr)
        return []
    made = []
    for script, png in (('bench_cdf.gp', 'latency_cdf.png'), ('bench_ratios.gp', 'ratios.png')):
        out = os.path.join(out_dir, png)
        # A run without fault_latency (run-bench.sh -B) has no latencies to plot.
        if png == 'latency_cdf.png' and os.path.getsize(os.path.join(pd, 'cdf.dat')) == 0:
            print('bench_report: no fault_latency samples, latency_cdf.png not drawn',
                  file=sys.stderr)
            continue
        r = subprocess.run([gp, '-e', f'datadir="{pd}"; outfile="{out}"',
                            os.path.join(here, script)], check=False)
        if r.returncode:
            raise RuntimeError(f'gnuplot {script} failed (exit {r.returncode})')
        made.append(out)
    return made


def smoke_tap(summ, sizes, vcpus, cpus, runner_status=None, report_dir=None, guest_sizes=(),
              table_faults=512):
    """TAP for make check: every expected metric present on both sides, per benchmark."""
    exp = expected(sizes, vcpus, cpus, guest_sizes, table_faults)
    mode = 'vhe'
    print(f'1..{len(exp) + (runner_status is not None) + (report_dir is not None)}')
    failed = 0
    n = 0
    for n, (bench, (configs, metrics)) in enumerate(exp.items(), 1):
        missing = [f'{side} {c} {m}' for c in configs for m in metrics for side in SIDES
                   if not summ.values(mode, side, bench, c, m)]
        total = len(configs) * len(metrics) * len(SIDES)
        if missing:
            failed += 1
            print(f'not ok {n} bench/{bench}: {len(missing)} of {total} metrics missing')
            for m in missing[:20]:
                print(f'# missing: {m}')
        else:
            print(f'ok {n} bench/{bench}: all {total} metrics have values on both sides')
    if runner_status is not None:
        n += 1
        ok = runner_status == 0
        failed += not ok
        print(f'{"ok" if ok else "not ok"} {n} bench/run-bench.sh exits 0, no failed run '
              f'(exit {runner_status})')
    if report_dir is not None:
        n += 1
        try:
            os.makedirs(report_dir, exist_ok=True)
            write_summary(summ, report_dir, ['make check smoke run: timings mean nothing'])
            made = run_gnuplot(report_dir, write_plot_data(summ, report_dir))
            files = [os.path.join(report_dir, 'summary.md')] + made
            ok = len(made) == 2 and all(os.path.getsize(f) > 0 for f in files)
            why = ', '.join(os.path.basename(f) for f in files)
        except (OSError, RuntimeError, ValueError) as e:
            ok, why = False, str(e)
        failed += not ok
        print(f'{"ok" if ok else "not ok"} {n} bench/report: summary and plots written ({why})')
    return 1 if failed else 0


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('samples')
    ap.add_argument('out_dir', nargs='?')
    ap.add_argument('--note', action='append', default=[])
    ap.add_argument('--plots', action='store_true')
    ap.add_argument('--smoke-tap', action='store_true')
    ap.add_argument('--sizes', default='2M 8M')
    ap.add_argument('--vcpus', default='1 2 4')
    ap.add_argument('--cpus', type=int, default=4)
    ap.add_argument('--guest-sizes', default='', help="real_vm's sizes, e.g. '64M'")
    ap.add_argument('--table-faults', type=int, default=512)
    ap.add_argument('--runner-status', type=int)
    ap.add_argument('--report-dir')
    args = ap.parse_args(argv[1:])

    try:
        summ = Summary(read_samples(args.samples))
    except (OSError, ValueError) as e:
        print(f'bench_report: {e}', file=sys.stderr)
        if args.smoke_tap:
            print('1..1\nnot ok 1 bench/samples: unreadable')
        return 1
    if args.smoke_tap:
        return smoke_tap(summ, args.sizes.split(), args.vcpus.split(), args.cpus,
                         args.runner_status, args.report_dir, args.guest_sizes.split(),
                         args.table_faults)
    if not args.out_dir:
        ap.error('OUT_DIR is required')
    os.makedirs(args.out_dir, exist_ok=True)
    write_summary(summ, args.out_dir, args.note)
    pd = write_plot_data(summ, args.out_dir)
    if args.plots:
        try:
            for png in run_gnuplot(args.out_dir, pd):
                print(f'bench_report: {png}')
        except RuntimeError as e:
            print(f'bench_report: {e}', file=sys.stderr)
            return 1
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
