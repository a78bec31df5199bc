"""Leak checks for whole scenarios (STYLE.md section 4.5).

Modelled on CPython's ``regrtest -R`` (Lib/test/libregrtest/refleak.py):
run the scenario a few times to warm up caches (interned strings, method
caches, the ssl module's session objects, free lists), then run it again
several times, taking a snapshot before and after each run:

* references: ``sys.gettotalrefcount()`` (debug CPython builds only; 0 on
  release builds, so that column never flags),
* allocated memory blocks: ``sys.getallocatedblocks()`` (every build),
* open file descriptors: ``/proc/self/fd``,
* optionally, the reference counts of some types (``types=``): every
  instance of a heap type holds a reference to its type, so a leaked
  ``fastloop._core.Handle`` shows up there on release builds too
  (multidict's isolated type-leak check).

A reference or block leak is reported only if **every** delta is >= 1
(bpo-30776: a single noisy run must not make the check fail, while a leak of
even one object per run shows up in every run).  A file descriptor leak is
reported if **any** delta is non-zero: descriptors are not noisy, and a
scenario that leaks one only now and then is exactly the bug we look for.

The scenario must create and close everything it uses (its own loop
included): anything it leaves for a later run to clean up looks like noise
in one run and like a leak in the next.
"""
import gc
import os
import sys

HAS_TOTALREFCOUNT = hasattr(sys, "gettotalrefcount")

NAMES = ("refs", "blocks", "fds", "type refs")


def count_fds():
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:  # pragma: no cover - not Linux
        return 0


def snapshot(types=()):
    """(total refcount or 0, allocated blocks, open fds, sum of the
    refcounts of `types`), after a full gc."""
    # The type attribute cache (4096 entries) keeps a reference to the name
    # of every attribute looked up through it; C code that looks names up
    # with PyObject_CallMethod(obj, "name") makes a new string per call, so
    # the cache slowly fills with distinct strings (bounded, not a leak, and
    # invisible to the refcount total).  regrtest -R clears it too.
    sys._clear_type_cache()
    # Three passes: objects freed by the first pass can make finalizers run
    # that release more (asyncio transports' __del__, weakref callbacks).
    for _ in range(3):
        gc.collect()
    refs = sys.gettotalrefcount() if HAS_TOTALREFCOUNT else 0
    trefs = sum(sys.getrefcount(t) for t in types)
    return refs, sys.getallocatedblocks(), count_fds(), trefs


def measure(fn, warmup=3, runs=4, types=()):
    """Run fn() warmup times, then `runs` times with snapshots around each
    run; returns the deltas, one tuple (refs, blocks, fds, type refs) per
    run."""
    for _ in range(warmup):
        fn()
    deltas = []
    for _ in range(runs):
        before = snapshot(types)
        fn()
        after = snapshot(types)
        deltas.append(tuple(a - b for a, b in zip(after, before)))
    return deltas


def leaks_in(deltas):
    """The names of the columns that count as leaking, with their deltas."""
    found = {}
    for i, name in enumerate(NAMES):
        col = [d[i] for d in deltas]
        if name == "fds":
            leaked = any(col)
        else:
            leaked = all(x >= 1 for x in col)
        if leaked:
            found[name] = col
    return found


def assert_no_leaks(fn, warmup=3, runs=4, retries=1, types=()):
    """Fail if fn() leaks references, memory blocks or file descriptors.

    ``retries``: a reference/block verdict is re-measured that many times
    and must hold in every measurement (a background thread finishing its
    work during all four runs can fake a small block leak once; a real leak
    repeats).  An fd verdict is never retried.
    """
    deltas = measure(fn, warmup, runs, types)
    found = leaks_in(deltas)
    attempt = 0
    while found and "fds" not in found and attempt < retries:
        attempt += 1
        deltas = measure(fn, 0, runs, types)
        again = leaks_in(deltas)
        found = {k: v for k, v in again.items() if k in found}
    assert not found, "leaked: " + ", ".join(
        "%s %s" % (name, col) for name, col in found.items()
    )
