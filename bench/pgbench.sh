#!/usr/bin/env bash
# PostgreSQL path benchmark: direct vs pgbouncer (session mode) vs glassgate (recording on), with and
# without client TLS (the backend leg of pgbouncer and glassgate is TLS either way),
# interleaved in one run so each round compares like with like. Prints per-round ratios
# glassgate/direct and glassgate/pgbouncer (median, min-max) and glassgate's CPU µs per transaction.
#
#   bench/pgbench.sh                 # defaults: 3 rounds x 5 s per run
#   ROUNDS=5 SECONDS_PER_RUN=10 bench/pgbench.sh
#   BUILD=/work/pg-build bench/pgbench.sh                # another build directory
#   GG_BASELINE=/tmp/glassgate-old bench/pgbench.sh      # also an older glassgate binary, same rounds
#   WORKLOADS="select-simple-c1 connect-c1" bench/pgbench.sh   # a subset
#   CLIENT_TLS=on bench/pgbench.sh                       # only with client TLS (default: "on off")
#   POOL_SIZE=0 bench/pgbench.sh                         # glassgate without backend connection reuse (default 8,
#                                                        # as pgbouncer keeps its server connections)
#   PGB_AUTH=md5 bench/pgbench.sh                        # pgbouncer authenticates its clients (md5, as in the
#                                                        # Debian package's pgbouncer.ini; also scram-sha-256);
#                                                        # default any: no client authentication at all
#
# Needs a build (build/proxy/glassgate, build/tests/harness/gg-peers) and scripts/install-deps.sh.
# Recording cannot be switched off in glassgate (it is mandatory by design), so there is no
# "recording off" column.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
ROUNDS=${ROUNDS:-3}
CLIENT_TLS=${CLIENT_TLS:-on off}
SECS=${SECONDS_PER_RUN:-5}
BUILD=${BUILD:-$root/build}
GG="$BUILD/proxy/glassgate"
PEERS="$BUILD/tests/harness/gg-peers"
GG_BASELINE=${GG_BASELINE:-}
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
# Plaintext client connections for the "without client TLS" runs (the test peer accepts TLS only).
hba=$(PGPASSWORD="$GG_PG_PASSWORD" psql -qXtA "host=$GG_PG_HOST port=$GG_PG_PORT user=$GG_PG_SUPERUSER dbname=postgres sslmode=require" -c "show hba_file")
echo "host all all 127.0.0.1/32 scram-sha-256" >>"$hba"
PGPASSWORD="$GG_PG_PASSWORD" psql -qXtA "host=$GG_PG_HOST port=$GG_PG_PORT user=$GG_PG_SUPERUSER dbname=postgres sslmode=require" -c "select pg_reload_conf()" >/dev/null
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
printf '"bench" "%s"\n' "$pw" >"$work/pgb/userlist.txt"
chown postgres "$work/pgb/pgbouncer.ini" "$work/pgb/userlist.txt"
chmod 600 "$work/pgb/userlist.txt"
runuser -u postgres -- pgbouncer "$work/pgb/pgbouncer.ini" >/dev/null 2>&1 &
pids+=($!)

# glassgate (and optionally a baseline binary with its own state): start_gg BINARY NAME
start_gg() {
  local bin=$1 name=$2 port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
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
pool_size = ${POOL_SIZE:-8}
TOML
  printf '%s' "$pw" | "$bin" secret set bench --config "$work/$name/glassgate.toml" 2>/dev/null
  "$bin" serve --config "$work/$name/glassgate.toml" --log-level warn 2>"$work/$name/serve.log" &
  pids+=($!)
  for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done
  eval "${name}_pid=$!; ${name}_port=$port"
}
start_gg "$GG" glassgate
gg_pid=$glassgate_pid; gg_port=$glassgate_port
targets=(direct pgbouncer glassgate)
if [ -n "$GG_BASELINE" ]; then
  start_gg "$GG_BASELINE" baseline
  targets+=(baseline)
fi
for _ in $(seq 1 100); do (exec 3<>/dev/tcp/127.0.0.1/$pb_port) 2>/dev/null && break; sleep 0.1; done
pb_pid=$(cat "$work/pgb/pgbouncer.pid")
token=$(node "$root/tests/peers/idp/device-login.mjs" --issuer "$GG_IDP_ISSUER" --client-id glassgate --user alice)

