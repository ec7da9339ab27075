#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Host tests of tap_summary: a miscount would hide guest failures from `make check`."""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tap_summary  # noqa: E402


def summary(text):
    return tap_summary.count(text.splitlines()).line()


class TapSummaryTest(unittest.TestCase):
    def test_program_without_own_results_counts_once(self):
        self.assertEqual(summary('1..2\nok 1 a\nnot ok 2 b # exit status 1\n'),
                         '1 passed, 1 failed, 0 skipped')

    def test_nested_results_count_one_by_one(self):
        out = '1..1\n# TAP version 13\n# 1..3\n# ok 1 x\n# ok 2 y\n# ok 3 z # SKIP no\nok 1 prog\n'
        self.assertEqual(summary(out), '2 passed, 0 failed, 1 skipped')

    def test_program_failing_after_passing_subtests_adds_a_failure(self):
        out = '1..1\n# ok 1 x\n# ok 2 y\nnot ok 1 prog # TIMEOUT after 60s\n'
        self.assertEqual(summary(out), '2 passed, 1 failed, 0 skipped')

    def test_failing_subtest_is_not_counted_twice(self):
        out = '1..1\n# ok 1 x\n# not ok 2 y\nnot ok 1 prog # exit status 1\n'
        self.assertEqual(summary(out), '1 passed, 1 failed, 0 skipped')

    def test_unmet_plan_counts_missing_results_as_failed(self):
        self.assertEqual(summary('1..4\nok 1 a\n'), '1 passed, 3 failed, 0 skipped')

    def test_ktap_indented_results_and_skip_directive(self):
        out = 'KTAP version 1\n1..1\n    ok 1 t1\n    not ok 2 t2\nnot ok 1 suite\n'
        self.assertEqual(summary(out), '1 passed, 1 failed, 0 skipped')
        self.assertEqual(summary('1..1\nok 1 a # SKIP reason\n'), '0 passed, 0 failed, 1 skipped')

    def test_console_noise_is_ignored(self):
        out = '[    1.0] kvm [1]: Hyp mode initialized\n1..1\n# # a message\nok 1 a\nbook 1\n'
        self.assertEqual(summary(out), '1 passed, 0 failed, 0 skipped')


class TapResult(unittest.TextTestResult):
    """Reports each test as a TAP line, so `make check` counts host tests like the rest."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.n = 0

    def _tap(self, test, ok):
        self.n += 1
        print(f"{'ok' if ok else 'not ok'} {self.n} host/{test.id().split('.', 1)[1]}")

    def addSuccess(self, test):
        super().addSuccess(test)
        self._tap(test, True)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._tap(test, False)

    def addError(self, test, err):
        super().addError(test, err)
        self._tap(test, False)


if __name__ == '__main__':
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    print(f'1..{suite.countTestCases()}')
    result = unittest.TextTestRunner(resultclass=TapResult, stream=sys.stderr,
                                     verbosity=0).run(suite)
    sys.exit(0 if result.wasSuccessful() else 1)
