#!/usr/bin/env bash
# Session start benchmark: the shared PostgreSQL state store ([store] postgres, docs/ha.md) vs the embedded
# SQLite store, side by side in one run, with a direct connection to the backend as the reference.
# Every session is a new connection (TCP, client TLS, SSO token as the password for glassgate; SCRAM for
# direct), `select 1`, disconnect, by bench/connect_loop.c (libpq, every session's own times kept):
#   - sessions/s at a fixed concurrency (CLIENTS, default 8) for SECONDS_PER_RUN (default 20 s)
#   - session start latency (connect + authentication + `select 1` answered) p50/p99, at that concurrency
#     and with 1 client (LAT_SECONDS, default 8 s: the start latency without queueing)
#   - CPU µs per session (user+sys from /proc/PID/stat, before the run and after it has settled: no session
#     open and, with the PostgreSQL store, every recording shipped) of glassgate, of the store cluster
#     (postmaster + its children, exited ones included) and of the backend cluster.
# Variants (VARIANTS, default all four), in a rotating order each round:
#   direct          client -> backend PostgreSQL (the test peer, TLS)
#   sqlite          glassgate, state in its state dir (the default; SQLite WAL, synchronous=NORMAL)
#   pgstore         glassgate with [store] postgres on a SEPARATE PostgreSQL 15 cluster (initdb'd into the
#                   work dir, plaintext on 127.0.0.1, default durability: fsync on, synchronous_commit on)
#   pgstore-nosync  the same cluster, another database with synchronous_commit = off (what is left when
#                   commits do not wait for the WAL flush; closer to SQLite's synchronous=NORMAL)
# The backend legs of glassgate are TLS, client legs TLS (sslmode=require) for every variant.
#
#   bench/store.sh                                   # defaults: warm-up, 3 rounds x (20 s c8 + 8 s c1)
#   ROUNDS=5 SECONDS_PER_RUN=30 bench/store.sh
#   VARIANTS="direct sqlite pgstore" bench/store.sh  # a subset (direct is the reference for the ratios)
#   CLIENTS=16 bench/store.sh                        # another concurrency for the rate runs
#   POOL_SIZE=0 bench/store.sh                       # glassgate target pool_size (default 8, as bench/pgbench.sh;
#                                                    # 0: every session opens its own backend connection)
#   STORE_SETTINGS="-c shared_buffers=256MB" bench/store.sh   # more settings for the store cluster
#   STORE_STATEMENTS=1 bench/store.sh                # also: the store's statements per session (pg_stat_statements,
#                                                    # preloaded in the store cluster: costs it some CPU)
#   BUILD=/work/other-build bench/store.sh
#
# Needs a build (build/proxy/glassgate, build/tests/harness/gg-peers), scripts/install-deps.sh and a C
# compiler with libpq (connect_loop is compiled into the work dir). Run as root (PostgreSQL runs as
# postgres), like the other benchmarks.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
: "${ROUNDS:=3}" "${CLIENTS:=8}" "${SECONDS_PER_RUN:=20}" "${LAT_SECONDS:=8}" "${WARMUP_SECONDS:=3}"
: "${POOL_SIZE:=8}" "${VARIANTS:=direct sqlite pgstore pgstore-nosync}" "${STORE_SETTINGS:=}" "${STORE_STATEMENTS:=0}"
[ "$STORE_STATEMENTS" = 1 ] && STORE_SETTINGS+=" -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
pg_bin=$(ls -d /usr/lib/postgresql/15/bin 2>/dev/null || dirname "$(command -v postgres || command -v initdb)")
sslmode=require
t_script=$(date +%s)

# Stops glassgate and the store cluster (fast shutdown, so the final `wait` of cleanup returns) before the
# generic cleanup of lib.sh (peers, temp dirs).
store_cleanup() {
  local p
  for p in ${gg_pids:-}; do kill "$p" 2>/dev/null || true; done
  for p in ${gg_pids:-}; do while kill -0 "$p" 2>/dev/null; do sleep 0.1; done; done
  if [ -n "${store_data:-}" ] && [ -f "$store_data/postmaster.pid" ]; then
    runuser -u postgres -- "$pg_bin/pg_ctl" -D "$store_data" stop -m fast -w >/dev/null 2>&1 || true
  fi
  cleanup
}

