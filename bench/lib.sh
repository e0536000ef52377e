# Shared by the benchmarks (bench/*.sh) and the demo (scripts/demo.sh): the build, the test peers
# (gg-peers), pgbouncer and glassgate on 127.0.0.1, cleanup, and the measuring helpers.
#
# Source it under `set -euo pipefail`; it changes to the repository root (`root`):
#   source "$(dirname "$0")/lib.sh"
#   bench_start gg-bench-x --postgres --idp     # a benchmark: build checked, cleanup trap, $work, peers
# Background processes are collected in the array `pids`, temporary directories in `temp_dirs`; cleanup
# stops and removes them.
# shellcheck shell=bash
# shellcheck disable=SC2034,SC2154  # variables shared with the scripts that source this file

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
root=$(pwd)
BUILD=${BUILD:-$root/build}
GG="$BUILD/proxy/glassgate"
PEERS="$BUILD/tests/harness/gg-peers"
pids=()
temp_dirs=()

# require_build: exits with a hint unless glassgate and gg-peers are built in $BUILD.
require_build() {
  [ -x "$GG" ] && [ -x "$PEERS" ] || { echo "build first: cmake --preset default && cmake --build --preset default" >&2; exit 1; }
}

# cleanup: stops every process of `pids` (the last started first: glassgate before the peers it uses) and
# removes every directory of `temp_dirs`.
cleanup() {
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ ${#temp_dirs[@]} -eq 0 ] || rm -rf "${temp_dirs[@]}"
}

# make_work PREFIX: sets `work` to a new directory /tmp/PREFIX-XXXXXX that the postgres user can enter
# (the peers' PostgreSQL and pgbouncer run as postgres), removed by cleanup.
make_work() {
  work=$(mktemp -d "/tmp/$1-XXXXXX")
  chmod 755 "$work"
  temp_dirs+=("$work")
}

# bench_start PREFIX [--postgres] [--sshd] [--idp]: the start of every benchmark: require_build, cleanup
# on exit, `work` (make_work PREFIX) and the test peers in $work/peers (start_peers).
bench_start() {
  local prefix=$1
  shift
  require_build
  trap cleanup EXIT INT TERM
  make_work "$prefix"
  start_peers "$work/peers" "$work/peers.env" "$work/peers.log" "$@"
}

# free_port: a TCP port that was free on 127.0.0.1 a moment ago.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_port PORT: waits up to 10 s until 127.0.0.1:PORT accepts a connection (never fails: whatever uses
# the port next reports a server that did not come up).
wait_port() {
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  return 0
}

# start_peers DIR ENV_FILE LOG [--postgres] [--sshd] [--idp]: gg-peers in the background with its data
# in DIR (default: every peer); waits up to 60 s for its environment file and sources it (GG_PG_*,
# GG_SSHD_*, GG_IDP_ISSUER). Sets peers_pid. Exits with the tail of LOG when the peers do not start.
start_peers() {
  local dir=$1 env_file=$2 log=$3
  shift 3
  "$PEERS" --dir "$dir" "$@" --env-file "$env_file" >"$log" 2>&1 &
  peers_pid=$!
  pids+=("$peers_pid")
  for _ in $(seq 1 600); do
    [ -s "$env_file" ] && break
    if ! kill -0 "$peers_pid" 2>/dev/null; then
      echo "the test peers failed to start:" >&2
      tail -n 30 "$log" >&2
      exit 1
    fi
    sleep 0.1
  done
  [ -s "$env_file" ] || { echo "the test peers did not come up in 60 s; see $log" >&2; exit 1; }
  # shellcheck disable=SC1090
  source "$env_file"
}

# superuser_psql ARGS...: psql as the peers' PostgreSQL superuser, database postgres.
superuser_psql() {
  PGPASSWORD="$GG_PG_PASSWORD" psql "$@" "host=$GG_PG_HOST port=$GG_PG_PORT user=$GG_PG_SUPERUSER dbname=postgres sslmode=require"
}

# create_bench_db: role bench with a new random password (`pw`) and its database bench on the peers'
# PostgreSQL; plaintext clients from 127.0.0.1 accepted too (the test peer accepts TLS only), for runs
# without client TLS.
create_bench_db() {
  local hba
  pw=$(openssl rand -hex 16)
  superuser_psql -qX -c "create role bench login password '$pw'" -c "create database bench owner bench" >/dev/null
  hba=$(superuser_psql -qXtA -c "show hba_file")
  echo "host all all 127.0.0.1/32 scram-sha-256" >>"$hba"
  superuser_psql -qXtA -c "select pg_reload_conf()" >/dev/null
}

# make_tls_cert: $work/tls.crt and $work/tls.key (EC P-256, CN=localhost, IP:127.0.0.1), owned by
# postgres, for the client-facing TLS of glassgate and pgbouncer.
make_tls_cert() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
  chown postgres "$work/tls.key" "$work/tls.crt"
}

