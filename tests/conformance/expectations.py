"""Expected outcomes of stdlib asyncio tests on the loop under test.

Test ids are ``module.Class.method`` (the unittest id without the
``test.test_asyncio.`` prefix); patterns are ``fnmatch`` globs on them.
``EXPECTATIONS`` is keyed by ``"*"`` (every version) and ``"3.X"``; for a test
the version-specific entries are tried first, then the common ones; the first
match wins.

Kinds:

``BUG``        a fastloop bug: xfail(strict=True). When it is fixed the test
               XPASSes, which fails the run: remove the entry then.
``TRANSPORT``  needs transports/sockets/pipes/subprocesses/SSL/sendfile, which
               are later work: xfail(strict=False), reason
               "needs transports (issue 3/4)".
``INTERNAL``   introspects private selector-loop internals (``_selector``,
               ``_ready``, ``_scheduled``, ``_run_once`` mocks ...): skipped.
``HARNESS``    cannot run meaningfully in this harness whatever the loop (also
               skipped with FASTLOOP_CONFORMANCE_LOOP=asyncio).

With ``FASTLOOP_CONFORMANCE_LOOP=asyncio`` only HARNESS entries apply:
everything else must pass on the stdlib loop, which proves the harness.
"""

BUG = "bug"
TRANSPORT = "transport"
INTERNAL = "internal"
HARNESS = "harness"

KINDS = (BUG, TRANSPORT, INTERNAL, HARNESS)

TRANSPORTS = "needs transports (issue 3/4)"

# (pattern, kind, reason)
EXPECTATIONS = {
    "*": [
    ],
    "3.9": [
    ],
    "3.10": [
    ],
    "3.11": [
    ],
    "3.12": [
    ],
    "3.13": [
    ],
}
