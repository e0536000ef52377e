#!/usr/bin/env bash
# SSH path benchmark: direct OpenSSH to the test sshd vs an OpenSSH double hop (a second ssh through
# the same sshd with -W, the same decrypt/re-encrypt work a proxy does) vs glassgate (recording on),
# interleaved in one run so each round compares like with like. Per workload and round: the three
# figures and the ratios glassgate/direct and glassgate/hop; then median (min-max) over the rounds,
# and glassgate's CPU time from /proc/<pid>/stat.
#
#   bench/ssh.sh                       # defaults: 3 rounds
#   ROUNDS=5 BUILD=/path/to/build bench/ssh.sh
#   SIZE_MB=256 SCP_MB=128 bench/ssh.sh  # smaller transfers
#   SSH_CIPHER=aes128-gcm@openssh.com bench/ssh.sh   # every client leg with this cipher (default: OpenSSH's choice)
#
# Workloads: upload (head -c | ssh 'cat >/dev/null'), download (ssh 'head -c' > /dev/null), scp of a
# file on tmpfs (SFTP mode, to a file on tmpfs: the sshd is local), login-to-exit of `ssh HOST true` (median of LOGINS), and
# keystroke echo round trip under a remote pty (bench/ssh_echo.c: 1-byte writes to `ssh -tt HOST cat`
# with the pty raw, p50/p99 of ECHOES samples).
#
# glassgate signs in once through the device-code prompt (approved by the test IdP's scripted
# approver via SSH_ASKPASS); with [ssh] sso_cache every later connection offering the same client
# key is admitted without approval, so the human approval is excluded from every figure.
# Needs a build (proxy/glassgate, tests/harness/gg-peers), gcc, node, and scripts/install-deps.sh.
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
: "${ROUNDS:=3}" "${SIZE_MB:=1024}" "${SCP_MB:=512}" "${LOGINS:=10}" "${ECHOES:=300}"

bench_start gg-sshbench --sshd --idp
shm=$(mktemp -d /dev/shm/gg-sshbench-XXXXXX)
temp_dirs+=("$shm")

gcc -O2 -o "$work/ssh_echo" "$root/bench/ssh_echo.c"

# glassgate with the sshd as target web01 (host key pinned, the sshd's client key as backend secret).
gg_port=$(free_port)
cat >"$work/glassgate.toml" <<TOML
[server]
state_dir = "state"
admin_socket = "state/admin.sock"
[listen]
ssh = "127.0.0.1:$gg_port"
[ssh]
sso_cache = "1h"
[idp]
issuer = "$GG_IDP_ISSUER"
client_id = "glassgate"
$(ssh_target_toml web01)
allow = ["alice"]
TOML
"$GG" secret set web01 --config "$work/glassgate.toml" --from-file "$GG_SSHD_CLIENT_KEY" 2>/dev/null
"$GG" serve --config "$work/glassgate.toml" --log-level warn 2>"$work/serve.log" &
gg_pid=$!
pids+=("$gg_pid")
wait_port "$gg_port"
for _ in $(seq 1 50); do [ -s "$work/state/ssh_host_ed25519_key" ] && break; sleep 0.1; done
echo "[127.0.0.1]:$gg_port $(ssh-keygen -y -f "$work/state/ssh_host_ed25519_key" | awk '{print $1" "$2}')" >"$work/gg_known_hosts"

# alice's own client key (what the SSO cache remembers) and the askpass that approves her sign-in.
ssh-keygen -q -t ed25519 -N '' -C alice -f "$work/alice_key"
cat >"$work/askpass.sh" <<SH
#!/bin/sh
url=\$(printf '%s' "\$1" | grep -o 'http[^ )]*' | head -n1)
echo "\$1" >> "$work/askpass.log"
if [ -n "\$url" ]; then
  node "$root/tests/peers/idp/approve.mjs" --verification-uri-complete "\$url" --user alice >> "$work/approve.log" 2>&1
fi
echo
SH
chmod 755 "$work/askpass.sh"
export SSH_ASKPASS="$work/askpass.sh" SSH_ASKPASS_REQUIRE=force DISPLAY=:0

common=(-F /dev/null -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o LogLevel=ERROR
        -o ConnectTimeout=10 -o IdentitiesOnly=yes)
