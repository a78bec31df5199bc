#!/usr/bin/env python3
"""fastloop in half a minute: the scheduling micro-benchmarks, quickly.

    python3 -m pip install '.[bench]'     # fastloop + uvloop
    python3 bench/demo.py

Runs a subset of bench/micro.py (8 cases, 7 alternated runs per loop, 60%
of the full work) on fastloop, asyncio's SelectorEventLoop and uvloop (if
installed) and prints the medians and the fastloop/asyncio and
fastloop/uvloop ratios.  Extra arguments go to micro.py (e.g. --pin 1,
--json out.json, --aa).  For the full set: python3 bench/micro.py.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import micro  # noqa: E402

CASES = [
    "call_soon_batch",
    "call_soon_chain",
    "timer_cancel",
    "timer_fire",
    "create_task",
    "sleep0_pingpong",
    "future",
    "threadsafe_burst",
]


def main():
    try:
        micro._import_fastloop()
    except ImportError as exc:
        sys.stderr.write(
            "fastloop is not importable (%s).\n"
            "Install it first, from the top of the checkout:\n"
            "    python3 -m pip install '.[bench]'\n" % exc
        )
        return 2
    argv = ["--cases", ",".join(CASES), "--repeat", "7", "--scale", "0.6"]
    status = micro.main(argv + sys.argv[1:], title="fastloop demo")
    print()
    print("ops/s: higher is better.  fl/aio = fastloop's median over asyncio's,")
    print("fl/uv = over uvloop's.  Every case checks its result, so a fast wrong")
    print("loop shows ERROR, not a number.  Method: bench/README.md;")
    print("all cases: python3 bench/micro.py")
    return status


if __name__ == "__main__":
    sys.exit(main())
