#!/usr/bin/env bash
# Bulk-data benchmark of the PostgreSQL path: `\copy (select ...) to FILE` (COPY OUT) and `\copy t from FILE`
# (COPY IN) through direct, pgbouncer (session mode) and glassgate (recording on), interleaved per round so
# each round compares like with like. Prints per-round MB/s, the ratios glassgate/direct and
# glassgate/pgbouncer (median, min-max over the rounds) and the CPU seconds per GiB moved of glassgate
# and of pgbouncer (from /proc/PID/stat). The backend legs of pgbouncer and glassgate are TLS.
#
#   bench/copy.sh                         # defaults: 3 rounds, COPY OUT ~256 MB, COPY IN ~128 MB, client TLS
#   ROUNDS=5 bench/copy.sh
#   OUT_MB=512 IN_MB=256 bench/copy.sh    # transfer sizes (approximate, in 10^6 bytes)
#   BUILD=/work/pg-build bench/copy.sh    # another build directory (default: build/)
#   GG_BASELINE=/tmp/glassgate-old bench/copy.sh   # also an older glassgate binary, same rounds
#   CLIENT_TLS="on off" bench/copy.sh     # also without client TLS (default: on)
#   WORKLOADS=copy-out bench/copy.sh      # a subset: copy-out, copy-in
#   OUT_FILE=/tmp/x.out bench/copy.sh     # where COPY OUT writes (default /dev/null: no disk in the measurement)
#
# Needs a build (build/proxy/glassgate, build/tests/harness/gg-peers) and scripts/install-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
ROUNDS=${ROUNDS:-3}
OUT_MB=${OUT_MB:-256}
IN_MB=${IN_MB:-128}
CLIENT_TLS=${CLIENT_TLS:-on}
OUT_FILE=${OUT_FILE:-/dev/null}
BUILD=${BUILD:-$root/build}
GG="$BUILD/proxy/glassgate"
PEERS="$BUILD/tests/harness/gg-peers"
GG_BASELINE=${GG_BASELINE:-}
[ -x "$GG" ] && [ -x "$PEERS" ] || { echo "build first: cmake --preset default && cmake --build --preset default" >&2; exit 1; }

work=$(mktemp -d /tmp/gg-bench-copy-XXXXXX)
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
su_conn="host=$GG_PG_HOST port=$GG_PG_PORT user=$GG_PG_SUPERUSER dbname=postgres sslmode=require"
PGPASSWORD="$GG_PG_PASSWORD" psql -qX "$su_conn" -c "create role bench login password '$pw'" -c "create database bench owner bench" >/dev/null
# Plaintext client connections for CLIENT_TLS=off (the test peer accepts TLS only).
hba=$(PGPASSWORD="$GG_PG_PASSWORD" psql -qXtA "$su_conn" -c "show hba_file")
echo "host all all 127.0.0.1/32 scram-sha-256" >>"$hba"
PGPASSWORD="$GG_PG_PASSWORD" psql -qXtA "$su_conn" -c "select pg_reload_conf()" >/dev/null

# Certificates for the client-facing TLS of glassgate and pgbouncer.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=localhost \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
chown postgres "$work/tls.key" "$work/tls.crt"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# pgbouncer: session mode, client TLS, server TLS, runs as postgres.
pb_port=$(free_port)
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

sslmode=require
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
now() { date +%s.%N; }

# Rows of ~1000 bytes: an id, a space and 30 md5s (cheap for the server, not trivially compressible).
out_rows=$(( OUT_MB * 1000000 / 1000 ))
in_rows=$(( IN_MB * 1000000 / 1000 ))
out_sql="\\copy (select g || ' ' || repeat(md5(g::text), 31) from generate_series(1, $out_rows) g) to '$OUT_FILE'"
# The COPY IN file, made once, directly; an unlogged table, truncated before every run.
in_file="$work/copy-in.txt"
PGPASSWORD=$pw psql -qX -v ON_ERROR_STOP=1 "$(conn direct)" \
  -c "create unlogged table copy_in (g int, v text)" \
  -c "\\copy (select g, repeat(md5(g::text), 31) from generate_series(1, $in_rows) g) to '$in_file'" >/dev/null
in_bytes=$(stat -c %s "$in_file")
out_bytes=$(PGPASSWORD=$pw psql -qX "$(conn direct)" -c "\\copy (select g || ' ' || repeat(md5(g::text), 31) from generate_series(1, $out_rows) g) to stdout" | wc -c)
echo "COPY OUT: $out_bytes bytes ($out_rows rows) to $OUT_FILE; COPY IN: $in_bytes bytes ($in_rows rows) from a file"

