#!/usr/bin/env bash
# Builds the libFuzzer targets (preset "fuzz": clang-16, ASan+UBSan) and runs them one at a time.
#   scripts/fuzz.sh [SECONDS]            each target SECONDS seconds (default 600)
#   scripts/fuzz.sh 5                    CI: the committed corpora as regression, then 5 s per target
#   scripts/fuzz.sh --only jwt 300       only the named target(s) (--only may be repeated)
#   scripts/fuzz.sh --merge 600          afterwards, merge new interesting inputs into tests/fuzz/corpus
#   scripts/fuzz.sh --no-build ...       run the targets already built in build-fuzz
# First every target runs over its committed corpus (tests/fuzz/corpus/<target>, every file once): a
# crash there fails the script before any fuzzing. Then each target fuzzes for SECONDS from a scratch
# copy of that corpus (build-fuzz/corpus/<target>), so the repository is left alone unless --merge.
# Crash, timeout and out-of-memory inputs are kept in build-fuzz/artifacts/<target>/, logs in
# build-fuzz/logs/<target>.log. Exit status: non-zero if any target crashed. docs/testing.md, "Fuzzing".
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=600
merge=0
build=1
only=()
while [ $# -gt 0 ]; do
  case "$1" in
    --merge) merge=1 ;;
    --no-build) build=0 ;;
    --only) shift; only+=("${1:?--only needs a target name}") ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *[!0-9]*|'') echo "fuzz.sh: unknown argument '$1'" >&2; exit 2 ;;
    *) seconds="$1" ;;
  esac
  shift
done

if [ "$build" -eq 1 ]; then
  # clang-16 with libFuzzer and the sanitizer runtimes (Debian 12 packages).
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  missing=()
  for p in clang-16 libfuzzer-16-dev libclang-rt-16-dev; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then missing+=("$p"); fi
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "fuzz.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi

  cmake --preset fuzz >/dev/null
  cmake --build --preset fuzz
fi

bin=build-fuzz/tests/fuzz
targets=()
declare -A max_len
while read -r name len _; do
  case "$name" in ''|'#'*) continue ;; esac
  if [ ${#only[@]} -gt 0 ] && [[ ! " ${only[*]} " == *" $name "* ]]; then continue; fi
  targets+=("$name")
  max_len[$name]=$len
done < tests/fuzz/targets.txt
if [ ${#targets[@]} -eq 0 ]; then echo "fuzz.sh: no such target: ${only[*]}" >&2; exit 2; fi
mkdir -p build-fuzz/logs

common=(-rss_limit_mb=2048 -timeout=10)
# Readable stack traces in the logs (any llvm-symbolizer will do); UBSan reports end the run.
sym=$(command -v llvm-symbolizer-16 || command -v llvm-symbolizer || true)
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${sym:+:external_symbolizer_path=$sym}"
export ASAN_OPTIONS="${sym:+external_symbolizer_path=$sym}"

# 1. Regression: every committed input, once.
failed=()
for t in "${targets[@]}"; do
  mkdir -p "build-fuzz/artifacts/$t"
  if ! "$bin/gg_fuzz_$t" -runs=0 "${common[@]}" -artifact_prefix="build-fuzz/artifacts/$t/" \
      "tests/fuzz/corpus/$t" >"build-fuzz/logs/$t.regression.log" 2>&1; then
    failed+=("$t")
    echo "fuzz.sh: $t crashes on its committed corpus:" >&2
    grep -E 'ERROR|runtime error|fuzz property|SUMMARY|Test unit written' "build-fuzz/logs/$t.regression.log" >&2 || true
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: corpus regression FAILED for: ${failed[*]} (logs: build-fuzz/logs/<target>.regression.log)" >&2
  exit 1
fi
echo "fuzz.sh: corpus regression passed for ${#targets[@]} targets" >&2

# 2. Fuzzing, one target at a time.
stat() {  # stat NAME LOG: the value of libFuzzer's "stat::NAME:" line
  sed -n "s/^stat::$1: *\([0-9]*\).*/\1/p" "$2" | tail -1
}
rows=()
crashed=()
for t in "${targets[@]}"; do
  work="build-fuzz/corpus/$t"
  rm -rf "$work"
  mkdir -p "$work" "build-fuzz/artifacts/$t"
  cp tests/fuzz/corpus/"$t"/* "$work"/
  dict=()
  if [ -f "tests/fuzz/dict/$t.dict" ]; then dict=(-dict="tests/fuzz/dict/$t.dict"); fi
  log="build-fuzz/logs/$t.log"
  echo "fuzz.sh: $t for ${seconds}s" >&2
  rc=0
  "$bin/gg_fuzz_$t" -max_total_time="$seconds" -max_len="${max_len[$t]}" "${common[@]}" -print_final_stats=1 \
    -artifact_prefix="build-fuzz/artifacts/$t/" "${dict[@]}" "$work" >"$log" 2>&1 || rc=$?
  artifacts=$(find "build-fuzz/artifacts/$t" -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' \
    -o -name 'leak-*' -o -name 'slow-unit-*' \) -newer "$work" | wc -l)
  if [ "$rc" -ne 0 ]; then
    crashed+=("$t")
    if [ "$artifacts" -eq 0 ]; then artifacts=1; fi
    grep -E 'ERROR|runtime error|fuzz property|SUMMARY|Test unit written' "$log" | head -5 >&2 || true
  fi
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 || true)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$done_line")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$done_line")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p' <<<"$done_line")
  if [ -z "$done_line" ]; then  # ended by a crash: the last status line
    last=$(grep -E '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse|INITED)' "$log" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p' <<<"$last")
  fi
  execs=$(stat number_of_executed_units "$log")
  speed=$(stat average_exec_per_sec "$log")
  rows+=("$t|${execs:--}|${speed:--}|${cov:--}|${ft:--}|${corp:--}|$artifacts")
  if [ "$merge" -eq 1 ] && [ "$rc" -eq 0 ]; then
    "$bin/gg_fuzz_$t" -merge=1 -max_len="${max_len[$t]}" "${common[@]}" "tests/fuzz/corpus/$t" "$work" \
      >"build-fuzz/logs/$t.merge.log" 2>&1
  fi
done

summary=build-fuzz/fuzz-summary.txt
if [ ${#only[@]} -gt 0 ]; then summary=build-fuzz/fuzz-summary-$(IFS=-; echo "${only[*]}").txt; fi
{
  printf '%-16s %12s %9s %7s %8s %14s %8s\n' target execs exec/s cov ft corpus crashes
  for r in "${rows[@]}"; do
    IFS='|' read -r t e s c f p x <<<"$r"
    printf '%-16s %12s %9s %7s %8s %14s %8s\n' "$t" "$e" "$s" "$c" "$f" "$p" "$x"
  done
  echo "(${seconds} s per target; corpus = inputs/bytes; logs in build-fuzz/logs, crashes in build-fuzz/artifacts)"
} | tee "$summary"

if [ ${#crashed[@]} -gt 0 ]; then
  echo "fuzz.sh: FAILED: ${crashed[*]} crashed; reproduce with build-fuzz/tests/fuzz/gg_fuzz_<target> <artifact>" >&2
  exit 1
fi
echo "fuzz.sh: ${#targets[@]} targets, no crash"