bench_start gg-bench-store --postgres --idp
trap store_cleanup EXIT INT TERM
gg_pids=""

echo "== setup: $(date -u '+%F %T') UTC, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
cc -O2 -o "$work/connect_loop" "$root/bench/connect_loop.c" -I"$(pg_config --includedir)" -lpq -lpthread
loop="$work/connect_loop"

# The backend: role bench ($pw), database bench, plaintext from 127.0.0.1 allowed too (we use TLS).
create_bench_db
backend_data=$(superuser_psql -qXtA -c "show data_directory")
make_tls_cert

# --- the store cluster: a PostgreSQL 15 of its own (its load is measured apart from the backend's).
store_dir="$work/store"
mkdir -p "$store_dir" && chown postgres "$store_dir"
store_data="$store_dir/data"
store_port=$(free_port)
store_pw=$(openssl rand -hex 16)
runuser -u postgres -- "$pg_bin/initdb" -D "$store_data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
  -E UTF8 --no-locale --no-sync --no-instructions >"$store_dir/initdb.log" 2>&1 || { cat "$store_dir/initdb.log" >&2; exit 1; }
# shellcheck disable=SC2086  # STORE_SETTINGS: several words
runuser -u postgres -- "$pg_bin/postgres" -D "$store_data" -p "$store_port" -c listen_addresses=127.0.0.1 \
  -c unix_socket_directories="$store_dir" -c logging_collector=off $STORE_SETTINGS >"$store_dir/postgres.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$store_port" && break; sleep 0.1; done
store_sql() { psql -qXtA -v ON_ERROR_STOP=1 -h "$store_dir" -p "$store_port" -U postgres -d postgres "$@"; }
store_sql -c "create role glassgate login password '$store_pw'" -c "create database glassgate owner glassgate" \
  -c "create database glassgate_nosync owner glassgate" \
  -c "alter database glassgate_nosync set synchronous_commit = off" >/dev/null
[ "$STORE_STATEMENTS" = 1 ] && store_sql -c "create extension pg_stat_statements" >/dev/null
printf '127.0.0.1:%s:glassgate:glassgate:%s\n127.0.0.1:%s:glassgate_nosync:glassgate:%s\n' \
  "$store_port" "$store_pw" "$store_port" "$store_pw" >"$work/pgpass"
chmod 600 "$work/pgpass"
store_desc="separate PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') cluster on 127.0.0.1:$store_port (initdb in $store_data, sslmode=disable), fsync=$(store_sql -c 'show fsync'), synchronous_commit=$(store_sql -c 'show synchronous_commit') (pgstore-nosync: off), shared_buffers=$(store_sql -c 'show shared_buffers')"

# --- glassgate: one serve per glassgate variant, each with its own state dir, listener and admin HTTP.
# start_variant NAME STORE_DB (empty: SQLite). Sets port_NAME, admin_NAME, pid_NAME.
start_variant() {
  local name=$1 db=$2 port admin dir server_extra="" store_section="" pid
  port=$(free_port); admin=$(free_port); dir="$work/$name"
  mkdir -p "$dir"
  cp "$work/tls.crt" "$work/tls.key" "$dir/"
  if [ -n "$db" ]; then
    server_extra='instance = "bench"'
    store_section="[store]
postgres = \"host=127.0.0.1 port=$store_port dbname=$db user=glassgate sslmode=disable passfile=$work/pgpass\""
  fi
  cat >"$dir/glassgate.toml" <<TOML
[server]
state_dir = "state"
admin_socket = "state/admin.sock"
$server_extra
$store_section
[listen]
postgres = "127.0.0.1:$port"
allow_plaintext = true
[admin]
listen = "127.0.0.1:$admin"
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
pool_size = $POOL_SIZE
TOML
  printf '%s' "$pw" | "$GG" secret set bench --config "$dir/glassgate.toml" >"$dir/secret.log" 2>&1 ||
    { echo "glassgate secret set ($name) failed:" >&2; cat "$dir/secret.log" >&2; exit 1; }
  "$GG" serve --config "$dir/glassgate.toml" --log-level warn 2>"$dir/serve.log" &
  pid=$!
  pids+=("$pid"); gg_pids+=" $pid"
  wait_port "$port"
  kill -0 "$pid" 2>/dev/null || { echo "glassgate ($name) did not start:" >&2; tail -n 20 "$dir/serve.log" >&2; exit 1; }
  eval "port_${name//-/_}=$port; admin_${name//-/_}=$admin; pid_${name//-/_}=$pid"
}

