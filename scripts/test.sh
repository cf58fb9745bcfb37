#!/usr/bin/env bash
# The whole test suite, as CI runs it: install what is missing, build, start a throw-away PostgreSQL,
# run the unit tests (also under valgrind), the integration and end-to-end tests (real sockets, real
# PostgreSQL, the real OpenTelemetry JS SDK), then all of it again built with ASan+UBSan, the unit tests
# that run threads of ours built with ThreadSanitizer, then each fuzz target for a short time
# (scripts/fuzz.sh, tests/fuzz/README.md).
#   GW_TEST_QUICK=1      skip the valgrind, sanitizer and fuzzing passes (for a fast local loop)
#   GW_FUZZ_SECONDS=15   fuzzing time per target
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
source "$(dirname "${BASH_SOURCE[0]}")/k8s.sh"

gw_ensure_packages
gw_ensure_node

work=$(mktemp -d /tmp/gw-test.XXXXXX)
chmod 755 "$work"
pgdir="$work/pg"
cleanup() {
  "$GW_ROOT/scripts/pg.sh" stop "$pgdir" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

passed=0
failed=0
failures=()
step() { # step NAME CMD...: run a suite, count it
  local name=$1
  shift
  gw_say "$name"
  if "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures+=("$name")
  fi
}

GW_PG_FAST=1 GW_TEST_PG_DSN=$("$GW_ROOT/scripts/pg.sh" start "$pgdir")
export GW_TEST_PG_DSN
gw_say "test PostgreSQL: $GW_TEST_PG_DSN"

(cd "$GW_ROOT/tests/e2e" && npm ci --no-audit --no-fund --loglevel=error >&2) || gw_die "npm ci in tests/e2e failed"

# The unit tests that run threads of ours: the ThreadSanitizer pass runs these.
GW_TSAN_TESTS="test_httpd test_spool test_spool_disk test_sink test_store_pg test_normalize test_events test_memtrim"
run_unit() { # run_unit DIR [CTEST ARGS...]
  local dir=$1
  shift
  (cd "$dir" && ctest --output-on-failure --timeout 300 "$@")
}
run_valgrind() {
  local dir=$1 t rc=0
  for t in "$dir"/tests/test_*; do
    [ -x "$t" ] || continue
    valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect \
      --suppressions="$GW_ROOT/tests/valgrind.supp" "$t" >"$work/vg.log" 2>&1 || { rc=1; cat "$work/vg.log" >&2; }
  done
  return $rc
}
run_node() { GW_BIN="$1/genai-gateway" GW_MIGRATIONS_DIR="$GW_ROOT/migrations" "$GW_ROOT/tests/run-node-tests.sh"; }
# The container image, the chart and manifests, PgBouncer and the pods (tests/k8s): once, with the
# normal build; their packages are installed here only.
run_k8s() {
  gw_ensure_k8s_packages
  local helm
  helm=$(gw_ensure_helm "$1/tools") || return 1
  GW_BIN="$1/genai-gateway" GW_HELM="$helm" "$GW_ROOT/tests/run-node-tests.sh" "$GW_ROOT"/tests/k8s/*.test.mjs
}

gw_build "$GW_ROOT/build"
step "unit tests" run_unit "$GW_ROOT/build"
if [ "${GW_TEST_QUICK:-0}" != 1 ]; then
  step "unit tests under valgrind" run_valgrind "$GW_ROOT/build"
fi
step "integration and end-to-end tests" run_node "$GW_ROOT/build"
step "container, Kubernetes and PgBouncer tests" run_k8s "$GW_ROOT/build"

if [ "${GW_TEST_QUICK:-0}" != 1 ]; then
  gw_build "$GW_ROOT/build-asan" -DGW_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
  export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$GW_ROOT/tests/lsan.supp}
  step "unit tests (ASan+UBSan)" run_unit "$GW_ROOT/build-asan"
  step "integration and end-to-end tests (ASan+UBSan)" run_node "$GW_ROOT/build-asan"
  # ThreadSanitizer on the unit tests whose threads are ours (the libraries are not instrumented: gRPC
  # core's locks are invisible to it): data races and lock-order inversions fail them.
  cmake -S "$GW_ROOT" -B "$GW_ROOT/build-tsan" -DCMAKE_BUILD_TYPE=Debug -DGW_TSAN=ON -DGW_BENCH=OFF >/dev/null ||
    gw_die "cmake configure (ThreadSanitizer) failed"
  # shellcheck disable=SC2086 # the test names, one target each
  cmake --build "$GW_ROOT/build-tsan" -j "$(nproc)" --target $GW_TSAN_TESTS >&2 || gw_die "build failed (ThreadSanitizer)"
  export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1 second_deadlock_stack=1}
  step "threaded unit tests (ThreadSanitizer)" run_unit "$GW_ROOT/build-tsan" -R "^(${GW_TSAN_TESTS// /|})\$"
  step "fuzzing (${GW_FUZZ_SECONDS:-15} s per target)" "$GW_ROOT/scripts/fuzz.sh"
fi

echo
for f in "${failures[@]}"; do echo "FAILED: $f"; done
echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