# conn TARGET: the connection string, with or without client TLS ($sslmode).
conn() {
  case $1 in
    direct) echo "host=$GG_PG_HOST port=$GG_PG_PORT user=bench dbname=bench sslmode=$sslmode" ;;
    pgbouncer) echo "host=127.0.0.1 port=$pb_port user=bench dbname=bench sslmode=$sslmode" ;;
    glassgate) echo "host=127.0.0.1 port=$gg_port user=alice dbname=bench sslmode=$sslmode" ;;
    baseline) echo "host=127.0.0.1 port=$baseline_port user=alice dbname=bench sslmode=$sslmode" ;;
  esac
}
password() { case $1 in glassgate|baseline) echo "$token" ;; *) echo "$pw" ;; esac; }
proc_of() { case $1 in glassgate) echo "$gg_pid" ;; baseline) echo "$baseline_pid" ;; pgbouncer) echo "$pb_pid" ;; *) echo "" ;; esac; }
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

selected() { [ -z "${WORKLOADS:-}" ] && return 0; for x in $WORKLOADS; do [ "$x" = "$1" ] && return 0; done; return 1; }
printf '%-26s %-6s %9s %9s %9s %9s %10s %12s %10s %10s %10s\n' workload round direct pgbouncer glassgate baseline \
  "gg/direct" "gg/pgbouncer" "gg/base" "gg_us/tx" "pgb_us/tx" 
summary=()
for tls in $CLIENT_TLS; do
for w in "${workloads[@]}"; do
  base=${w%%|*}; args=${w#*|}
  selected "$base" || continue
  case $tls in on) sslmode=require; name="$base-tls" ;; *) sslmode=disable; name="$base-plain" ;; esac
  r_direct=(); r_pgb=(); r_base=(); c_gg=(); c_pgb=(); c_base=()
  for round in $(seq 1 "$ROUNDS"); do
    declare -A tps=() cpu=()
    tps[baseline]=0; cpu[baseline]=""
    for target in "${targets[@]}"; do
      p=$(proc_of $target)
      [ -n "$p" ] && before=$(ticks $p)
      out=$(PGPASSWORD=$(password $target) pgbench -n -T "$SECS" $args "$(conn $target)" 2>&1) || { echo "$target $name failed: $out" >&2; exit 1; }
      [ -n "$p" ] && after=$(ticks $p)
      t=$(echo "$out" | awk '/^tps = /{print $3; exit}')
      n=$(echo "$out" | awk '/number of transactions actually processed/{split($NF,a,"/"); print a[1]; exit}')
      tps[$target]=$t
      cpu[$target]=""
      if [ -n "$p" ] && [ -n "$n" ] && [ "$n" -gt 0 ]; then
        cpu[$target]=$(awk -v d=$((after-before)) -v hz="$hz" -v n="$n" 'BEGIN{printf "%.1f", d*1e6/hz/n}')
      fi
    done
    rd=$(awk -v a="${tps[glassgate]}" -v b="${tps[direct]}" 'BEGIN{printf "%.3f", a/b}')
    rp=$(awk -v a="${tps[glassgate]}" -v b="${tps[pgbouncer]}" 'BEGIN{printf "%.3f", a/b}')
    rb=$(awk -v a="${tps[glassgate]}" -v b="${tps[baseline]}" 'BEGIN{if (b > 0) printf "%.3f", a/b; else printf "-"}')
    r_direct+=("$rd"); r_pgb+=("$rp"); [ "$rb" != - ] && r_base+=("$rb")
    c_gg+=("${cpu[glassgate]:-0}"); c_pgb+=("${cpu[pgbouncer]:-0}"); [ -n "${cpu[baseline]}" ] && c_base+=("${cpu[baseline]}")
    printf '%-26s %-6s %9.0f %9.0f %9.0f %9.0f %10s %12s %10s %10s %10s\n' "$name" "$round" "${tps[direct]}" "${tps[pgbouncer]}" \
      "${tps[glassgate]}" "${tps[baseline]}" "$rd" "$rp" "$rb" "${cpu[glassgate]}" "${cpu[pgbouncer]}"
  done
  med() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END{m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f (%.3f-%.3f)", m, a[1], a[NR]}'; }
  line=$(printf '%-26s gg/direct %s   gg/pgbouncer %s   cpu us/tx gg %s pgbouncer %s' "$name" "$(med "${r_direct[@]}")" \
    "$(med "${r_pgb[@]}")" "$(med "${c_gg[@]}")" "$(med "${c_pgb[@]}")")
  [ ${#r_base[@]} -gt 0 ] && line+=$(printf '   gg/baseline %s   baseline cpu %s' "$(med "${r_base[@]}")" "$(med "${c_base[@]}")")
  summary+=("$line")
done
done
echo
echo "median (min-max) over $ROUNDS rounds of ${SECS}s; -tls: client TLS, -plain: none (backend legs always TLS); pgbouncer auth_type ${PGB_AUTH:-any}:"
printf '%s\n' "${summary[@]}"