read -ra variants <<<"$VARIANTS"
for v in "${variants[@]}"; do
  case $v in
    direct) ;;
    sqlite) start_variant sqlite "" ;;
    pgstore) start_variant pgstore glassgate ;;
    pgstore-nosync) start_variant pgstore-nosync glassgate_nosync ;;
    *) echo "unknown variant $v (direct sqlite pgstore pgstore-nosync)" >&2; exit 2 ;;
  esac
done
token=$(node "$root/tests/peers/idp/device-login.mjs" --issuer "$GG_IDP_ISSUER" --client-id glassgate --user alice)

var() { local n="$1_${2//-/_}"; echo "${!n:-}"; }
conn_of() {
  case $1 in
    direct) echo "host=$GG_PG_HOST port=$GG_PG_PORT user=bench dbname=bench sslmode=$sslmode" ;;
    *) echo "host=127.0.0.1 port=$(var port "$1") user=alice dbname=bench sslmode=$sslmode" ;;
  esac
}
password_of() { case $1 in direct) echo "$pw" ;; *) echo "$token" ;; esac; }

# cluster_ticks DATA_DIR: CPU ticks of a PostgreSQL cluster so far: the postmaster (its reaped children
# included: cutime, cstime) and its living children.
cluster_ticks() {
  local pm kids
  pm=$(head -n 1 "$1/postmaster.pid")
  kids=$(pgrep -P "$pm" | sed 's|.*|/proc/&/stat|' | tr '\n' ' ' || true)
  # shellcheck disable=SC2086
  { awk '{print $14+$15+$16+$17}' "/proc/$pm/stat"; [ -z "$kids" ] || awk '{print $14+$15}' $kids 2>/dev/null || true; } |
    awk '{s+=$1} END{print s+0}'
}
metric() { awk -v m="$2" '$1 == m {print $2; exit}' <<<"$1"; }
# settle NAME: waits (at most 60 s) until glassgate NAME has no session open and no recording left to ship
# into the store; prints the seconds waited.
settle() {
  local t0 m active unshipped
  t0=$(date +%s.%N)
  for _ in $(seq 1 600); do
    m=$(curl -fsS "http://127.0.0.1:$(var admin "$1")/metrics" 2>/dev/null || true)
    active=$(metric "$m" glassgate_sessions_active); unshipped=$(metric "$m" glassgate_recordings_unshipped)
    [ "${active:-1}" = 0 ] && [ "${unshipped:-0}" = 0 ] && break
    sleep 0.1
  done
  awk -v a="$t0" -v b="$(date +%s.%N)" -v ok="$([ "${active:-1}" = 0 ] && [ "${unshipped:-0}" = 0 ] && echo 1)" \
    'BEGIN{printf "%.1fs%s", b-a, ok ? "" : "!"}'
}

