"""CPython's own asyncio test suites, run against the loop under test.

The pytest entry point is ``tests/test_conformance.py``; the pieces live here:

``loops``         which loop is under test (env ``FASTLOOP_CONFORMANCE_LOOP``:
                  ``fastloop``, the default, or ``asyncio`` to prove the harness
                  on the stdlib loop), its policy, and the tracker that records
                  whether a stdlib test really created/ran a loop under test.
``suites``        which ``test.test_asyncio`` modules and classes are run and
                  how each is bound to the loop under test (adapters).
``expectations``  version-keyed skip / xfail rules.
``runner``        collection (one case per stdlib test method) and execution
                  (a one-test ``unittest.TestSuite`` run, outcome translated to
                  pytest, global asyncio state saved and restored).
"""