[ -n "${SSH_CIPHER:-}" ] && common+=(-c "$SSH_CIPHER")
sshd_opts=("${common[@]}" -i "$GG_SSHD_CLIENT_KEY" -o "UserKnownHostsFile=$GG_SSHD_KNOWN_HOSTS" -o BatchMode=yes)
sshd_dest="$GG_SSHD_USER@127.0.0.1"
hop_cmd="ssh ${sshd_opts[*]} -W %h:%p -p $GG_SSHD_PORT $sshd_dest"
gg_opts=("${common[@]}" -i "$work/alice_key" -o "UserKnownHostsFile=$work/gg_known_hosts" -o NumberOfPasswordPrompts=1)

# opts TARGET: sets O (options), P (port), D (destination).
opts() {
  case $1 in
    direct) O=("${sshd_opts[@]}"); P=$GG_SSHD_PORT; D=$sshd_dest ;;
    hop) O=("${sshd_opts[@]}" -o "ProxyCommand=$hop_cmd"); P=$GG_SSHD_PORT; D=$sshd_dest ;;
    glassgate) O=("${gg_opts[@]}"); P=$gg_port; D=web01@127.0.0.1 ;;
  esac
}
run_ssh() { local t=$1; shift; opts "$t"; ssh "${O[@]}" -p "$P" "$D" "$@"; }
run_scp() { opts "$1"; scp -q "${O[@]}" -P "$P" "$2" "$D:$shm/sink"; }

# First glassgate sign-in: device code approved by the scripted approver (not timed).
# A target that does not work is reported and skipped, not fatal.
declare -A down=()
run_ssh glassgate true </dev/null || { echo "glassgate sign-in failed (skipped); serve log:" >&2; tail -20 "$work/serve.log" >&2; down[glassgate]=1; }
approvals() { grep -c 'http' "$work/askpass.log" 2>/dev/null || true; }
approvals_before=$(approvals)
for t in direct hop; do run_ssh "$t" true </dev/null || { echo "$t: ssh failed (skipped)" >&2; down[$t]=1; }; done

head -c $((SCP_MB << 20)) /dev/urandom >"$shm/file"
# Whole machine: busy ticks (everything but idle and iowait) summed over all cores.
machine_busy() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }
now_ns() { date +%s%N; }

# measure WORKLOAD TARGET: prints the figure (MB/s for transfers, ms for login, "p50 p99" µs for echo).
measure() {
  local w=$1 t=$2 t0 t1
  [ -z "${down[$t]:-}" ] || return 1
  case $w in
    upload)
      t0=$(now_ns); head -c $((SIZE_MB << 20)) /dev/zero | run_ssh "$t" 'cat >/dev/null'; t1=$(now_ns)
      awk -v mb="$SIZE_MB" -v ns=$((t1 - t0)) 'BEGIN{printf "%.1f", mb*1.048576e6/(ns/1e9)/1e6}' ;;
    download)
      t0=$(now_ns); run_ssh "$t" "head -c $((SIZE_MB << 20)) /dev/zero" </dev/null >/dev/null; t1=$(now_ns)
      awk -v mb="$SIZE_MB" -v ns=$((t1 - t0)) 'BEGIN{printf "%.1f", mb*1.048576e6/(ns/1e9)/1e6}' ;;
    scp)
      t0=$(now_ns); run_scp "$t" "$shm/file" </dev/null; t1=$(now_ns)
      awk -v mb="$SCP_MB" -v ns=$((t1 - t0)) 'BEGIN{printf "%.1f", mb*1.048576e6/(ns/1e9)/1e6}' ;;
    login)
      local xs=()
      for _ in $(seq 1 "$LOGINS"); do
        t0=$(now_ns); run_ssh "$t" true </dev/null; t1=$(now_ns); xs+=($(((t1 - t0) / 1000)))
      done
      printf '%s\n' "${xs[@]}" | sort -n | awk '{a[NR]=$1} END{printf "%.1f", a[int((NR+1)/2)]/1000}' ;;
    echo)
      opts "$t"
      "$work/ssh_echo" "$ECHOES" ssh -tt "${O[@]}" -p "$P" "$D" 'stty raw -echo; printf READY; exec cat' 2>/dev/null |
        awk '{printf "%s/%s", $1, $2}' ;;
  esac
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.3f", a/b; else print "n/a"}'; }