# run_loop NAME THREADS SECONDS: the connect_loop line (key=value ...) for variant NAME.
run_loop() {
  local out
  out=$(PGPASSWORD=$(password_of "$1") "$loop" "$(conn_of "$1")" "$2" "$3" 2>"$work/loop.err") ||
    { echo "connect_loop $1 failed: $out $(cat "$work/loop.err")" >&2; exit 1; }
  [ -s "$work/loop.err" ] && echo "  ($1: $(head -c 300 "$work/loop.err"))" >&2
  echo "$out"
}
field() { sed -n "s/.*\b$2=\([^ ]*\).*/\1/p" <<<"$1"; }

echo "== warm-up: ${WARMUP_SECONDS}s per variant, $CLIENTS clients"
for v in "${variants[@]}"; do
  w=$(run_loop "$v" "$CLIENTS" "$WARMUP_SECONDS")
  [ "$v" = direct ] || settle "$v" >/dev/null
  echo "  $v: $(field "$w" rate) sessions/s, $(field "$w" errors) errors"
done

[ "$STORE_STATEMENTS" = 1 ] && store_sql -c "select pg_stat_statements_reset()" >/dev/null
declare -A N=() R=() P50=() P99=() L50=() L99=() CG=() CS=() CB=() RATIO=()
echo
echo "== rounds: sess/s and start latency ms (p50/p99) with $CLIENTS clients for ${SECONDS_PER_RUN}s, then with 1 client for ${LAT_SECONDS}s;"
echo "   CPU us per session of glassgate (gg), the store cluster and the backend cluster; settle: wait after the run until"
echo "   no session is open and every recording is shipped (counted in the CPU; ! = gave up after 60 s)"
printf '%-15s %-5s %8s %7s %6s %8s %8s %8s %8s %8s %8s %10s %7s\n' variant round sess/s sessions errors \
  "p50_c$CLIENTS" "p99_c$CLIENTS" p50_c1 p99_c1 gg_us store_us backend_us settle
