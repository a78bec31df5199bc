# Developer tasks for fastloop.  Every build target compiles the extension
# into the checkout (fastloop/_core.*.so) through an editable install, so
# `python -m pytest` and bench/ use what was just built.
#
#   make build        release build (-O2) + test extra
#   make debug        -O0 -g3, asserts, FL_DEBUG=1, -Werror
#   make asan         AddressSanitizer + UBSan build; run it with make test-asan
#   make test         the test suite (the README's command)
#   make test-dev     python -X dev -W error: asyncio debug mode, warnings fatal
#   make test-debug   PYTHONASYNCIODEBUG=1
#   make bench        scheduling micro-benchmarks vs asyncio and uvloop
#   make demo         the 30-second version of make bench
#   make ci           what CI runs (every CPython 3.9-3.13 found, fresh venvs)
#   make clean

PYTHON ?= python3
PIP_INSTALL = $(PYTHON) -m pip install -e
BENCH_ARGS ?=
PYTEST_ARGS ?=
# pytest-xdist workers (most tests wait on I/O: more workers than CPUs pay)
WORKERS ?= 4

.PHONY: build debug asan test test-dev test-debug test-asan bench demo ci clean

build:
	$(PIP_INSTALL) '.[test]'

debug:
	FASTLOOP_DEBUG=1 FASTLOOP_WERROR=1 $(PIP_INSTALL) '.[test]'

asan:
	FASTLOOP_SANITIZE=address,undefined FASTLOOP_DEBUG=1 $(PIP_INSTALL) '.[test]'

test:
	$(PYTHON) -m pytest -n $(WORKERS) $(PYTEST_ARGS)

test-dev:
	$(PYTHON) -X dev -W error -m pytest -n $(WORKERS) $(PYTEST_ARGS)

test-debug:
	PYTHONASYNCIODEBUG=1 $(PYTHON) -m pytest -n $(WORKERS) $(PYTEST_ARGS)

# The ASan runtime must be loaded first: preload it into the stock python.
# PYTHONMALLOC=malloc lets ASan see every allocation; leak detection is off
# because the interpreter does not free everything at exit.
test-asan:
	PYTHONMALLOC=malloc \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	$(PYTHON) -m pytest -x -p no:cacheprovider -n $(WORKERS) $(PYTEST_ARGS)

bench:
	$(PYTHON) bench/micro.py $(BENCH_ARGS)

demo:
	$(PYTHON) bench/demo.py $(BENCH_ARGS)

ci:
	CI=true bash .ci/run

clean:
	rm -rf build *.egg-info fastloop/_core*.so .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
