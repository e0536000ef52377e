#!/usr/bin/env bash
# Installs dependencies, builds glassgate, and starts a working demo on 127.0.0.1:
#   - a PostgreSQL 15 server, an OpenSSH sshd and an OIDC identity provider (oidc-provider), each
#     on a free loopback port, with their data under ${TMPDIR:-/tmp}/glassgate-demo-peers
#   - glassgate serve with ./demo/glassgate.toml: target "appdb" (the PostgreSQL database "app"),
#     target "web01" (the sshd, host key pinned), backend secrets stored encrypted
# Stays in the foreground; Ctrl-C stops the proxy and every peer.
set -euo pipefail
unset BUILD  # the one built below: build/
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/../bench/lib.sh"  # changes to the repository root; GG, PEERS, start_peers, cleanup

bash scripts/install-deps.sh
cmake --preset default >/dev/null
cmake --build --preset default --target glassgate gg-peers

demo="$root/demo"
rm -rf "$demo"
mkdir -p "$demo/tls"

trap cleanup EXIT INT TERM
peers_dir="${TMPDIR:-/tmp}/glassgate-demo-peers"  # outside the checkout: the postgres user must be able to enter it
start_peers "$peers_dir" "$demo/peers.env" "$demo/peers.log"

# The demo database and its owner role (the credential glassgate injects; engineers never see it).
app_password=$(openssl rand -hex 16)
superuser_psql -q -v ON_ERROR_STOP=1 <<SQL
CREATE ROLE app_owner LOGIN PASSWORD '$app_password';
CREATE DATABASE app OWNER app_owner;
SQL

# Client-facing TLS certificate for the proxy's PostgreSQL listener.
openssl req -x509 -newkey ed25519 -nodes -days 30 -subj "/CN=localhost" \
  -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
  -keyout "$demo/tls/proxy.key" -out "$demo/tls/proxy.crt" 2>/dev/null
chmod 600 "$demo/tls/proxy.key"

pg_listen_port=${GG_DEMO_PG_PORT:-6432}
ssh_listen_port=${GG_DEMO_SSH_PORT:-2222}
cat >"$demo/glassgate.toml" <<TOML
# Demo configuration written by scripts/demo.sh; see config/glassgate.example.toml for every key.
[server]
state_dir = "var"
admin_socket = "var/admin.sock"

[listen]
postgres = "127.0.0.1:$pg_listen_port"
ssh = "127.0.0.1:$ssh_listen_port"

[tls]
cert_file = "tls/proxy.crt"
key_file = "tls/proxy.key"

[idp]
issuer = "$GG_IDP_ISSUER"
client_id = "glassgate"

[[target]]
name = "appdb"
protocol = "postgres"
address = "$GG_PG_HOST:$GG_PG_PORT"
database = "app"
backend_user = "app_owner"
tls = "require"
allow = ["alice", "group:dba"]
max_session = "8h"

$(ssh_target_toml web01)
authorized_keys = "$(dirname "$GG_SSHD_CLIENT_KEY")/authorized_keys"
allow = ["alice"]
max_session = "1h"

[ssh]
sso_cache = "30m"

[[fallback]]
name = "idp-down"
trigger = "idp_unreachable"
accounts = ["bg-oncall-1"]
targets = ["appdb", "web*"]
max_session = "30m"
warn_before = "5m"
require_reason = true
rotate_on_close = true
TOML

export GLASSGATE_CONFIG="$demo/glassgate.toml"
"$GG" config check
printf '%s' "$app_password" | "$GG" secret set appdb
"$GG" secret set web01 --from-file "$GG_SSHD_CLIENT_KEY"

"$GG" serve &
proxy_pid=$!
pids+=("$proxy_pid")
sleep 1
kill -0 "$proxy_pid" 2>/dev/null || { echo "demo: glassgate serve failed to start (see above)" >&2; exit 1; }

cat <<TXT

glassgate demo is running (Ctrl-C stops everything). In another terminal:

  export GLASSGATE_CONFIG=$demo/glassgate.toml
  PGPASSWORD=sso psql "host=127.0.0.1 port=$pg_listen_port user=alice dbname=appdb sslmode=require"
  ssh -p $ssh_listen_port alice:web01@127.0.0.1
  glassgate sessions list         # (binary: $root/build/proxy/glassgate)
  glassgate verify --all --audit

Sign in as "alice" (any password) on the identity provider's page at $GG_IDP_ISSUER.
Peers: PostgreSQL 127.0.0.1:$GG_PG_PORT, sshd 127.0.0.1:$GG_SSHD_PORT, IdP $GG_IDP_ISSUER (logs in $peers_dir).
TXT
wait "$proxy_pid"
