# Shared by .ci/jobs/asan and .ci/jobs/devmode (sourced, not a job: it is
# not executable, so .ci/run does not run it).

jlog() { printf '[%s %4ds] %s\n' "${JOB_NAME:-job}" "$SECONDS" "$*"; }

# finish RC MESSAGE: the summary line (always the last line printed), exit.
finish() {
    local rc=$1
    shift
    echo
    if ((rc == 0)); then
        echo "$*"
    else
        echo "FAILED: $*"
    fi
    exit "$rc"
}

# copy_tree SRC DST: the checkout without .git and build products (a stale
# in-place .so or object file must not leak into the copy).
copy_tree() {
    local src=$1 dst=$2
    rm -rf "$dst" && mkdir -p "$dst" || return 1
    tar -C "$src" -cf - \
        --exclude=./.git --exclude=./build --exclude='./*.egg-info' \
        --exclude='*.so' --exclude='*.o' --exclude=__pycache__ \
        --exclude=.pytest_cache --exclude=.hypothesis --exclude=.mypy_cache \
        . | tar -C "$dst" -xf -
}

# ensure_setuptools PY: setup.py needs setuptools (3.12+ venvs lack it).
ensure_setuptools() {
    "$1" -c 'import setuptools' 2>/dev/null && return 0
    "$1" -m pip install -q setuptools wheel
}

# Third-party DeprecationWarnings (and only those) are not errors under
# -W error: one narrow filter per module that emits one (python's -W module
# field is an exact module name).  Never fastloop's or the tests' modules:
# a warning there is a bug to fix.
THIRD_PARTY_FILTERS=()

# check_pytest_and_reports RC PYTEST_LOG [SANITIZER_DIR]: prints the
# summary line and exits.  Fails on a pytest failure, on a run in which no
# test passed, and on any sanitizer report file.
check_pytest_and_reports() {
    local rc=$1 plog=$2 sandir=${3:-} line reports=() f
    line=$(grep -E '([0-9]+ (passed|failed|errors?|skipped|xfailed|xpassed|deselected|rerun)|no tests ran).* in [0-9.]+s' \
        "$plog" | tail -n 1 || true)
    line=$(sed -E 's/^=+ //; s/ =+$//' <<<"$line")
    [[ -n $line ]] || line="no pytest summary"
    if [[ -n $sandir ]]; then
        for f in "$sandir"/*; do
            [[ -f $f ]] && reports+=("$f")
        done
        if ((${#reports[@]})); then
            echo
            echo "=== ${#reports[@]} sanitizer report(s) ==="
            for f in "${reports[@]}"; do
                echo "--- $f"
                head -n 80 "$f"
            done
            finish 1 "$line; ${#reports[@]} sanitizer report(s): ${reports[*]##*/}"
        fi
        line="$line; no sanitizer reports"
    fi
    if ((rc != 0)); then
        finish 1 "pytest exit $rc: $line"
    fi
    if ! [[ $line =~ [0-9]+\ passed ]]; then
        finish 1 "no test passed: $line"
    fi
    finish 0 "$line"
}
