"""Build script for fastloop's C extension (fastloop._core).

Build knobs, read from the environment:

  FASTLOOP_DEBUG=1        -O0 -g3, asserts on (-UNDEBUG), FL_DEBUG=1
  FASTLOOP_SANITIZE=...   e.g. "address,undefined": -fsanitize=... build
  FASTLOOP_WERROR=1       -Werror (CI); off for end-user builds so that a
                          newer compiler cannot break `pip install`
  FASTLOOP_OPT=...        release optimisation flags (default -O2)
"""
import glob
import os
import sys

from setuptools import Extension, setup

DEBUG = os.environ.get("FASTLOOP_DEBUG") == "1"
SANITIZE = os.environ.get("FASTLOOP_SANITIZE", "").strip()
WERROR = os.environ.get("FASTLOOP_WERROR") == "1"
OPT = os.environ.get("FASTLOOP_OPT", "-O2")

if not sys.platform.startswith("linux"):
    # Only the epoll backend exists today (src/poller_epoll.c); a kqueue
    # backend would be chosen here.
    raise SystemExit("fastloop currently supports Linux only")

cflags = [
    "-std=c11",
    "-Wall",
    "-Wextra",
    "-Wno-unused-parameter",
    "-Wno-missing-field-initializers",
    "-Wshadow",
    "-Wstrict-prototypes",
    "-fvisibility=hidden",
    "-D_GNU_SOURCE",
]
ldflags = []
if DEBUG:
    cflags += ["-O0", "-g3", "-UNDEBUG", "-DFL_DEBUG=1"]
else:
    cflags += [OPT, "-DNDEBUG"]
if SANITIZE:
    cflags += ["-fsanitize=" + SANITIZE, "-fno-omit-frame-pointer", "-g"]
    ldflags += ["-fsanitize=" + SANITIZE]
if WERROR:
    cflags.append("-Werror")

sources = sorted(glob.glob("src/*.c"))

setup(
    ext_modules=[
        Extension(
            "fastloop._core",
            sources=sources,
            depends=glob.glob("src/*.h"),
            extra_compile_args=cflags,
            extra_link_args=ldflags,
        )
    ],
)
