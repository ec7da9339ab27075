#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Host tests of bench_report: a wrong ratio or a lost sample would misreport make bench."""
import io
import os
import shutil
import sys
import tempfile
import unittest
from contextlib import redirect_stderr, redirect_stdout

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_report  # noqa: E402
from test_tap_summary import TapResult  # noqa: E402

HEADER = 'mode,side,rep,benchmark,config,metric,value,unit\n'


def samples(text):
    f = tempfile.NamedTemporaryFile('w', suffix='.csv', delete=False)
    f.write(HEADER + text)
    f.close()
    try:
        return bench_report.Summary(bench_report.read_samples(f.name))
    finally:
        os.unlink(f.name)


class BenchReportTest(unittest.TestCase):
    def test_ratio_is_nptpool_over_stock_of_medians_and_of_mins(self):
        s = samples(''.join(f'vhe,stock,{r},fault_latency,v1-2M,p50_ns,{v},ns\n'
                            for r, v in enumerate((100, 200, 300), 1)) +
                    ''.join(f'vhe,nptpool,{r},fault_latency,v1-2M,p50_ns,{v},ns\n'
                            for r, v in enumerate((50, 100, 900), 1)))
        st, r_med, r_min = s.stats('vhe', 'fault_latency', 'v1-2M', 'p50_ns')
        self.assertEqual(st['stock'], (100, 200, 300, 3))
        self.assertAlmostEqual(r_med, 0.5)
        self.assertAlmostEqual(r_min, 0.5)
        self.assertTrue(bench_report.spread_overlap(st))

    def test_paired_ratio_is_the_median_of_the_pairs_ratios(self):
        # v1: three pairs in CSV order, the machine slow in the second, the third an
        # outlier: ratios 1.1, 1.1, 2.0, median 1.1, where the repetition's ratio of
        # medians is 2.0; repetition 2 has one side only and counts for nothing.
        # v2: repetition 1's three pairs are 1.2 each; repetition 2 lost a run on each
        # side, in different pairs, so its values cannot pair (by index: 0.55 and 2.0):
        # its ratio of medians, 155/150, counts as one pair.  Median of 1.2, 1.2, 1.2,
        # 1.033: 1.2.
        rows = [('v1', 'stock', 1, 100), ('v1', 'nptpool', 1, 110), ('v1', 'nptpool', 1, 220),
                ('v1', 'stock', 1, 200), ('v1', 'stock', 1, 100), ('v1', 'nptpool', 1, 200),
                ('v1', 'stock', 2, 50),
                ('v2', 'stock', 1, 100), ('v2', 'nptpool', 1, 120), ('v2', 'nptpool', 1, 120),
                ('v2', 'stock', 1, 100), ('v2', 'stock', 1, 100), ('v2', 'nptpool', 1, 120),
                ('v2', 'stock', 2, 200), ('v2', 'nptpool', 2, 110), ('v2', 'stock', 2, 100),
                ('v2', 'nptpool', 2, 200)]
        s = samples(''.join(f'vhe,{side},{r},table_fault,{v}-512tables,p50_ns,{x},ns\n'
                            for v, side, r, x in rows))
        r_pair, n = s.paired('vhe', 'table_fault', 'v1-512tables', 'p50_ns')
        self.assertEqual(n, 3)
        self.assertAlmostEqual(r_pair, 1.1)
        r_pair, n = s.paired('vhe', 'table_fault', 'v2-512tables', 'p50_ns')
        self.assertEqual(n, 4)
        self.assertAlmostEqual(r_pair, 1.2)
        self.assertEqual(s.paired('vhe', 'table_fault', 'v4-512tables', 'p50_ns'), (None, 0))

    def test_a_missing_side_gives_no_ratio(self):
        s = samples('pkvm,stock,1,vm_create,v1-2M-default_pool,vm_create_us,10,us\n')
        _, r_med, r_min = s.stats('pkvm', 'vm_create', 'v1-2M-default_pool', 'vm_create_us')
        self.assertIsNone(r_med)
        self.assertIsNone(r_min)

    def test_malformed_lines_are_rejected_not_skipped(self):
        for bad in ('vhe,stock,1,b,c,m,1\n', 'vhe,both,1,b,c,m,1,ns\n', 'vhe,stock,1,b,c,m,x,ns\n',
                    'vhe,stock,1,b,c,m,nan,ns\n'):
            with self.assertRaises(ValueError, msg=bad):
                samples(bad)

    def test_configs_sort_by_backing_then_vcpus_then_size(self):
        configs = ['v2-2M-anonymous', 'v1-8M-hugetlb2M', 'v1-8M-anonymous', 'v1-2M-anonymous',
                   'v4-2M-anonymous']
        self.assertEqual(sorted(configs, key=bench_report.config_key),
                         ['v1-2M-anonymous', 'v1-8M-anonymous', 'v2-2M-anonymous',
                          'v4-2M-anonymous', 'v1-8M-hugetlb2M'])

    def test_per_fault_samples_are_kept_out_of_the_per_run_table(self):
        s = samples('vhe,stock,1,fault_latency,v1-2M,fault_ns,5,ns\n'
                    'vhe,stock,1,fault_latency,v1-2M,p50_ns,5,ns\n')
        self.assertEqual(s.keys(), [('fault_latency', 'v1-2M', 'p50_ns')])
        self.assertEqual(s.keys(raw=True), [('fault_latency', 'v1-2M', 'fault_ns')])

    def test_nearest_rank_percentile_matches_fault_latency_test(self):
        vals = list(range(1, 101))
        self.assertEqual(bench_report.percentile(vals, 50), 50)
        self.assertEqual(bench_report.percentile(vals, 99), 99)
        self.assertEqual(bench_report.percentile([7], 99), 7)

    def test_table_faults_are_the_first_page_of_each_2m_of_each_run(self):
        runs = [list(range(1024)), list(range(1000, 2024))]    # two 4 MiB runs, in order
        table, rest = bench_report.split_table_faults(runs[0] + runs[1], 'v1-4M')
        self.assertEqual(table, [0, 512, 1000, 1512])
        self.assertEqual(len(rest), 2044)
        self.assertIsNone(bench_report.split_table_faults(runs[0], 'v2-4M'))
        self.assertIsNone(bench_report.split_table_faults(runs[0][:-1], 'v1-4M'))

    def test_smoke_tap_names_what_is_missing(self):
        lines = []
        exp = bench_report.expected(['1M'], ['1'], 2)
        for bench, (configs, metrics) in exp.items():
            for c in configs:
                for m in metrics:
                    for side in bench_report.SIDES:
                        if (bench, side) != ('vm_create', 'nptpool'):
                            lines.append(f'vhe,{side},1,{bench},{c},{m},1,x\n')
        s = samples(''.join(lines))
        out = io.StringIO()
        with redirect_stdout(out):
            rc = bench_report.smoke_tap(s, ['1M'], ['1'], 2, runner_status=0)
        text = out.getvalue()
        self.assertEqual(rc, 1)
        self.assertIn('1..8', text)
        self.assertIn('ok 4 bench/table_fault', text)
        self.assertIn('not ok 5 bench/vm_create', text)
        self.assertIn('# missing: nptpool v1-1M-default_pool vm_create_us', text)
        self.assertIn('ok 6 bench/vm_first_run', text)
        self.assertIn('ok 7 bench/alloc_bench', text)
        self.assertIn('ok 8 bench/run-bench.sh', text)

    @unittest.skipUnless(shutil.which('gnuplot'), 'no gnuplot')
    def test_plots_without_fault_latency_draw_the_ratios_only(self):
        s = samples('vhe,stock,1,real_vm,thp_on-16M,write_rate,200,MiB/s\n'
                    'vhe,nptpool,1,real_vm,thp_on-16M,write_rate,220,MiB/s\n')
        with tempfile.TemporaryDirectory() as d, redirect_stderr(io.StringIO()):
            made = bench_report.run_gnuplot(d, bench_report.write_plot_data(s, d))
        self.assertEqual([os.path.basename(m) for m in made], ['ratios.png'])

    def test_smoke_tap_expects_the_real_vm_only_with_guest_sizes(self):
        self.assertNotIn('real_vm', bench_report.expected(['1M'], ['1'], 2))
        configs, metrics = bench_report.expected(['1M'], ['1'], 2, ['32M'])['real_vm']
        self.assertEqual(configs, ['thp_on-32M', 'thp_off-32M'])
        self.assertEqual(metrics, ['boot_to_init', 'write_rate'])
        self.assertIn('write_rate', bench_report.HIGHER_IS_BETTER)

    def test_summary_has_targets_and_the_pkvm_context_column(self):
        # Two pairs, 300/200 and 100/400: medians 200/300 (0.67), mins 100/200 (0.50),
        # pairs 1.50 and 0.25 (paired 0.875, shown 0.88), whose geomean over the one
        # config is the same.
        s = samples('vhe,stock,1,fault_latency,v1-2M,p99_ns,200,ns\n'
                    'vhe,nptpool,1,fault_latency,v1-2M,p99_ns,300,ns\n'
                    'vhe,nptpool,1,fault_latency,v1-2M,p99_ns,100,ns\n'
                    'vhe,stock,1,fault_latency,v1-2M,p99_ns,400,ns\n'
                    'pkvm,stock,1,fault_latency,v1-2M,p99_ns,400,ns\n')
        self.assertAlmostEqual(s.paired('vhe', 'fault_latency', 'v1-2M', 'p99_ns')[0], 0.875)
        with tempfile.TemporaryDirectory() as d:
            text = bench_report.write_summary(s, d, ['a note'])
        self.assertIn('| fault_latency p99_ns | vhe | 1 | 0.67 | 0.88 | 0.67 | none |', text)
        self.assertIn('pkvm stock median', text)
        self.assertIn('| v1-2M | p99_ns | ns | vhe | 200 | 300 | 100 | 200 | 0.67 | 0.50 | 0.88 | '
                      'overlap | 400 |', text)


if __name__ == '__main__':
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    print(f'1..{suite.countTestCases()}')
    result = unittest.TextTestRunner(resultclass=TapResult, stream=sys.stderr,
                                     verbosity=0).run(suite)
    sys.exit(0 if result.wasSuccessful() else 1)
