"""Run the unittest suite with this interpreter; the last line is `RESULT <passed> <failed>`.

Used by scripts/test.sh, once per Python found. Skipped tests count as neither.
"""

from __future__ import annotations

import os
import sys
import unittest

PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS_DIR = os.path.join(PKG_DIR, "tests")


def main() -> int:
    sys.path.insert(0, PKG_DIR)
    pattern = sys.argv[1] if len(sys.argv) > 1 else "test_*.py"
    suite = unittest.defaultTestLoader.discover(TESTS_DIR, pattern=pattern, top_level_dir=TESTS_DIR)
    result = unittest.TextTestRunner(verbosity=1, stream=sys.stderr).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    passed = result.testsRun - failed - len(result.skipped)
    sys.stdout.write("RESULT %d %d\n" % (passed, failed))
    return 1 if failed or result.testsRun == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
