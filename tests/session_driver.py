"""Run many real `pytest suites/ ...` sessions in one process (pytest.main in a loop), for property tests.

One process start (imports) instead of one per case makes hundreds of real sessions affordable.
Usage: python -m tests.session_driver CASES.json RESULT.json, where CASES.json is a list of argv
lists; RESULT.json gets [{"rc": int, "out": str}] in the same order. Each case's captured output
is stdout and stderr together; an exception escaping pytest.main is recorded as its traceback.
"""

from __future__ import annotations

import contextlib
import io
import json
import signal
import sys
import traceback

CASE_BOUND_S = 60


def main(cases_path: str, result_path: str) -> None:
    import pytest

    def hang(signum, frame):
        raise TimeoutError(f"hang: no answer within {CASE_BOUND_S}s")

    signal.signal(signal.SIGALRM, hang)
    results = []
    for argv in json.load(open(cases_path)):
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            signal.alarm(CASE_BOUND_S)  # each case bounded: a hang is recorded, not waited for
            try:
                rc = int(pytest.main(argv))
            except BaseException:  # noqa: BLE001 - a crash (or a hang) is the finding
                traceback.print_exc()
                rc = -1
            finally:
                signal.alarm(0)
        results.append({"rc": rc, "out": buf.getvalue()})
    with open(result_path, "w") as fh:
        json.dump(results, fh)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
