#!/usr/bin/env bash
# Same-machine throughput comparison: Coco (one node, `coco bench`) against a
# single-member etcd v3.6 (etcdload, a closed-loop Put client on
# go.etcd.io/etcd/client/v3), alternating the two for ROUNDS rounds, then the
# medians and the coco/etcd ratio. Everything listens on 127.0.0.1 only.
#
# Usage (from anywhere):  tools/etcdbench/run.sh
# Knobs (environment):    ROUNDS=3 CLIENTS=64 CONNS=8 DURATION=10s SIZE=100
#                         CROSSCHECK=1  also run etcd's own `benchmark put` once
#                         ETCD_TLS=1    etcd serves HTTPS with client-certificate
#                                       authentication (TLS 1.3, P-256), as coco
#                                       does; default 0: etcd's default, plaintext
#                         KEEP=1        keep the scratch directory (logs, JSON)
#                         TMPDIR=...    where the scratch directory goes (its
#                                       disk is the one both systems fsync to)
# See docs/performance.md for the method and the recorded results.
set -euo pipefail

ROUNDS="${ROUNDS:-3}"
CLIENTS="${CLIENTS:-64}"
CONNS="${CONNS:-8}"           # etcd's gRPC connections (coco: one HTTP/1.1 connection per client; COCO_HTTP2=1 shares CONNS HTTP/2 ones)
COCO_HTTP2="${COCO_HTTP2:-0}"
DURATION="${DURATION:-10s}"   # in seconds ("10s"); warm-up included (both tools: 10% of it, at most 1s)
SIZE="${SIZE:-100}"
CROSSCHECK="${CROSSCHECK:-1}"
KEEP="${KEEP:-0}"
ETCD_TLS="${ETCD_TLS:-0}"

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/etcdbench.XXXXXX")"
pids=()  # processes this script started and has not yet stopped