# start_pgbouncer PASSWORD: pgbouncer for database bench (role bench, PASSWORD) in session mode, client TLS
# offered, server TLS required, auth_type ${PGB_AUTH:-any}, run as postgres in $work/pgb. Sets pb_port and,
# once it accepts, pb_pid.
start_pgbouncer() {
  pb_port=$(free_port)
  mkdir -p "$work/pgb" && chown postgres "$work/pgb"
  cat >"$work/pgb/pgbouncer.ini" <<INI
[databases]
bench = host=$GG_PG_HOST port=$GG_PG_PORT dbname=bench user=bench password=$1
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $pb_port
unix_socket_dir =
auth_type = ${PGB_AUTH:-any}
auth_file = $work/pgb/userlist.txt
pool_mode = session
max_client_conn = 200
default_pool_size = 50
client_tls_sslmode = prefer
client_tls_cert_file = $work/tls.crt
client_tls_key_file = $work/tls.key
server_tls_sslmode = require
logfile = $work/pgb/pgbouncer.log
pidfile = $work/pgb/pgbouncer.pid
INI
  printf '"bench" "%s"\n' "$1" >"$work/pgb/userlist.txt"
  chown postgres "$work/pgb/pgbouncer.ini" "$work/pgb/userlist.txt"
  chmod 600 "$work/pgb/userlist.txt"
  runuser -u postgres -- pgbouncer "$work/pgb/pgbouncer.ini" >/dev/null 2>&1 &
  pids+=($!)
  wait_port "$pb_port"
  pb_pid=$(cat "$work/pgb/pgbouncer.pid")
}

# start_gg BINARY NAME PASSWORD [TARGET_KEYS]: glassgate BINARY with its own state in $work/NAME, PostgreSQL
# listener on a free port (client TLS with $work/tls.*, plaintext allowed), target "bench" (role bench,
# backend password PASSWORD, backend TLS) with more TOML lines TARGET_KEYS. Sets NAME_pid and NAME_port.
start_gg() {
  local bin=$1 name=$2 password=$3 target_keys=${4:-} port
  port=$(free_port)
  mkdir -p "$work/$name"
  cp "$work/tls.crt" "$work/tls.key" "$work/$name/"
  cat >"$work/$name/glassgate.toml" <<TOML
[server]
state_dir = "state"
admin_socket = "state/admin.sock"
[listen]
postgres = "127.0.0.1:$port"
allow_plaintext = true
[tls]
cert_file = "tls.crt"
key_file = "tls.key"
[idp]
issuer = "$GG_IDP_ISSUER"
client_id = "glassgate"
[[target]]
name = "bench"
protocol = "postgres"
address = "$GG_PG_HOST:$GG_PG_PORT"
database = "bench"
backend_user = "bench"
tls = "require"
allow = ["alice"]
$target_keys
TOML
  printf '%s' "$password" | "$bin" secret set bench --config "$work/$name/glassgate.toml" 2>/dev/null
  "$bin" serve --config "$work/$name/glassgate.toml" --log-level warn 2>"$work/$name/serve.log" &
  pids+=($!)
  wait_port "$port"
  eval "${name}_pid=$!; ${name}_port=$port"
}

# start_pg_targets [TARGET_KEYS]: what the PostgreSQL benchmarks compare with a direct connection, for
# role bench ($pw): pgbouncer, glassgate ($GG) and, when $GG_BASELINE names one, an older glassgate binary
# (TARGET_KEYS: more keys for their target). Sets `targets` (direct pgbouncer glassgate [baseline]) and
# `token` (alice's, from a whole device-code sign-in at the peers' IdP).
start_pg_targets() {
  make_tls_cert
  start_pgbouncer "$pw"
  start_gg "$GG" glassgate "$pw" "${1:-}"
  targets=(direct pgbouncer glassgate)
  if [ -n "${GG_BASELINE:-}" ]; then
    start_gg "$GG_BASELINE" baseline "$pw" "${1:-}"
    targets+=(baseline)
  fi
  token=$(node "$root/tests/peers/idp/device-login.mjs" --issuer "$GG_IDP_ISSUER" --client-id glassgate --user alice)
}

# The PostgreSQL targets: direct, pgbouncer, glassgate and baseline (a second glassgate binary), with
# role bench's password in $pw, alice's token in $token and the client's sslmode in $sslmode.
# conn TARGET: its connection string.
conn() {
  case $1 in
    direct) echo "host=$GG_PG_HOST port=$GG_PG_PORT user=bench dbname=bench sslmode=$sslmode" ;;
    pgbouncer) echo "host=127.0.0.1 port=$pb_port user=bench dbname=bench sslmode=$sslmode" ;;
    glassgate) echo "host=127.0.0.1 port=$glassgate_port user=alice dbname=bench sslmode=$sslmode" ;;
    baseline) echo "host=127.0.0.1 port=$baseline_port user=alice dbname=bench sslmode=$sslmode" ;;
  esac
}
# password TARGET: what the client sends as its password.
password() { case $1 in glassgate|baseline) echo "$token" ;; *) echo "$pw" ;; esac; }
# proc_of TARGET: the pid of its proxy process (empty for direct).
proc_of() { case $1 in glassgate) echo "$glassgate_pid" ;; baseline) echo "$baseline_pid" ;; pgbouncer) echo "$pb_pid" ;; *) echo "" ;; esac; }

# ssh_target_toml NAME: a [[target]] table for the peers' sshd (host key pinned, backend user), to which
# the caller appends more keys.
ssh_target_toml() {
  cat <<TOML
[[target]]
name = "$1"
protocol = "ssh"
address = "127.0.0.1:$GG_SSHD_PORT"
host_key = "$GG_SSHD_HOST_KEY"
backend_user = "$GG_SSHD_USER"
TOML
}

# ticks PID: user + system CPU ticks of a process so far (see hz).
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# selected NAME: true when $WORKLOADS is empty or lists NAME.
selected() { [ -z "${WORKLOADS:-}" ] && return 0; for x in $WORKLOADS; do [ "$x" = "$1" ] && return 0; done; return 1; }

# med NUMBER...: "median (min-max)".
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f (%.3f-%.3f)", m, a[1], a[NR]}'; }
