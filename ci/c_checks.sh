#!/usr/bin/env bash
# C hygiene for the parser core (csrc/*.c), in three steps (and the binding's) after a toolchain
# probe; the first failure stops the run (the fuzzers all run, then the script fails if any of them did).
#
#   1. warnings   every core and test source compiles with gcc and clang, -Wall -Wextra -Werror,
#                 at -O0 and -O2 (some warnings only appear with optimisation); the core sources
#                 also with the stricter set in STRICT (-Wconversion, -Wshadow, -Wpedantic, ...).
#   2. sanitizers csrc/tests/test_guard under ASan + UBSan (-fno-sanitize-recover=all), built with
#                 gcc and with clang: built-in cases, the conformance corpus (extracted by
#                 csrc/tests/extract_seeds.py) and csrc/tests/crashes/ (saved reproducers), every
#                 input right before a PROT_NONE page.
#   2b. binding   the cffi extension itself built with gcc's ASan + UBSan, and the Python tests that
#                 drive it in-process (tests/conformance, tests/unit/test_c_*.py) plus the live parity
#                 streams (servers inherit the sanitizer) run against it from a copy of the tree
#                 (PYTHONMALLOC=malloc, so ASan sees Python's frees of what C still points at;
#                 leaks are not checked: the interpreter's own allocations would drown them).
#   3. fuzzing    the libFuzzer targets csrc/tests/fuzz_{request,head,chunked,serialize,uwsgi}.c
#                 (clang -fsanitize=fuzzer,address,undefined) for FUZZ_SECONDS each (default 30),
#                 starting from the built-in and conformance seeds (fuzz_head from the request
#                 ones).  A crash is saved under $BUILD/crashes/<target>/ and shown as a hex dump.
#
# Needs gcc, clang and clang's sanitizer/libFuzzer runtime (Debian: libclang-rt-14-dev, which
# `apt-get install clang` pulls in as a Recommends), python3 for the corpus extraction.
# Environment: FUZZ_SECONDS (0 skips fuzzing), BUILD (default build/c_checks), CLANG, GCC.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-build/c_checks}
FUZZ_SECONDS=${FUZZ_SECONDS:-30}
CLANG=${CLANG:-clang}
GCC=${GCC:-gcc}
CORE=(csrc/*.c)
HARNESS=(csrc/tests/check*.c csrc/tests/guard.c)
WARN=(-std=c11 -Wall -Wextra -Werror -Icsrc)
STRICT=(-Wpedantic -Wshadow -Wcast-qual -Wstrict-prototypes -Wmissing-prototypes -Wvla -Wformat=2
        -Wconversion -Wsign-conversion)
SAN=(-g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all)
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

say() { printf -- '-- %s\n' "$*"; }
elapsed() { echo "$(( $(date +%s) - $1 ))s"; }

rm -rf "$BUILD"
mkdir -p "$BUILD/obj" "$BUILD/seeds"

# ---- 0. toolchain ---------------------------------------------------------------------------------
# clang needs its sanitizer + libFuzzer runtime, a separate Debian package; say so plainly.
probe='int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }'
if ! printf '%s\n' "$probe" | "$CLANG" -x c -fsanitize=fuzzer,address,undefined -o "$BUILD/obj/probe" - \
        2>"$BUILD/obj/probe.log"; then
    cat "$BUILD/obj/probe.log" >&2
    echo "c_checks: $CLANG cannot link ASan/UBSan/libFuzzer; on Debian install" \
         "libclang-rt-$("$CLANG" -dumpversion | cut -d. -f1)-dev" >&2
    exit 1
fi
# ASan of gcc 12 / clang 14 cannot map its shadow memory when the kernel randomises mmap with more
# than 28 bits; run the sanitized programs without address randomisation there.
RUN=()
if [ "$(cat /proc/sys/vm/mmap_rnd_bits 2>/dev/null || echo 0)" -gt 28 ] &&
        setarch "$(uname -m)" -R true 2>/dev/null; then
    RUN=(setarch "$(uname -m)" -R)
fi

# ---- 1. warnings --------------------------------------------------------------------------------
start=$(date +%s)
for cc in "$GCC" "$CLANG"; do
    for opt in -O0 -O2; do
        for src in "${CORE[@]}"; do
            "$cc" "${WARN[@]}" "${STRICT[@]}" "$opt" -c "$src" -o "$BUILD/obj/out.o"
        done
        for src in csrc/tests/*.c; do
            extra=()
            case "$src" in csrc/tests/fuzz_*) [ "$cc" = "$CLANG" ] || continue; extra=(-fsanitize=fuzzer-no-link) ;; esac
            "$cc" "${WARN[@]}" "$opt" "${extra[@]}" -c "$src" -o "$BUILD/obj/out.o"
        done
    done
    say "warning-free: $cc $("$cc" -dumpversion) -Wall -Wextra -Werror (+ STRICT on the core) at -O0, -O2 ($(elapsed "$start"))"
done

# ---- 2. sanitizers ------------------------------------------------------------------------------
start=$(date +%s)
seed_args=()
python3 csrc/tests/extract_seeds.py "$BUILD/seeds/conformance"
[ -d "$BUILD/seeds/conformance" ] && seed_args+=(--seeds "$BUILD/seeds/conformance")
if compgen -G "csrc/tests/crashes/*/*" >/dev/null; then
    seed_args+=(--seeds csrc/tests/crashes)
fi
for cc in "$GCC" "$CLANG"; do
    name=$(basename "$cc")
    "$cc" "${WARN[@]}" "${SAN[@]}" -o "$BUILD/test_guard_$name" \
        csrc/tests/test_guard.c "${HARNESS[@]}" "${CORE[@]}"
    say "test_guard ($name, ASan+UBSan, guard pages)"
    "${RUN[@]}" "$BUILD/test_guard_$name" "${seed_args[@]}"
done
say "sanitizer runs done ($(elapsed "$start"))"

# ---- 2b. the binding under the sanitizers ---------------------------------------------------------
start=$(date +%s)
BIND="$(cd "$BUILD" && pwd)/binding"
mkdir -p "$BIND/tree"
FASTWSGI_REQUIRE_EXTENSION=1 CC="$GCC" CFLAGS="${SAN[*]}" LDFLAGS="${SAN[*]}" \
    python3 setup.py -q build_ext --build-lib "$BIND/lib" --build-temp "$BIND/tmp" >"$BIND/build.log" 2>&1 ||
    { cat "$BIND/build.log" >&2; exit 1; }
cp -r fastwsgi tests pyproject.toml "$BIND/tree/"
rm -f "$BIND/tree/fastwsgi/"_cparser*.so
cp "$BIND/lib/fastwsgi/"_cparser*.so "$BIND/tree/fastwsgi/"
find "$BIND/tree" -name __pycache__ -prune -exec rm -rf {} +
if ! (cd "$BIND/tree" && PYTHONMALLOC=malloc LD_PRELOAD="$("$GCC" -print-file-name=libasan.so)" \
        ASAN_OPTIONS="detect_leaks=0:log_path=$BIND/report" UBSAN_OPTIONS="$UBSAN_OPTIONS:log_path=$BIND/report" \
        "${RUN[@]}" \
        python3 -m pytest -q -x -p no:cacheprovider tests/conformance tests/unit/test_c_*.py \
        tests/functional/test_live_parity.py >"$BIND/pytest.log" 2>&1); then
    tail -n 30 "$BIND/pytest.log" >&2
    cat "$BIND"/report.* >&2 2>/dev/null || true
    echo "c_checks: the Python tests failed against the sanitized extension" >&2
    exit 1
fi
say "binding under ASan+UBSan: $(tail -n 1 "$BIND/pytest.log") ($(elapsed "$start"))"

# ---- 3. fuzzing ---------------------------------------------------------------------------------
if [ "$FUZZ_SECONDS" = 0 ]; then
    say "fuzzing skipped (FUZZ_SECONDS=0)"
    exit 0
fi
start=$(date +%s)
"${RUN[@]}" "$BUILD/test_guard_$(basename "$GCC")" --write-seeds "$BUILD/seeds/builtin"
# the harness and the core are compiled once, with coverage instrumentation, for all the targets
mkdir -p "$BUILD/fuzzobj"
objs=()
for src in "${HARNESS[@]}" "${CORE[@]}"; do
    obj="$BUILD/fuzzobj/$(echo "${src%.c}" | tr / _).o"
    "$CLANG" "${WARN[@]}" -g -O1 -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all \
        -c "$src" -o "$obj"
    objs+=("$obj")
done
status=0
for target in request head chunked serialize uwsgi; do
    "$CLANG" "${WARN[@]}" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
        -o "$BUILD/fuzz_$target" "csrc/tests/fuzz_$target.c" "${objs[@]}"
    mkdir -p "$BUILD/corpus/$target" "$BUILD/crashes/$target"
    seeds=$target
    [ "$target" = head ] && seeds=request  # fw_parse_head takes request heads
    dirs=("$BUILD/corpus/$target" "$BUILD/seeds/builtin/$seeds")
    [ -d "$BUILD/seeds/conformance/$seeds" ] && dirs+=("$BUILD/seeds/conformance/$seeds")
    log="$BUILD/fuzz_$target.log"
    if "${RUN[@]}" "$BUILD/fuzz_$target" -max_total_time="$FUZZ_SECONDS" -max_len=4096 -timeout=10 \
            -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$BUILD/crashes/$target/" \
            "${dirs[@]}" >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
        say "fuzz_$target: ${runs:-?} runs in ${FUZZ_SECONDS}s, $cov, no failure"
    else
        status=1
        echo "c_checks: fuzz_$target FAILED; end of $log:" >&2
        tail -n 60 "$log" >&2
        for crash in "$BUILD/crashes/$target"/*; do
            [ -f "$crash" ] || continue
            echo "c_checks: reproducer $crash (seed format of csrc/tests/checks.h):" >&2
            od -A d -t x1z -v "$crash" | head -n 40 >&2
        done
    fi
done
say "fuzzing done ($(elapsed "$start"))"
exit "$status"
