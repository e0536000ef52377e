#!/usr/bin/env bash
# Installs everything glassgate needs to build, test and run its demo on Debian 12.
# Idempotent: packages already present are skipped by apt; npm packages come from the lock file.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libboost1.81-dev libboost-json1.81-dev
  libssl-dev libssh-dev libpq-dev libtomlplusplus-dev libspdlog-dev libfmt-dev doctest-dev
  libsqlite3-dev libsodium-dev libdeflate-dev
  postgresql-15 postgresql-client-15 postgresql-contrib openssh-server openssh-client openssl
  pgbouncer asciinema nodejs npm procps iproute2 curl python3 bsdutils
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
# Node may come from NodeSource or Debian; accept any node >= 20 already on PATH.
if command -v node >/dev/null 2>&1 && [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ]; then
  filtered=()
  for p in "${missing[@]}"; do [[ "$p" == nodejs || "$p" == npm ]] || filtered+=("$p"); done
  missing=("${filtered[@]+"${filtered[@]}"}")
fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # The Debian packages start system-wide PostgreSQL/sshd/pgbouncer services; glassgate's
  # tests and demo run their own instances on free loopback ports, so the system ones are not needed.
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The test identity provider (oidc-provider on Node), pinned by package-lock.json.
if [ -f "$here/tests/peers/idp/package.json" ]; then
  (cd "$here/tests/peers/idp" && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "install-deps: ok" >&2
