#!/usr/bin/env bash
# Runs the client's unittest suite with Debian's /usr/bin/python3 and with every
# other Python >= 3.9 on PATH (python3, python3.N; one run per distinct
# interpreter, pyenv shims resolved), then prints "N passed, N failed".
# Usage: bash scripts/test.sh [pattern] [--outputFile.json=PATH]   e.g. bash scripts/test.sh 'test_run*.py'
# scripts/test-all.sh passes vitest's reporter arguments to every workspace: --reporter=* is ignored,
# and --outputFile.json=PATH gets the totals in vitest's JSON result shape, which it sums.
set -u
cd "$(dirname "$0")/.."
pattern="test_*.py"
result_file=""
for arg in "$@"; do
  case "$arg" in
  --outputFile.json=*) result_file="${arg#--outputFile.json=}" ;;
  --reporter=* | --reporter) ;;
  -*) echo "test.sh: unknown option $arg" >&2; exit 2 ;;
  *) pattern="$arg" ;;
  esac
done
write_result() {
  [ -n "$result_file" ] || return 0
  local passed=$1 failed=$2 ok=false
  [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ] && ok=true
  printf '{"numTotalTests":%d,"numPassedTests":%d,"numFailedTests":%d,"numPendingTests":0,"numTodoTests":0,"numFailedTestSuites":0,"success":%s}\n' \
    $((passed + failed)) "$passed" "$failed" "$ok" >"$result_file"
}

candidates=()
[ -x /usr/bin/python3 ] && candidates+=(/usr/bin/python3)
for name in python3 python3.9 python3.10 python3.11 python3.12 python3.13 python3.14; do
  while IFS= read -r path; do
    [ -n "$path" ] && candidates+=("$path")
  done < <(type -ap "$name" 2>/dev/null)
done

probe='import os, sys; print(os.path.realpath(sys.executable) if sys.version_info >= (3, 9) else "")'
seen=" "
total_passed=0
total_failed=0
ran=0
for python in "${candidates[@]}"; do
  real="$("$python" -c "$probe" 2>/dev/null)" || continue  # e.g. a pyenv shim for a version not selected
  [ -n "$real" ] || continue
  case "$seen" in *" $real "*) continue ;; esac
  seen="$seen$real "
  version="$("$python" -c 'import platform; print(platform.python_version())')"
  echo "== $python (Python $version, $real)"
  output="$(PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$python" scripts/run_tests.py "$pattern")"
  status=$?
  line="$(printf '%s\n' "$output" | grep '^RESULT ' | tail -n 1)"
  if [ -z "$line" ]; then
    echo "   no result (exit $status)"
    total_failed=$((total_failed + 1))
  else
    read -r _ passed failed <<<"$line"
    echo "   $passed passed, $failed failed"
    total_passed=$((total_passed + passed))
    total_failed=$((total_failed + failed))
    [ "$status" -ne 0 ] && [ "$failed" -eq 0 ] && total_failed=$((total_failed + 1))
  fi
  ran=$((ran + 1))
done

if [ "$ran" -eq 0 ]; then
  echo "no Python >= 3.9 found"
  write_result 0 1
  echo "0 passed, 1 failed"
  exit 1
fi
write_result "$total_passed" "$total_failed"
echo "$total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