# stop PID SIGNAL: signal one process we started, wait up to 30 s, then KILL.
stop() {
  local pid="$1" sig="$2"
  kill -"$sig" "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 300); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "warning: pid $pid ignored SIG$sig for 30s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
  local keep=()
  for p in "${pids[@]}"; do [ "$p" != "$pid" ] && keep+=("$p"); done
  pids=("${keep[@]+"${keep[@]}"}")
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for p in "${pids[@]+"${pids[@]}"}"; do
    stop "$p" INT
  done
  if [ "$KEEP" = 1 ] || [ "$rc" != 0 ]; then
    echo "scratch directory kept: $TMP" >&2
  else
    rm -rf "$TMP"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Three free consecutive ports on 127.0.0.1 for etcd (client, peer, and
# client HTTP when ETCD_TLS=1).
pick_ports() {
  local p
  for p in $(seq 23790 3 23990); do
    if port_free "$p" && port_free $((p + 1)) && port_free $((p + 2)); then
      echo "$p"
      return 0
    fi
  done
  echo "no three free ports in 23790-23992" >&2
  return 1
}

field() { # field NAME FILE: a number from a flat JSON object
  grep -o "\"$1\":[-0-9.e+]*" "$2" | head -1 | cut -d: -f2
}

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

echo "== build ($TMP)"
(cd "$repo" && go build -o "$TMP/coco" ./cmd/coco)
(cd "$here" && go build -o "$TMP/etcd" go.etcd.io/etcd/server/v3 &&
  go build -o "$TMP/etcdload" ./etcdload &&
  if [ "$CROSSCHECK" = 1 ]; then go build -o "$TMP/benchmark" go.etcd.io/etcd/v3/tools/benchmark; fi)
"$TMP/etcd" --version | head -1
echo "coco: built from $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$repo" diff --quiet HEAD -- . ':(exclude)tools/etcdbench' ':(exclude)docs' 2>/dev/null || echo ' plus uncommitted changes')"
echo "go: $(go version)"
echo "cores: $(nproc); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

# With ETCD_TLS=1: a CA, a server certificate for 127.0.0.1 and a client
# certificate, all ECDSA P-256 like coco's identities.
ETCD_CLIENT_TLS=() CURL_TLS=() ETCD_SERVER_TLS=() SCHEME=http
if [ "$ETCD_TLS" = 1 ]; then
  pki="$TMP/pki"
  mkdir -p "$pki"
  (
    cd "$pki"
    ec() { openssl ecparam -name prime256v1 -genkey -noout -out "$1"; }
    ec ca.key
    openssl req -x509 -new -key ca.key -subj /CN=etcdbench-ca -days 2 -out ca.pem
    ec server.key
    openssl req -new -key server.key -subj /CN=127.0.0.1 -out server.csr
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -out server.pem \
      -extfile <(printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n')
    ec client.key
    openssl req -new -key client.key -subj /CN=etcdbench-client -out client.csr
    openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -out client.pem \
      -extfile <(printf 'extendedKeyUsage=clientAuth\n')
  ) >/dev/null 2>&1
  SCHEME=https
  ETCD_SERVER_TLS=(--cert-file "$pki/server.pem" --key-file "$pki/server.key" --client-cert-auth
    --trusted-ca-file "$pki/ca.pem" --tls-min-version TLS1.3)
  ETCD_CLIENT_TLS=(--cacert "$pki/ca.pem" --cert "$pki/client.pem" --key "$pki/client.key")
  CURL_TLS=(--cacert "$pki/ca.pem" --cert "$pki/client.pem" --key "$pki/client.key")
fi

start_etcd() { # start_etcd NAME: fresh data dir, defaults (fsync on), 127.0.0.1
  local name="$1"
  ETCD_PORT="$(pick_ports)"
  local c="$SCHEME://127.0.0.1:$ETCD_PORT" p="http://127.0.0.1:$((ETCD_PORT + 1))" h=()
  if [ "$ETCD_TLS" = 1 ]; then
    # With TLS on a port that serves both gRPC and HTTP, etcd serves gRPC
    # through Go's HTTP server (slow; its log warns "not recommended for
    # production", etcd-io/etcd#15402): give HTTP its own port, as advised.
    h=(--listen-client-http-urls "https://127.0.0.1:$((ETCD_PORT + 2))")
  fi
  "$TMP/etcd" --name bench --data-dir "$TMP/$name.etcd" \
    --listen-client-urls "$c" --advertise-client-urls "$c" "${h[@]+"${h[@]}"}" \
    --listen-peer-urls "$p" --initial-advertise-peer-urls "$p" \
    --initial-cluster "bench=$p" "${ETCD_SERVER_TLS[@]+"${ETCD_SERVER_TLS[@]}"}" >"$TMP/$name.etcd.log" 2>&1 &
  ETCD_PID=$!
  ETCD_HTTP_URL="${h[1]:-$c}"
  pids+=("$ETCD_PID")
  for _ in $(seq 1 300); do
    if curl -sf "${CURL_TLS[@]+"${CURL_TLS[@]}"}" "${h[1]:-$c}/health" 2>/dev/null | grep -q '"health":"true"'; then return 0; fi
    kill -0 "$ETCD_PID" 2>/dev/null || { tail -20 "$TMP/$name.etcd.log" >&2; return 1; }
    sleep 0.1
  done
  echo "etcd not healthy after 30s; see $TMP/$name.etcd.log" >&2
  return 1
}

run_etcd() { # run_etcd ROUND
  local name="etcd-r$1"
  start_etcd "$name"
  echo "-- round $1 etcd   (load average $(cut -d' ' -f1 /proc/loadavg))"
  local s0 t0 t1
  s0="$(cpu_s "$ETCD_PID")" t0="$(now_s)"
  { time timeout 120 "$TMP/etcdload" --endpoint "127.0.0.1:$ETCD_PORT" "${ETCD_CLIENT_TLS[@]+"${ETCD_CLIENT_TLS[@]}"}" --clients "$CLIENTS" --conns "$CONNS" \
    --duration "$DURATION" --size "$SIZE" --json >"$TMP/$name.json" 2>"$TMP/$name.err"; } 2>"$TMP/$name.client_cpu"
  t1="$(now_s)"
  record_cpu "$name" "$(cpu_s "$ETCD_PID")" "$s0" "$t0" "$t1"
  curl -sf "${CURL_TLS[@]+"${CURL_TLS[@]}"}" "$ETCD_HTTP_URL/metrics" >"$TMP/$name.metrics" || true
  stop "$ETCD_PID" TERM
  cat "$TMP/$name.json"
}

run_coco() { # run_coco ROUND
  local name="coco-r$1" ws="$TMP/coco-r$1.ws"
  "$TMP/coco" sandbox --workspace "$ws" --port 0 >"$TMP/$name.sandbox.out" 2>"$TMP/$name.sandbox.err" &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 1 1200); do
    grep -q '^Coco sandbox ready' "$TMP/$name.sandbox.out" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { cat "$TMP/$name.sandbox.err" >&2; return 1; }
    sleep 0.1
  done
  grep -q '^Coco sandbox ready' "$TMP/$name.sandbox.out" || { echo "sandbox not ready after 120s" >&2; return 1; }
  echo "-- round $1 coco   (load average $(cut -d' ' -f1 /proc/loadavg))"
  # The sandbox runs the node as its child process: that is the server.
  local node s0 t0 t1
  node="$(grep -o '"pid": *[0-9]*' "$ws/sandbox.json" | head -1 | grep -o '[0-9]*$' || pgrep -P "$pid" | head -1)"
  s0="$(cpu_s "$node")" t0="$(now_s)"
  local proto=()
  if [ "$COCO_HTTP2" = 1 ]; then proto=(--http2 --clients-per-conn $(((CLIENTS + CONNS - 1) / CONNS))); fi
  { time timeout 120 "$TMP/coco" bench --workspace "$ws" --clients "$CLIENTS" --duration "$DURATION" --size "$SIZE" \
    "${proto[@]}" --json >"$TMP/$name.json" 2>"$TMP/$name.err"; } 2>"$TMP/$name.client_cpu"
  t1="$(now_s)"
  record_cpu "$name" "$(cpu_s "$node")" "$s0" "$t0" "$t1"
  local addr
  addr="$(grep -o '"rpc_address": *"[^"]*"' "$ws/sandbox.json" | head -1 | cut -d'"' -f4)"
  curl -sf --cacert "$ws/service_cert.pem" "https://$addr/node/metrics" >"$TMP/$name.metrics" || true
  stop "$pid" INT
  cat "$TMP/$name.json"
}

settle() { sync; sleep 2; }

# CPU accounting: the machine has 2 cores shared by server and load
# generator, so CPU per operation says more than throughput alone.
TICK="$(getconf CLK_TCK)"
TIMEFORMAT='%U %S'  # bash `time`: the load generator's user and system CPU seconds
now_s() { date +%s.%N; }
cpu_s() { awk -v t="$TICK" '{sub(/^.*\) /, ""); print ($12 + $13) / t}' "/proc/$1/stat" 2>/dev/null || echo 0; }
record_cpu() { # record_cpu NAME SERVER_CPU_AFTER SERVER_CPU_BEFORE T0 T1 -> NAME.cpu: "server_cores client_cores"
  awk -v a="$2" -v b="$3" -v t0="$4" -v t1="$5" -v c="$(cat "$TMP/$1.client_cpu")" \
    'BEGIN{split(c, u, " "); w = t1 - t0; printf "%.2f %.2f\n", (a - b) / w, (u[1] + u[2]) / w}' >"$TMP/$1.cpu"
}

for r in $(seq 1 "$ROUNDS"); do
  # Alternate which goes first so a drift in the machine's load (or the
  # disk's state) does not favour one side.
  if [ $((r % 2)) = 1 ]; then
    run_etcd "$r"; settle; run_coco "$r"; settle
  else
    run_coco "$r"; settle; run_etcd "$r"; settle
  fi
done

echo
echo "== results: $CLIENTS clients, $SIZE-byte values, $DURATION per run (warm-up included), $ROUNDS rounds, etcd client TLS: $([ "$ETCD_TLS" = 1 ] && echo on || echo off)"
echo "   srv/cli = CPU cores used by the server / by the load generator during the run (2 on this machine: $(nproc))"
fmt='%-6s | %9s %6s %6s %4s %4s | %9s %6s %6s %4s %4s | %5s\n'
printf "$fmt" round etcd/s p50ms p99ms srv cli coco/s p50ms p99ms srv cli ratio
E=() C=() EP50=() EP99=() CP50=() CP99=() ES=() EC=() CS=() CC=()
for r in $(seq 1 "$ROUNDS"); do
  e="$TMP/etcd-r$r.json" c="$TMP/coco-r$r.json"
  E+=("$(field committed_tx_per_s "$e")"); EP50+=("$(field p50_ms "$e")"); EP99+=("$(field p99_ms "$e")")
  C+=("$(field committed_tx_per_s "$c")"); CP50+=("$(field p50_ms "$c")"); CP99+=("$(field p99_ms "$c")")
  read -r es ec <"$TMP/etcd-r$r.cpu"; ES+=("$es"); EC+=("$ec")
  read -r cs cc <"$TMP/coco-r$r.cpu"; CS+=("$cs"); CC+=("$cc")
  i=$((r - 1))
  printf "$fmt" "$r" "$(printf %.0f "${E[$i]}")" "${EP50[$i]}" "${EP99[$i]}" "$es" "$ec" \
    "$(printf %.0f "${C[$i]}")" "${CP50[$i]}" "${CP99[$i]}" "$cs" "$cc" \
    "$(awk -v c="${C[$i]}" -v e="${E[$i]}" 'BEGIN{printf "%.2f", c/e}')"
done
me="$(median "${E[@]}")" mc="$(median "${C[@]}")"
printf "$fmt" median "$(printf %.0f "$me")" "$(median "${EP50[@]}")" "$(median "${EP99[@]}")" "$(median "${ES[@]}")" "$(median "${EC[@]}")" \
  "$(printf %.0f "$mc")" "$(median "${CP50[@]}")" "$(median "${CP99[@]}")" "$(median "${CS[@]}")" "$(median "${CC[@]}")" \
  "$(awk -v c="$mc" -v e="$me" 'BEGIN{printf "%.2f", c/e}')"
echo "   (median row: ratio = median coco / median etcd)"
# CPU time per operation, from the medians: µs of server (and client) CPU per committed write.
awk -v es="$(median "${ES[@]}")" -v ec="$(median "${EC[@]}")" -v cs="$(median "${CS[@]}")" -v cc="$(median "${CC[@]}")" \
  -v e="$me" -v c="$mc" 'BEGIN{printf "CPU per op (medians): etcd server %.0f µs + client %.0f µs; coco server %.0f µs + client %.0f µs\n", es/e*1e6, ec/e*1e6, cs/c*1e6, cc/c*1e6}'
# Group commit, from each server's own metrics over its whole life (start-up
# and warm-up included): writes made durable per fsync, and the mean fsync.
metric() { awk -v m="$1" '$1 == m {print $2}' "$2" 2>/dev/null | head -1; }
echo "group commit (server metrics): writes per fsync, mean fsync ms"
for r in $(seq 1 "$ROUNDS"); do
  em="$TMP/etcd-r$r.metrics" cm="$TMP/coco-r$r.metrics"
  awk -v r="$r" -v ep="$(metric etcd_mvcc_put_total "$em")" -v en="$(metric etcd_disk_wal_fsync_duration_seconds_count "$em")" \
    -v es="$(metric etcd_disk_wal_fsync_duration_seconds_sum "$em")" \
    -v cb="$(metric coco_ledger_batch_entries_sum "$cm")" -v cn="$(metric coco_ledger_batch_entries_count "$cm")" \
    -v cs="$(metric coco_ledger_sync_seconds_sum "$cm")" -v cc="$(metric coco_ledger_sync_seconds_count "$cm")" \
    'BEGIN{ printf "  round %s: etcd %s puts/fsync, fsync %s ms | coco %s entries/fsync (one of them the signature), write+fsync %s ms\n", r,
      (en > 0 ? sprintf("%.1f", ep/en) : "?"), (en > 0 ? sprintf("%.2f", es/en*1000) : "?"),
      (cn > 0 ? sprintf("%.1f", cb/cn) : "?"), (cc > 0 ? sprintf("%.2f", cs/cc*1000) : "?") }'
done
for f in "$TMP"/etcd-r*.json "$TMP"/coco-r*.json; do
  if ! grep -q '"errors":{}' "$f"; then echo "note: errors in $(basename "$f"): $(grep -o '"errors":{[^}]*}' "$f")"; fi
done

if [ "$CROSSCHECK" = 1 ]; then
  # etcd's own load generator on a fresh member, as a check on etcdload:
  # a fixed number of Puts sized to take about DURATION at etcd's median rate.
  total="$(awk -v r="$me" -v d="${DURATION%s}" 'BEGIN{printf "%d", r*d}')"
  start_etcd crosscheck
  echo
  echo "== cross-check: etcd's benchmark put --clients $CLIENTS --conns $CONNS --val-size $SIZE --total $total (no warm-up)"
  timeout 180 "$TMP/benchmark" --endpoints "127.0.0.1:$ETCD_PORT" "${ETCD_CLIENT_TLS[@]+"${ETCD_CLIENT_TLS[@]}"}" --clients "$CLIENTS" --conns "$CONNS" \
    put --key-size 16 --sequential-keys --key-space-size 1000000000 --val-size "$SIZE" --total "$total" \
    >"$TMP/crosscheck.txt" 2>&1 || true
  stop "$ETCD_PID" TERM
  grep -E 'Requests/sec|Average|50% in|99% in' "$TMP/crosscheck.txt" | sed 's/^ */  /' || cat "$TMP/crosscheck.txt"
fi
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
