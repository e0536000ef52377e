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
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
: "${ROUNDS:=3}" "${OUT_MB:=256}" "${IN_MB:=128}" "${CLIENT_TLS:=on}" "${OUT_FILE:=/dev/null}"

bench_start gg-bench-copy --postgres --idp
create_bench_db
start_pg_targets

sslmode=require
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
