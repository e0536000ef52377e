#!/usr/bin/env bash
# Installs dependencies, builds glassgate and runs the whole test suite (unit + integration against
# real PostgreSQL, sshd and an OIDC provider started by the tests on loopback).
#   scripts/test.sh            release build (RelWithDebInfo) + all tests
#   GG_ASAN=1 scripts/test.sh  also an ASan+UBSan build running the unit tests
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh

cmake --preset default >/dev/null
cmake --build --preset default
ctest --preset default -j2 --timeout 300

if [ "${GG_ASAN:-0}" = "1" ]; then
  cmake --preset asan >/dev/null
  cmake --build --preset asan
  ctest --preset asan -L unit -j2
fi
echo "test.sh: all tests passed"
