#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Count the real test cases in TAP/KTAP output and print 'N passed, N failed, N skipped'.

A program's own results (nested, as '# ok 1 ...' lines, or KTAP's indented 'ok 1 ...')
count one by one; a program that printed none counts once, by its top-level result; a
program that failed beyond its nested results (crashed, timed out) adds one failure; a
plan ('1..N') that was not met counts each missing result as failed.
"""
import re
import sys

RESULT = re.compile(r'^(?P<not>not )?ok \d+(?P<desc>[^#]*)(?:#\s*(?P<dir>\w+))?')
NESTED = re.compile(r'^(?:#\s*|\s+)(?P<rest>(?:not )?ok \d+.*)$')
PLAN = re.compile(r'^1\.\.(\d+)')


class Counts:
    def __init__(self):
        self.passed = self.failed = self.skipped = 0

    def add(self, m):
        directive = (m.group('dir') or '').upper()
        if directive == 'SKIP':
            self.skipped += 1
        elif m.group('not') and directive != 'TODO':
            self.failed += 1
        else:
            self.passed += 1

    def line(self):
        return f'{self.passed} passed, {self.failed} failed, {self.skipped} skipped'


def count(lines, counts=None):
    """Add the results of one TAP stream to counts; return counts."""
    counts = counts or Counts()
    nested = []
    plan = seen = 0
    for raw in lines:
        line = raw.rstrip('\n')
        m = PLAN.match(line)
        if m and not plan:
            plan = int(m.group(1))
            continue
        n = NESTED.match(line)
        if n:
            r = RESULT.match(n.group('rest'))
            if r:
                nested.append(r)
            continue
        r = RESULT.match(line)
        if not r:
            continue
        seen += 1
        if nested:
            for sub in nested:
                counts.add(sub)
            sub_failed = any(s.group('not') for s in nested)
            if r.group('not') and not sub_failed:
                counts.failed += 1
        else:
            counts.add(r)
        nested = []
    if plan > seen:
        counts.failed += plan - seen
    return counts


def main(argv):
    if len(argv) < 2 or argv[1] in ('-h', '--help'):
        print(f'usage: {argv[0]} TAP_FILE...', file=sys.stderr)
        return 2
    counts = Counts()
    for path in argv[1:]:
        with open(path, encoding='utf-8', errors='replace') as f:
            count(f, counts)
    print(counts.line())
    return 1 if counts.failed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
