#!/bin/sh
# What bench/net.py compares with, beyond fastloop itself:
#   - wrk, from the Debian package, for the *_wrk HTTP cases;
#   - uvloop and aiohttp (the "bench" extra), with fastloop from this
#     checkout.
# Usage, from the top of the checkout:  sh bench/install-deps.sh
# PYTHON picks the interpreter (default python3).  Without apt-get, or
# without root and sudo, wrk is left out and its cases are skipped with a
# note; everything else still runs.
set -eu

PY=${PYTHON:-python3}

install_wrk() {
    if command -v wrk >/dev/null 2>&1; then
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install-deps: no apt-get here: install wrk yourself" >&2
        return 0
    fi
    if [ "$(id -u)" -eq 0 ]; then
        as_root=""
    elif command -v sudo >/dev/null 2>&1; then
        as_root="sudo"
    else
        echo "install-deps: not root and no sudo: wrk not installed" >&2
        return 0
    fi
    # A fresh image has no package lists yet: update once if needed.
    $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk ||
        { $as_root apt-get update -q &&
          $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q wrk; } ||
        echo "install-deps: apt-get could not install wrk" >&2
}

install_wrk
"$PY" -m pip install -q ".[bench]"
"$PY" - <<'PY'
import importlib.util, shutil
for mod in ("fastloop", "uvloop", "aiohttp"):
    print("%-9s %s" % (mod, "ok" if importlib.util.find_spec(mod) else "MISSING"))
print("%-9s %s" % ("wrk", shutil.which("wrk") or "missing (the *_wrk cases are skipped)"))
PY