for round in $(seq 1 "$ROUNDS"); do
  # rotate the order each round: no variant always runs right after the same neighbour
  n=${#variants[@]}; order=()
  for i in $(seq 0 $((n - 1))); do order+=("${variants[$(((i + round - 1) % n))]}"); done
  declare -A rate=()
  for v in "${order[@]}"; do
    p=$(var pid "$v")
    g0=0; s0=$(cluster_ticks "$store_data"); b0=$(cluster_ticks "$backend_data")
    [ -n "$p" ] && g0=$(ticks "$p")
    out=$(run_loop "$v" "$CLIENTS" "$SECONDS_PER_RUN")
    st=-
    [ "$v" = direct ] || st=$(settle "$v")
    g1=0; s1=$(cluster_ticks "$store_data"); b1=$(cluster_ticks "$backend_data")
    [ -n "$p" ] && g1=$(ticks "$p")
    lat=$(run_loop "$v" 1 "$LAT_SECONDS")
    [ "$v" = direct ] || settle "$v" >/dev/null
    n_s=$(field "$out" sessions)
    per() { awk -v d="$1" -v hz="$hz" -v n="$n_s" 'BEGIN{printf "%.0f", d*1e6/hz/n}'; }
    cg="-"; [ -n "$p" ] && cg=$(per $((g1 - g0)))
    cs=$(per $((s1 - s0))); cb=$(per $((b1 - b0)))
    rate[$v]=$(field "$out" rate)
    N[$v]=$(( ${N[$v]:-0} + n_s + $(field "$lat" sessions) ))
    R[$v]+=" ${rate[$v]}"; P50[$v]+=" $(field "$out" start_p50_ms)"; P99[$v]+=" $(field "$out" start_p99_ms)"
    L50[$v]+=" $(field "$lat" start_p50_ms)"; L99[$v]+=" $(field "$lat" start_p99_ms)"
    CG[$v]+=" $cg"; CS[$v]+=" $cs"; CB[$v]+=" $cb"
    printf '%-15s %-5s %8.1f %7s %6s %8.2f %8.2f %8.2f %8.2f %8s %8s %10s %7s\n' "$v" "$round" "${rate[$v]}" "$n_s" \
      "$(( $(field "$out" errors) + $(field "$lat" errors) ))" "$(field "$out" start_p50_ms)" "$(field "$out" start_p99_ms)" \
      "$(field "$lat" start_p50_ms)" "$(field "$lat" start_p99_ms)" "$cg" "$cs" "$cb" "$st"
  done
  if [ -n "${rate[direct]:-}" ]; then
    for v in "${variants[@]}"; do
      RATIO[$v]+=" $(awk -v a="${rate[$v]}" -v b="${rate[direct]}" 'BEGIN{printf "%.3f", a/b}')"
    done
  fi
  unset rate
done

# medf FORMAT VALUES...: "median (min-max)" with FORMAT for each number; "-" when there are none.
medf() {
  local fmt=$1; shift
  if [ $# -eq 0 ] || [ "$1" = - ]; then echo "-"; return; fi
  printf '%s\n' "$@" | sort -g | awk -v f="$fmt" '{a[NR]=$1} END{m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2;
    printf f " (" f "-" f ")", m, a[1], a[NR]}'
}
echo
echo "== session start: median (min-max) over $ROUNDS rounds; rate runs ${SECONDS_PER_RUN}s with $CLIENTS clients, latency c1 runs ${LAT_SECONDS}s"
echo "   session = new connection (client TLS; direct: SCRAM; glassgate: SSO token) + 'select 1' + disconnect;"
echo "   start latency = connect + auth + 'select 1' answered, as the client sees it; glassgate target pool_size = $POOL_SIZE"
echo "   store: $store_desc"
echo "   CPU us per session (user+sys, until settled): gg = glassgate process, store = store cluster, backend = backend cluster"
printf '%-15s %-21s %-21s %-21s %-24s %-21s %-24s %-18s %-18s %-18s\n' variant "sessions/s" "vs direct" \
  "start p50 ms c$CLIENTS" "start p99 ms c$CLIENTS" "start p50 ms c1" "start p99 ms c1" "gg cpu us/sess" \
  "store cpu us/sess" "backend us/sess"
for v in "${variants[@]}"; do
  # shellcheck disable=SC2086  # word lists
  printf '%-15s %-21s %-21s %-21s %-24s %-21s %-24s %-18s %-18s %-18s\n' "$v" "$(medf %.1f ${R[$v]})" \
    "$(medf %.3f ${RATIO[$v]:--})" "$(medf %.2f ${P50[$v]})" "$(medf %.2f ${P99[$v]})" "$(medf %.2f ${L50[$v]})" \
    "$(medf %.2f ${L99[$v]})" "$(medf %.0f ${CG[$v]})" "$(medf %.0f ${CS[$v]})" "$(medf %.0f ${CB[$v]})"
done
if [ "$STORE_STATEMENTS" = 1 ]; then
  for v in "${variants[@]}"; do
    case $v in pgstore) db=glassgate ;; pgstore-nosync) db=glassgate_nosync ;; *) continue ;; esac
    echo
    echo "== store statements of $v (database $db) per session, over its ${N[$v]} timed sessions (c$CLIENTS and c1 runs):"
    printf '%9s %9s %10s  %s\n' calls/sess mean_ms total_ms/sess statement
    store_sql -F $'\t' -c "select round(s.calls::numeric / ${N[$v]}, 2), round(s.mean_exec_time::numeric, 3),
        round((s.total_exec_time / ${N[$v]})::numeric, 3), left(regexp_replace(s.query, '\s+', ' ', 'g'), 90)
      from pg_stat_statements s join pg_database d on d.oid = s.dbid
      where d.datname = '$db' and s.calls >= ${N[$v]} / 10 order by s.calls desc, s.total_exec_time desc" |
      awk -F '\t' '{printf "%9s %9s %10s  %s\n", $1, $2, $3, $4}'
  done
fi
echo "(store cpu of direct and sqlite: the idle store cluster (heartbeats of the pgstore instances) spread over their sessions)"
echo "== done in $(( $(date +%s) - t_script )) s; load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