# run_one TARGET WORKLOAD: prints "seconds ticks" (ticks of the target's proxy process, empty for direct).
run_one() {
  local target=$1 w=$2 p before=0 after=0 t0 t1 out
  p=$(proc_of "$target")
  if [ "$w" = copy-in ]; then
    PGPASSWORD=$pw psql -qX "$(conn direct)" -c "truncate copy_in" >/dev/null
  fi
  [ -n "$p" ] && before=$(ticks "$p")
  t0=$(now)
  if [ "$w" = copy-out ]; then
    out=$(PGPASSWORD=$(password "$target") psql -qX -v ON_ERROR_STOP=1 "$(conn "$target")" -c "$out_sql" 2>&1) ||
      { echo "$target $w failed: $out" >&2; exit 1; }
  else
    out=$(PGPASSWORD=$(password "$target") psql -qX -v ON_ERROR_STOP=1 "$(conn "$target")" -c "\\copy copy_in from '$in_file'" 2>&1) ||
      { echo "$target $w failed: $out" >&2; exit 1; }
  fi
  t1=$(now)
  [ -n "$p" ] && after=$(ticks "$p")
  echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", b-a}') $([ -n "$p" ] && echo $((after-before)))"
}

selected() { [ -z "${WORKLOADS:-}" ] && return 0; for x in $WORKLOADS; do [ "$x" = "$1" ] && return 0; done; return 1; }
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END{m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f (%.3f-%.3f)", m, a[1], a[NR]}'; }
printf '%-16s %-6s %10s %10s %10s %10s %10s %12s %10s %12s %12s\n' workload round "direct" "pgbouncer" "glassgate" "baseline" \
  "gg/direct" "gg/pgbouncer" "gg/base" "gg_cpu_s/GiB" "pgb_cpu_s/GiB"
summary=()
for tls in $CLIENT_TLS; do
for w in copy-out copy-in; do
  selected "$w" || continue
  case $tls in on) sslmode=require; name="$w-tls" ;; *) sslmode=disable; name="$w-plain" ;; esac
  case $w in copy-out) bytes=$out_bytes ;; *) bytes=$in_bytes ;; esac
  r_direct=(); r_pgb=(); r_base=(); c_gg=(); c_pgb=(); m_gg=()
  for round in $(seq 1 "$ROUNDS"); do
    declare -A mbs=() cpu=()
    mbs[baseline]=-; cpu[baseline]=""
    for target in "${targets[@]}"; do
      read -r secs tk < <(run_one "$target" "$w")
      mbs[$target]=$(awk -v b="$bytes" -v s="$secs" 'BEGIN{printf "%.1f", b/1e6/s}')
      cpu[$target]=""
      [ -n "${tk:-}" ] && cpu[$target]=$(awk -v t="$tk" -v hz="$hz" -v b="$bytes" 'BEGIN{printf "%.2f", t/hz/(b/1073741824)}')
      tk=""
    done
    rd=$(awk -v a="${mbs[glassgate]}" -v b="${mbs[direct]}" 'BEGIN{printf "%.3f", a/b}')
    rp=$(awk -v a="${mbs[glassgate]}" -v b="${mbs[pgbouncer]}" 'BEGIN{printf "%.3f", a/b}')
    rb=$(awk -v a="${mbs[glassgate]}" -v b="${mbs[baseline]}" 'BEGIN{if (b > 0) printf "%.3f", a/b; else printf "-"}')
    r_direct+=("$rd"); r_pgb+=("$rp"); [ "$rb" != - ] && r_base+=("$rb")
    m_gg+=("${mbs[glassgate]}"); c_gg+=("${cpu[glassgate]:-0}"); c_pgb+=("${cpu[pgbouncer]:-0}")
    printf '%-16s %-6s %10s %10s %10s %10s %10s %12s %10s %12s %12s\n' "$name" "$round" "${mbs[direct]}" "${mbs[pgbouncer]}" \
      "${mbs[glassgate]}" "${mbs[baseline]}" "$rd" "$rp" "$rb" "${cpu[glassgate]}" "${cpu[pgbouncer]}"
  done
  line=$(printf '%-16s gg MB/s %s   gg/direct %s   gg/pgbouncer %s   cpu s/GiB gg %s pgbouncer %s' "$name" "$(med "${m_gg[@]}")" \
    "$(med "${r_direct[@]}")" "$(med "${r_pgb[@]}")" "$(med "${c_gg[@]}")" "$(med "${c_pgb[@]}")")
  [ ${#r_base[@]} -gt 0 ] && line+=$(printf '   gg/baseline %s' "$(med "${r_base[@]}")")
  summary+=("$line")
done
done
echo
echo "MB/s = 10^6 bytes of COPY data per second of psql's wall time (connection included); median (min-max) over $ROUNDS rounds;"
echo "-tls: client TLS, -plain: none (backend legs always TLS); pgbouncer auth_type ${PGB_AUTH:-any}:"
printf '%s\n' "${summary[@]}"
