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
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
: "${ROUNDS:=3}" "${CLIENT_TLS:=on off}"
SECS=${SECONDS_PER_RUN:-5}

bench_start gg-bench --postgres --idp
create_bench_db
export PGSSLMODE=require
PGPASSWORD=$pw pgbench -i -s 10 -q "host=$GG_PG_HOST port=$GG_PG_PORT user=bench dbname=bench" >/dev/null 2>&1
start_pg_targets "pool_size = ${POOL_SIZE:-8}"

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
  line=$(printf '%-26s gg/direct %s   gg/pgbouncer %s   cpu us/tx gg %s pgbouncer %s' "$name" "$(med "${r_direct[@]}")" \
    "$(med "${r_pgb[@]}")" "$(med "${c_gg[@]}")" "$(med "${c_pgb[@]}")")
  [ ${#r_base[@]} -gt 0 ] && line+=$(printf '   gg/baseline %s   baseline cpu %s' "$(med "${r_base[@]}")" "$(med "${c_base[@]}")")
  summary+=("$line")
done
done
echo
echo "median (min-max) over $ROUNDS rounds of ${SECS}s; -tls: client TLS, -plain: none (backend legs always TLS); pgbouncer auth_type ${PGB_AUTH:-any}:"
printf '%s\n' "${summary[@]}"
