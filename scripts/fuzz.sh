#!/usr/bin/env bash
# fuzz.sh [TARGET...]: build the libFuzzer targets (clang, -DGW_FUZZ=ON) and run each for a fixed time from
# its seed corpus (tests/fuzz/targets.txt, tests/fuzz/seeds.sh). Fails on any crash, sanitizer report,
# leak, slow input (over GW_FUZZ_TIMEOUT s) or memory blow-up, printing the saved input and the command
# that reproduces it. Run by scripts/test.sh; alone it is the way to fuzz longer (tests/fuzz/README.md).
#   GW_FUZZ_SECONDS=15        run time per target
#   GW_FUZZ_TIMEOUT=10        seconds one input may take
#   GW_FUZZ_RSS_MB=2048       memory limit of a target
#   GW_FUZZ_BUILD=build-fuzz  build directory (the corpus each run grows and the findings are kept there)
#   GW_FUZZ_KEEP_CORPUS=1     start from the corpus earlier runs grew as well as from the seeds
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

secs=${GW_FUZZ_SECONDS:-15}
build=${GW_FUZZ_BUILD:-$GW_ROOT/build-fuzz}
case $build in /*) ;; *) build=$GW_ROOT/$build ;; esac

gw_ensure_packages "$GW_APT_PKGS $GW_FUZZ_APT_PKGS"
command -v clang >/dev/null || gw_die "clang is required for fuzzing"
cmake -S "$GW_ROOT" -B "$build" -DCMAKE_C_COMPILER=clang -DGW_FUZZ=ON -DGW_TESTS=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null || gw_die "cmake configure (fuzz) failed"
cmake --build "$build" --target gw_fuzz -j "$(nproc)" >&2 || gw_die "fuzz build failed"
"$GW_ROOT/tests/fuzz/seeds.sh" "$build/fuzz-seeds" || gw_die "building the seed corpora failed"

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(awk '/^fuzz_/ {print $1}' "$GW_ROOT/tests/fuzz/targets.txt")
fi

# Leaks and UB are findings; gRPC's process-lifetime singletons are not (tests/lsan.supp).
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$GW_ROOT/tests/lsan.supp}

failed=()
for t in "${targets[@]}"; do
  line=$(awk -v t="$t" '$1 == t' "$GW_ROOT/tests/fuzz/targets.txt")
  [ -n "$line" ] || gw_die "$t: not in tests/fuzz/targets.txt"
  read -r _ _ maxlen specs <<<"$line"
  bin=$build/fuzz/$t
  corpus=$build/fuzz-corpus/$t
  art=$build/fuzz-findings/$t
  log=$build/fuzz-logs/$t.log
  [ "${GW_FUZZ_KEEP_CORPUS:-0}" = 1 ] || rm -rf "$corpus"
  rm -rf "$art"
  mkdir -p "$corpus" "$art" "$(dirname "$log")"
  args=(-max_total_time="$secs" -timeout="${GW_FUZZ_TIMEOUT:-10}" -rss_limit_mb="${GW_FUZZ_RSS_MB:-2048}"
    -max_len="$maxlen" -print_final_stats=1 -artifact_prefix="$art/")
  for s in $specs; do
    case $s in *.dict) args+=(-dict="$GW_ROOT/tests/fuzz/$s") ;; esac
  done
  rc=0
  timeout $((secs * 2 + 120)) "$bin" "${args[@]}" "$corpus" "$build/fuzz-seeds/$t" >"$log" 2>&1 || rc=$?
  stats=$(awk '/stat::number_of_executed_units/ {n=$2} /stat::average_exec_per_sec/ {r=$2}
    /(DONE|pulse|NEW|REDUCE) +cov:/ {for (i = 1; i <= NF; i++) {if ($i == "cov:") c=$(i+1); if ($i == "ft:") f=$(i+1)}}
    END {printf "%s execs, %s/s, cov %s, ft %s", n, r, c, f}' "$log")
  found=$(find "$art" -type f | head -1)
  if [ "$rc" -eq 0 ] && [ -z "$found" ]; then
    printf '  %-18s ok: %s\n' "$t" "$stats" >&2
    continue
  fi
  failed+=("$t")
  {
    printf '  %-18s FAILED (exit %s): %s\n' "$t" "$rc" "$stats"
    sed -n '/^==[0-9]*== *ERROR\|runtime error:\|ALARM: working/,$p' "$log" | head -50
    echo "    log:        $log"
    if [ -n "$found" ]; then
      echo "    input:      $found"
      echo "    reproduce:  $bin -timeout=${GW_FUZZ_TIMEOUT:-10} -rss_limit_mb=${GW_FUZZ_RSS_MB:-2048} $found"
    fi
  } >&2
done
[ ${#failed[@]} -eq 0 ] || { echo "fuzzing failed: ${failed[*]}" >&2; exit 1; }