echo "units: upload/download/scp MB/s (higher is better); login ms (median of $LOGINS); echo p50/p99 µs"
echo "gg_cpu: glassgate's own CPU; machine: CPU-seconds per GiB of the whole machine (all processes, $(nproc) cores) direct/hop/glassgate"
printf '%-9s %-5s %14s %14s %14s %9s %9s %14s %16s\n' workload round direct hop glassgate gg/direct gg/hop gg_cpu machine
summary=()
for w in upload download scp login echo; do
  r_d=(); r_h=(); e50=(); e99=()
  for round in $(seq 1 "$ROUNDS"); do
    declare -A v=() mcpu=()
    cpu=""
    for t in direct hop glassgate; do
      before=$(ticks $gg_pid); mbefore=$(machine_busy)
      v[$t]=$(measure "$w" "$t") || { [ -n "${down[$t]:-}" ] || echo "$w via $t failed" >&2; v[$t]=0; }
      after=$(ticks $gg_pid); mafter=$(machine_busy)
      case $w in
        upload|download) mcpu[$t]=$(awk -v d=$((mafter - mbefore)) -v hz="$hz" -v mb="$SIZE_MB" 'BEGIN{printf "%.2f", d/hz/(mb/1024)}') ;;
        scp) mcpu[$t]=$(awk -v d=$((mafter - mbefore)) -v hz="$hz" -v mb="$SCP_MB" 'BEGIN{printf "%.2f", d/hz/(mb/1024)}') ;;
        *) mcpu[$t]="" ;;
      esac
      if [ "$t" = glassgate ]; then
        case $w in
          upload|download) cpu=$(awk -v d=$((after - before)) -v hz="$hz" -v mb="$SIZE_MB" 'BEGIN{printf "%.2fs/GiB", d/hz/(mb/1024)}') ;;
          scp) cpu=$(awk -v d=$((after - before)) -v hz="$hz" -v mb="$SCP_MB" 'BEGIN{printf "%.2fs/GiB", d/hz/(mb/1024)}') ;;
          login) cpu=$(awk -v d=$((after - before)) -v hz="$hz" -v n="$LOGINS" 'BEGIN{printf "%.1fms/login", d*1000/hz/n}') ;;
        esac
      fi
    done
    if [ "$w" = echo ]; then
      d50=${v[direct]%/*}; d99=${v[direct]#*/}; g50=${v[glassgate]%/*}; g99=${v[glassgate]#*/}
      h50=${v[hop]%/*}; h99=${v[hop]#*/}
      e50+=($((g50 - d50))); e99+=($((g99 - d99)))
      printf '%-9s %-5s %14s %14s %14s %9s %9s %14s\n' "$w" "$round" "${v[direct]}" "${v[hop]}" "${v[glassgate]}" \
        "$(printf '%+d/%+d' $((g50 - d50)) $((g99 - d99)))" "$(printf '%+d/%+d' $((g50 - h50)) $((g99 - h99)))" ""
      continue
    fi
    rd=$(ratio "${v[glassgate]}" "${v[direct]}"); rh=$(ratio "${v[glassgate]}" "${v[hop]}")
    r_d+=("$rd"); r_h+=("$rh")
    machine=""
    [ -n "${mcpu[direct]:-}" ] && machine="${mcpu[direct]}/${mcpu[hop]}/${mcpu[glassgate]}"
    printf '%-9s %-5s %14s %14s %14s %9s %9s %14s %16s\n' "$w" "$round" "${v[direct]}" "${v[hop]}" "${v[glassgate]}" "$rd" "$rh" "$cpu" "$machine"
  done
  if [ "$w" = echo ]; then
    summary+=("$(printf '%-9s gg-direct p50 %s µs   p99 %s µs' "$w" "$(med "${e50[@]}")" "$(med "${e99[@]}")")")
  else
    summary+=("$(printf '%-9s gg/direct %s   gg/hop %s' "$w" "$(med "${r_d[@]}")" "$(med "${r_h[@]}")")")
  fi
done
echo
echo "median (min-max) over $ROUNDS rounds:"
printf '%s\n' "${summary[@]}"
extra=$(( $(approvals) - approvals_before ))
echo "device-code approvals during the timed runs: $extra (0 = every timed glassgate login came from the SSO cache)"
