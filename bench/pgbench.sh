#!/usr/bin/env bash
# PostgreSQL path benchmark: direct vs pgbouncer (session mode, client TLS) vs glassgate (recording on),
# interleaved in one run so each round compares like with like. Prints per-round ratios
# glassgate/direct and glassgate/pgbouncer (median, min-max) and glassgate's CPU µs per transaction.
#
#   bench/pgbench.sh                 # defaults: 3 rounds x 5 s per run
#   ROUNDS=5 SECONDS_PER_RUN=10 bench/pgbench.sh
#
# Needs a build (build/proxy/glassgate, build/tests/harness/gg-peers) and scripts/install-deps.sh.
# Recording cannot be switched off in glassgate (it is mandatory by design), so there is no
# "recording off" column.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
ROUNDS=${ROUNDS:-3}
SECS=${SECONDS_PER_RUN:-5}
GG="$root/build/proxy/glassgate"
PEERS="$root/build/tests/harness/gg-peers"
[ -x "$GG" ] && [ -x "$PEERS" ] || { echo "build first: cmake --preset default && cmake --build --preset default" >&2; exit 1; }

work=$(mktemp -d /tmp/gg-bench-XXXXXX)
chmod 755 "$work"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT INT TERM

"$PEERS" --dir "$work/peers" --postgres --idp --env-file "$work/peers.env" >"$work/peers.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 600); do [ -s "$work/peers.env" ] && break; sleep 0.1; done
[ -s "$work/peers.env" ] || { echo "peers did not start:"; tail "$work/peers.log"; exit 1; } >&2
source "$work/peers.env"

pw=$(openssl rand -hex 16)
PGPASSWORD="$GG_PG_PASSWORD" psql -qX "host=$GG_PG_HOST port=$GG_PG_PORT user=$GG_PG_SUPERUSER dbname=postgres sslmode=require" \
  -c "create role bench login password '$pw'" -c "create database bench owner bench" >/dev/null
export PGSSLMODE=require
PGPASSWORD=$pw pgbench -i -s 10 -q "host=$GG_PG_HOST port=$GG_PG_PORT user=bench dbname=bench" >/dev/null 2>&1

# Certificates for the client-facing TLS of glassgate and pgbouncer.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
chown postgres "$work/tls.key" "$work/tls.crt"

# pgbouncer: session mode, client TLS, server TLS, runs as postgres.
pb_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/pgb" && chown postgres "$work/pgb"
cat >"$work/pgb/pgbouncer.ini" <<INI
[databases]
bench = host=$GG_PG_HOST port=$GG_PG_PORT dbname=bench user=bench password=$pw
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $pb_port
unix_socket_dir =
auth_type = any
pool_mode = session
max_client_conn = 200
default_pool_size = 50
client_tls_sslmode = require
client_tls_cert_file = $work/tls.crt
client_tls_key_file = $work/tls.key
server_tls_sslmode = require
logfile = $work/pgb/pgbouncer.log
pidfile = $work/pgb/pgbouncer.pid
INI
chown postgres "$work/pgb/pgbouncer.ini"
runuser -u postgres -- pgbouncer "$work/pgb/pgbouncer.ini" >/dev/null 2>&1 &
pids+=($!)

# glassgate
gg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/glassgate.toml" <<TOML
[server]
state_dir = "state"
admin_socket = "state/admin.sock"
[listen]
postgres = "127.0.0.1:$gg_port"
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
TOML
printf '%s' "$pw" | "$GG" secret set bench --config "$work/glassgate.toml" 2>/dev/null
"$GG" serve --config "$work/glassgate.toml" --log-level warn 2>"$work/serve.log" &
gg_pid=$!
pids+=($gg_pid)
for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$gg_port) 2>/dev/null && break; sleep 0.1; done
for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$pb_port) 2>/dev/null && break; sleep 0.1; done
token=$(node "$root/tests/peers/idp/device-login.mjs" --issuer "$GG_IDP_ISSUER" --client-id glassgate --user alice)

conn() {
  case $1 in
    direct) echo "host=$GG_PG_HOST port=$GG_PG_PORT user=bench dbname=bench sslmode=require" ;;
    pgbouncer) echo "host=127.0.0.1 port=$pb_port user=bench dbname=bench sslmode=require" ;;
    glassgate) echo "host=127.0.0.1 port=$gg_port user=alice dbname=bench sslmode=require" ;;
  esac
}
password() { [ "$1" = glassgate ] && echo "$token" || echo "$pw"; }
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# name|pgbench arguments
workloads=(
  "select-simple-c1|-S -M simple -c 1"
  "select-simple-c8|-S -M simple -c 8 -j 2"
  "select-extended-c1|-S -M extended -c 1"
  "select-extended-c8|-S -M extended -c 8 -j 2"
  "select-prepared-c1|-S -M prepared -c 1"
  "select-prepared-c8|-S -M prepared -c 8 -j 2"
  "tpcb-c8|-M simple -c 8 -j 2"
  "connect-c1|-S -M simple -c 1 -C"
)

printf '%-20s %-8s %10s %10s %10s %18s %18s %12s\n' workload round direct pgbouncer glassgate "gg/direct" "gg/pgbouncer" "gg_cpu_us/tx"
summary=()
for w in "${workloads[@]}"; do
  name=${w%%|*}; args=${w#*|}
  r_direct=(); r_pgb=()
  for round in $(seq 1 "$ROUNDS"); do
    declare -A tps=()
    cpu_us=""
    for target in direct pgbouncer glassgate; do
      before=$(ticks $gg_pid)
      out=$(PGPASSWORD=$(password $target) pgbench -n -T "$SECS" $args "$(conn $target)" 2>&1) || { echo "$target $name failed: $out" >&2; exit 1; }
      after=$(ticks $gg_pid)
      t=$(echo "$out" | awk '/^tps = /{print $3; exit}')
      n=$(echo "$out" | awk '/number of transactions actually processed/{split($NF,a,"/"); print a[1]; exit}')
      tps[$target]=$t
      if [ "$target" = glassgate ] && [ -n "$n" ] && [ "$n" -gt 0 ]; then
        cpu_us=$(awk -v d=$((after-before)) -v hz="$hz" -v n="$n" 'BEGIN{printf "%.1f", d*1e6/hz/n}')
      fi
    done
    rd=$(awk -v a="${tps[glassgate]}" -v b="${tps[direct]}" 'BEGIN{printf "%.3f", a/b}')
    rp=$(awk -v a="${tps[glassgate]}" -v b="${tps[pgbouncer]}" 'BEGIN{printf "%.3f", a/b}')
    r_direct+=("$rd"); r_pgb+=("$rp")
    printf '%-20s %-8s %10.0f %10.0f %10.0f %18s %18s %12s\n' "$name" "$round" "${tps[direct]}" "${tps[pgbouncer]}" "${tps[glassgate]}" "$rd" "$rp" "$cpu_us"
  done
  med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END{m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f (%.3f-%.3f)", m, a[1], a[NR]}'; }
  summary+=("$(printf '%-20s gg/direct %s   gg/pgbouncer %s' "$name" "$(med "${r_direct[@]}")" "$(med "${r_pgb[@]}")")")
done
echo
echo "median (min-max) over $ROUNDS rounds of ${SECS}s, TLS on the client side everywhere:"
printf '%s\n' "${summary[@]}"
