#!/usr/bin/env bash
# Same-machine throughput comparison: Coco (one node, `coco bench`) against a
# single-member etcd v3.6 (etcdload, a closed-loop Put client on
# go.etcd.io/etcd/client/v3), alternating the two for ROUNDS rounds, then the
# medians and the coco/etcd ratio. Everything listens on 127.0.0.1 only.
#
# Usage (from anywhere):  tools/etcdbench/run.sh
#                         MEMBERS=3 tools/etcdbench/run.sh   (3-member etcd
#                         against a 3-node coco sandbox)
# Knobs (environment):    ROUNDS=3 CLIENTS=64 CONNS=8 DURATION=10s SIZE=100
#                         MEMBERS=1     etcd members and coco nodes. With N > 1:
#                                       N etcd processes on 127.0.0.1 (own
#                                       client/peer ports and data dirs, static
#                                       --initial-cluster), etcdload spread
#                                       over all N (followers forward Puts to
#                                       the leader); `coco sandbox --nodes N`,
#                                       `coco bench` spread over its nodes
#                         COCO_TO=all   coco bench --to: all (clients spread over
#                                       the nodes; backups forward writes) or
#                                       primary (leader-aware clients)
#                         ETCD_ONLY=1   run etcd only (no coco build, no coco
#                                       runs, no ratio)
#                         CROSSCHECK=1  also run etcd's own `benchmark put` once
#                         ETCD_TLS=1    etcd serves HTTPS with client-certificate
#                                       authentication (TLS 1.3, P-256), as coco
#                                       does; default 0: etcd's default, plaintext.
#                                       With MEMBERS > 1 the peer (raft) traffic
#                                       is mutual TLS too
#                         KEEP=1        keep the scratch directory (logs, JSON)
#                         TMPDIR=...    where the scratch directory goes (its
#                                       disk is the one both systems fsync to)
# See docs/performance.md for the method and the recorded results.
set -euo pipefail

ROUNDS="${ROUNDS:-3}"
CLIENTS="${CLIENTS:-64}"
CONNS="${CONNS:-8}"           # etcd's gRPC connections (coco: one HTTP/1.1 connection per client; COCO_HTTP2=1 shares CONNS HTTP/2 ones)
COCO_HTTP2="${COCO_HTTP2:-0}"
COCO_TO="${COCO_TO:-all}"     # coco bench --to: all (spread; backups forward writes) or primary (leader-aware clients)
DURATION="${DURATION:-10s}"   # in seconds ("10s"); warm-up included (both tools: 10% of it, at most 1s)
SIZE="${SIZE:-100}"
CROSSCHECK="${CROSSCHECK:-1}"
KEEP="${KEEP:-0}"
ETCD_TLS="${ETCD_TLS:-0}"
MEMBERS="${MEMBERS:-1}"
ETCD_ONLY="${ETCD_ONLY:-0}"
# etcd reads ETCD_* environment variables as flags (and warns about unknown
# ones): keep the knobs out of its environment.
export -n ETCD_TLS ETCD_ONLY
case "$MEMBERS" in
  '' | *[!0-9]* | 0*) echo "MEMBERS must be a positive integer, not '$MEMBERS'" >&2; exit 2 ;;
esac

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/etcdbench.XXXXXX")"
pids=()  # processes this script started and has not yet stopped
ETCD_PIDS=() # the etcd members running now (a subset of pids)

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

exec 8>&2 # the script's stderr, for cleanup (which may run inside a `2>file`)
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  exec 2>&8
  # A running etcd cluster first, leader last (see stop_etcd).
  if [ "${#ETCD_PIDS[@]}" -gt 1 ]; then stop_etcd || true; fi
  # Signal them all at once (a cluster's members then stop together), then
  # wait for each, killing any that takes over 30 s.
  for p in "${pids[@]+"${pids[@]}"}"; do
    kill -INT "$p" 2>/dev/null || true
  done
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

# pick_ports_n N: N blocks of three free consecutive ports (client, peer,
# client HTTP), one per member, as a list of the blocks' first ports.
pick_ports_n() {
  local p got=()
  for p in $(seq 23790 3 23990); do
    if port_free "$p" && port_free $((p + 1)) && port_free $((p + 2)); then
      got+=("$p")
      if [ "${#got[@]}" = "$1" ]; then
        echo "${got[*]}"
        return 0
      fi
    fi
  done
  echo "no $1 blocks of three free ports in 23790-23992" >&2
  return 1
}

field() { # field NAME FILE: a number from a flat JSON object
  grep -o "\"$1\":[-0-9.e+]*" "$2" | head -1 | cut -d: -f2
}

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

echo "== build ($TMP)"
if [ "$ETCD_ONLY" != 1 ]; then (cd "$repo" && go build -o "$TMP/coco" ./cmd/coco); fi
(cd "$here" && go build -o "$TMP/etcd" go.etcd.io/etcd/server/v3 &&
  go build -o "$TMP/etcdload" ./etcdload &&
  if [ "$CROSSCHECK" = 1 ]; then go build -o "$TMP/benchmark" go.etcd.io/etcd/v3/tools/benchmark; fi)
"$TMP/etcd" --version | head -1
[ "$ETCD_ONLY" = 1 ] || echo "coco: built from $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$repo" diff --quiet HEAD -- . ':(exclude)tools/etcdbench' ':(exclude)docs' 2>/dev/null || echo ' plus uncommitted changes')"
echo "go: $(go version)"
echo "cores: $(nproc); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

# With ETCD_TLS=1: a CA, a server certificate for 127.0.0.1 and a client
# certificate, all ECDSA P-256 like coco's identities.
ETCD_CLIENT_TLS=() CURL_TLS=() ETCD_SERVER_TLS=() ETCD_PEER_TLS=() SCHEME=http PEER_SCHEME=http
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
  if [ "$MEMBERS" != 1 ]; then
    # Members talk raft over mutual TLS too: the server certificate (for
    # 127.0.0.1, serverAuth and clientAuth) serves as every member's peer
    # certificate. (--tls-min-version applies to peers as well.)
    PEER_SCHEME=https
    ETCD_PEER_TLS=(--peer-cert-file "$pki/server.pem" --peer-key-file "$pki/server.key" --peer-client-cert-auth
      --peer-trusted-ca-file "$pki/ca.pem")
  fi
fi

# Both start functions set ETCD_PIDS (one per member), ETCD_EPS (the client
# endpoints host:port, comma-separated) and ETCD_HTTP_URLS (one per member,
# for /health and /metrics).
start_etcd() { # start_etcd NAME
  if [ "$MEMBERS" = 1 ]; then
    start_etcd1 "$@"
    ETCD_PIDS=("$ETCD_PID") ETCD_EPS="127.0.0.1:$ETCD_PORT" ETCD_HTTP_URLS=("$ETCD_HTTP_URL")
  else
    start_etcd_cluster "$@"
  fi
}

# stop_etcd: stop every member with SIGTERM. With several, the followers go
# first (together) and the leader last: a leader stopped while its followers
# are still up tries to hand over leadership, and waits out its request
# timeout (~7 s) if they are on their way down too.
stop_etcd() {
  local i p leader=()
  if [ "${#ETCD_PIDS[@]}" = 1 ]; then
    stop "${ETCD_PIDS[0]}" TERM
    ETCD_PIDS=()
    return
  fi
  for i in "${!ETCD_PIDS[@]}"; do
    # (No `curl | grep -q`: grep's early exit would fail the pipeline.)
    if [ "$(curl -sf --max-time 2 "${CURL_TLS[@]+"${CURL_TLS[@]}"}" "${ETCD_HTTP_URLS[$i]-}/metrics" 2>/dev/null |
      awk '$1 == "etcd_server_is_leader" {print $2}')" = 1 ]; then
      leader+=("${ETCD_PIDS[$i]}")
    else
      kill -TERM "${ETCD_PIDS[$i]}" 2>/dev/null || true
    fi
  done
  for i in "${!ETCD_PIDS[@]}"; do
    case " ${leader[*]-} " in *" ${ETCD_PIDS[$i]} "*) ;; *) stop "${ETCD_PIDS[$i]}" TERM ;; esac
  done
  for p in "${leader[@]+"${leader[@]}"}"; do stop "$p" TERM; done
  ETCD_PIDS=()
}

start_etcd1() { # start_etcd1 NAME: fresh data dir, defaults (fsync on), 127.0.0.1
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

# start_etcd_cluster NAME: MEMBERS members m0..m(N-1) on 127.0.0.1, each with
# its own client, peer (and with TLS client-HTTP) ports and its own fresh data
# dir NAME.mI.etcd under $TMP (the same disk), static bootstrap through
# --initial-cluster, everything else default (fsync on). Healthy = every
# member's /health says true, which needs an elected leader.
start_etcd_cluster() {
  local name="$1" ports i p cluster="" c h
  read -r -a ports <<<"$(pick_ports_n "$MEMBERS")"
  for i in "${!ports[@]}"; do
    cluster+="${cluster:+,}m$i=$PEER_SCHEME://127.0.0.1:$((ports[i] + 1))"
  done
  ETCD_PIDS=() ETCD_EPS="" ETCD_HTTP_URLS=()
  for i in "${!ports[@]}"; do
    p="${ports[$i]}"
    c="$SCHEME://127.0.0.1:$p" h=()
    if [ "$ETCD_TLS" = 1 ]; then
      h=(--listen-client-http-urls "https://127.0.0.1:$((p + 2))") # as in start_etcd1
    fi
    "$TMP/etcd" --name "m$i" --data-dir "$TMP/$name.m$i.etcd" \
      --listen-client-urls "$c" --advertise-client-urls "$c" "${h[@]+"${h[@]}"}" \
      --listen-peer-urls "$PEER_SCHEME://127.0.0.1:$((p + 1))" --initial-advertise-peer-urls "$PEER_SCHEME://127.0.0.1:$((p + 1))" \
      --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token "etcdbench-$name" \
      "${ETCD_SERVER_TLS[@]+"${ETCD_SERVER_TLS[@]}"}" "${ETCD_PEER_TLS[@]+"${ETCD_PEER_TLS[@]}"}" >"$TMP/$name.m$i.etcd.log" 2>&1 &
    ETCD_PIDS+=("$!")
    pids+=("$!")
    ETCD_EPS+="${ETCD_EPS:+,}127.0.0.1:$p"
    ETCD_HTTP_URLS+=("${h[1]:-$c}")
  done
  for _ in $(seq 1 300); do
    local ok=0
    for i in "${!ports[@]}"; do
      if curl -sf "${CURL_TLS[@]+"${CURL_TLS[@]}"}" "${ETCD_HTTP_URLS[$i]}/health" 2>/dev/null | grep -q '"health":"true"'; then ok=$((ok + 1)); fi
      kill -0 "${ETCD_PIDS[$i]}" 2>/dev/null || { tail -20 "$TMP/$name.m$i.etcd.log" >&2; return 1; }
    done
    [ "$ok" = "$MEMBERS" ] && return 0
    sleep 0.1
  done
  echo "etcd cluster not healthy after 30s; see $TMP/$name.m*.etcd.log" >&2
  return 1
}

# metrics_file NAME I: where member/node I's metrics of run NAME go (NAME.metrics
# with one member, as before; NAME.mI.metrics with several).
metrics_file() { if [ "$MEMBERS" = 1 ]; then echo "$TMP/$1.metrics"; else echo "$TMP/$1.m$2.metrics"; fi; }

run_etcd() { # run_etcd ROUND
  local name="etcd-r$1"
  start_etcd "$name"
  echo "-- round $1 etcd   (load average $(cut -d' ' -f1 /proc/loadavg))"
  local s0 t0 t1
  s0="$(cpu_s "${ETCD_PIDS[@]}")" t0="$(now_s)"
  { time timeout --foreground 120 "$TMP/etcdload" --endpoint "$ETCD_EPS" "${ETCD_CLIENT_TLS[@]+"${ETCD_CLIENT_TLS[@]}"}" --clients "$CLIENTS" --conns "$CONNS" \
    --duration "$DURATION" --size "$SIZE" --json >"$TMP/$name.json" 2>"$TMP/$name.err"; } 2>"$TMP/$name.client_cpu"
  t1="$(now_s)"
  record_cpu "$name" "$(cpu_s "${ETCD_PIDS[@]}")" "$s0" "$t0" "$t1"
  local i
  for i in "${!ETCD_HTTP_URLS[@]}"; do
    curl -sf "${CURL_TLS[@]+"${CURL_TLS[@]}"}" "${ETCD_HTTP_URLS[$i]}/metrics" >"$(metrics_file "$name" "$i")" || true
  done
  stop_etcd
  cat "$TMP/$name.json"
}

run_coco() { # run_coco ROUND
  local name="coco-r$1" ws="$TMP/coco-r$1.ws"
  # --nodes always: the sandbox's default node count is not necessarily 1.
  "$TMP/coco" sandbox --workspace "$ws" --port 0 --nodes "$MEMBERS" >"$TMP/$name.sandbox.out" 2>"$TMP/$name.sandbox.err" &
  local pid=$!
  pids+=("$pid")
  for _ in $(seq 1 1200); do
    grep -q '^Coco sandbox ready' "$TMP/$name.sandbox.out" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || { cat "$TMP/$name.sandbox.err" >&2; return 1; }
    sleep 0.1
  done
  grep -q '^Coco sandbox ready' "$TMP/$name.sandbox.out" || { echo "sandbox not ready after 120s" >&2; return 1; }
  echo "-- round $1 coco   (load average $(cut -d' ' -f1 /proc/loadavg))"
  # The sandbox runs the nodes as its child processes: they are the server.
  local node=() s0 t0 t1
  read -r -a node <<<"$(grep -o '"pid": *[0-9]*' "$ws/sandbox.json" | head -"$MEMBERS" | grep -o '[0-9]*$' | tr '\n' ' ' || true)"
  [ "${#node[@]}" -gt 0 ] || read -r -a node <<<"$(pgrep -P "$pid" | head -"$MEMBERS" | tr '\n' ' ')"
  s0="$(cpu_s "${node[@]}")" t0="$(now_s)"
  local proto=()
  if [ "$COCO_HTTP2" = 1 ]; then proto=(--http2 --clients-per-conn $(((CLIENTS + CONNS - 1) / CONNS))); fi
  # coco bench spreads its clients over every node in sandbox.json
  # (COCO_TO=all), or sends them all to the primary (COCO_TO=primary).
  { time timeout --foreground 120 "$TMP/coco" bench --workspace "$ws" --clients "$CLIENTS" --duration "$DURATION" --size "$SIZE" \
    --to "$COCO_TO" "${proto[@]}" --json >"$TMP/$name.json" 2>"$TMP/$name.err"; } 2>"$TMP/$name.client_cpu"
  t1="$(now_s)"
  record_cpu "$name" "$(cpu_s "${node[@]}")" "$s0" "$t0" "$t1"
  local addr i=0
  for addr in $(grep -o '"rpc_address": *"[^"]*"' "$ws/sandbox.json" | head -"$MEMBERS" | cut -d'"' -f4); do
    curl -sf --cacert "$ws/service_cert.pem" "https://$addr/node/metrics" >"$(metrics_file "$name" "$i")" || true
    i=$((i + 1))
  done
  stop "$pid" INT
  cat "$TMP/$name.json"
}

settle() { sync; sleep 2; }

# CPU accounting: the machine has 2 cores shared by server and load
# generator, so CPU per operation says more than throughput alone.
TICK="$(getconf CLK_TCK)"
TIMEFORMAT='%U %S'  # bash `time`: the load generator's user and system CPU seconds
now_s() { date +%s.%N; }
cpu_s() { # cpu_s PID...: user+system CPU seconds of the processes, summed
  local p s=0
  for p in "$@"; do
    s="$(awk -v t="$TICK" -v s="$s" '{sub(/^.*\) /, ""); print s + ($12 + $13) / t}' "/proc/$p/stat" 2>/dev/null || echo "$s")"
  done
  echo "$s"
}
record_cpu() { # record_cpu NAME SERVER_CPU_AFTER SERVER_CPU_BEFORE T0 T1 -> NAME.cpu: "server_cores client_cores"
  awk -v a="$2" -v b="$3" -v t0="$4" -v t1="$5" -v c="$(cat "$TMP/$1.client_cpu")" \
    'BEGIN{split(c, u, " "); w = t1 - t0; printf "%.2f %.2f\n", (a - b) / w, (u[1] + u[2]) / w}' >"$TMP/$1.cpu"
}

for r in $(seq 1 "$ROUNDS"); do
  # Alternate which goes first so a drift in the machine's load (or the
  # disk's state) does not favour one side.
  if [ "$ETCD_ONLY" = 1 ]; then
    run_etcd "$r"; settle
  elif [ $((r % 2)) = 1 ]; then
    run_etcd "$r"; settle; run_coco "$r"; settle
  else
    run_coco "$r"; settle; run_etcd "$r"; settle
  fi
done

echo
cluster_note=""
if [ "$MEMBERS" != 1 ]; then
  cluster_note=", $MEMBERS etcd members (peer TLS: $([ "$ETCD_TLS" = 1 ] && echo on || echo off))$([ "$ETCD_ONLY" = 1 ] || echo " / $MEMBERS coco nodes")"
fi
echo "== results: $CLIENTS clients, $SIZE-byte values, $DURATION per run (warm-up included), $ROUNDS rounds, etcd client TLS: $([ "$ETCD_TLS" = 1 ] && echo on || echo off)$cluster_note, coco bench --to $COCO_TO"
echo "   srv/cli = CPU cores used by the server / by the load generator during the run (2 on this machine: $(nproc))"
if [ "$MEMBERS" != 1 ]; then echo "   srv = all $MEMBERS server processes together"; fi
if [ "$ETCD_ONLY" = 1 ]; then
  fmt='%-6s | %9s %6s %6s %4s %4s\n'
  printf "$fmt" round etcd/s p50ms p99ms srv cli
else
  fmt='%-6s | %9s %6s %6s %4s %4s | %9s %6s %6s %4s %4s | %5s\n'
  printf "$fmt" round etcd/s p50ms p99ms srv cli coco/s p50ms p99ms srv cli ratio
fi
E=() C=() EP50=() EP99=() CP50=() CP99=() ES=() EC=() CS=() CC=()
for r in $(seq 1 "$ROUNDS"); do
  e="$TMP/etcd-r$r.json" c="$TMP/coco-r$r.json"
  E+=("$(field committed_tx_per_s "$e")"); EP50+=("$(field p50_ms "$e")"); EP99+=("$(field p99_ms "$e")")
  read -r es ec <"$TMP/etcd-r$r.cpu"; ES+=("$es"); EC+=("$ec")
  i=$((r - 1))
  if [ "$ETCD_ONLY" = 1 ]; then
    printf "$fmt" "$r" "$(printf %.0f "${E[$i]}")" "${EP50[$i]}" "${EP99[$i]}" "$es" "$ec"
    continue
  fi
  C+=("$(field committed_tx_per_s "$c")"); CP50+=("$(field p50_ms "$c")"); CP99+=("$(field p99_ms "$c")")
  read -r cs cc <"$TMP/coco-r$r.cpu"; CS+=("$cs"); CC+=("$cc")
  printf "$fmt" "$r" "$(printf %.0f "${E[$i]}")" "${EP50[$i]}" "${EP99[$i]}" "$es" "$ec" \
    "$(printf %.0f "${C[$i]}")" "${CP50[$i]}" "${CP99[$i]}" "$cs" "$cc" \
    "$(awk -v c="${C[$i]}" -v e="${E[$i]}" 'BEGIN{printf "%.2f", c/e}')"
done
me="$(median "${E[@]}")"
if [ "$ETCD_ONLY" = 1 ]; then
  printf "$fmt" median "$(printf %.0f "$me")" "$(median "${EP50[@]}")" "$(median "${EP99[@]}")" "$(median "${ES[@]}")" "$(median "${EC[@]}")"
  awk -v es="$(median "${ES[@]}")" -v ec="$(median "${EC[@]}")" -v e="$me" \
    'BEGIN{printf "CPU per op (medians): etcd server %.0f µs + client %.0f µs\n", es/e*1e6, ec/e*1e6}'
else
mc="$(median "${C[@]}")"
printf "$fmt" median "$(printf %.0f "$me")" "$(median "${EP50[@]}")" "$(median "${EP99[@]}")" "$(median "${ES[@]}")" "$(median "${EC[@]}")" \
  "$(printf %.0f "$mc")" "$(median "${CP50[@]}")" "$(median "${CP99[@]}")" "$(median "${CS[@]}")" "$(median "${CC[@]}")" \
  "$(awk -v c="$mc" -v e="$me" 'BEGIN{printf "%.2f", c/e}')"
echo "   (median row: ratio = median coco / median etcd)"
# CPU time per operation, from the medians: µs of server (and client) CPU per committed write.
awk -v es="$(median "${ES[@]}")" -v ec="$(median "${EC[@]}")" -v cs="$(median "${CS[@]}")" -v cc="$(median "${CC[@]}")" \
  -v e="$me" -v c="$mc" 'BEGIN{printf "CPU per op (medians): etcd server %.0f µs + client %.0f µs; coco server %.0f µs + client %.0f µs\n", es/e*1e6, ec/e*1e6, cs/c*1e6, cc/c*1e6}'
fi
# Group commit, from each server's own metrics over its whole life (start-up
# and warm-up included): writes made durable per fsync, and the mean fsync.
metric() { awk -v m="$1" '$1 == m {print $2}' "$2" 2>/dev/null | head -1; }
echo "group commit (server metrics): writes per fsync, mean fsync ms"
if [ "$MEMBERS" = 1 ]; then
for r in $(seq 1 "$ROUNDS"); do
  em="$TMP/etcd-r$r.metrics" cm="$TMP/coco-r$r.metrics"
  if [ "$ETCD_ONLY" = 1 ]; then cm=/dev/null; fi
  awk -v r="$r" -v ep="$(metric etcd_mvcc_put_total "$em")" -v en="$(metric etcd_disk_wal_fsync_duration_seconds_count "$em")" \
    -v es="$(metric etcd_disk_wal_fsync_duration_seconds_sum "$em")" -v eo="$ETCD_ONLY" \
    -v cb="$(metric coco_ledger_batch_entries_sum "$cm")" -v cn="$(metric coco_ledger_batch_entries_count "$cm")" \
    -v cs="$(metric coco_ledger_sync_seconds_sum "$cm")" -v cc="$(metric coco_ledger_sync_seconds_count "$cm")" \
    'BEGIN{ printf "  round %s: etcd %s puts/fsync, fsync %s ms", r,
      (en > 0 ? sprintf("%.1f", ep/en) : "?"), (en > 0 ? sprintf("%.2f", es/en*1000) : "?")
      if (eo == 1) { print ""; exit }
      printf " | coco %s entries/fsync (one of them the signature), write+fsync %s ms\n",
      (cn > 0 ? sprintf("%.1f", cb/cn) : "?"), (cc > 0 ? sprintf("%.2f", cs/cc*1000) : "?") }'
done
else
# Several members: every member fsyncs its own WAL (etcd) or ledger (coco);
# etcd's leader is the member with etcd_server_is_leader 1. Leader changes
# (etcd_server_leader_changes_seen_total, 1 = the first election) show
# elections during the run.
for r in $(seq 1 "$ROUNDS"); do
  line="  round $r: etcd"
  for i in $(seq 0 $((MEMBERS - 1))); do
    em="$(metrics_file "etcd-r$r" "$i")"
    line+="$(awk -v i="$i" -v ep="$(metric etcd_mvcc_put_total "$em")" -v en="$(metric etcd_disk_wal_fsync_duration_seconds_count "$em")" \
      -v es="$(metric etcd_disk_wal_fsync_duration_seconds_sum "$em")" -v l="$(metric etcd_server_is_leader "$em")" \
      -v lc="$(metric etcd_server_leader_changes_seen_total "$em")" \
      'BEGIN{ printf " m%s%s %s/%s ms (leader changes %s)", i, (l == 1 ? "*" : ""),
        (en > 0 ? sprintf("%.1f", ep/en) : "?"), (en > 0 ? sprintf("%.2f", es/en*1000) : "?"), (lc == "" ? "?" : lc) }')"
  done
  if [ "$ETCD_ONLY" != 1 ]; then
    line+=" | coco"
    for i in $(seq 0 $((MEMBERS - 1))); do
      cm="$(metrics_file "coco-r$r" "$i")"
      line+="$(awk -v i="$i" -v cb="$(metric coco_ledger_batch_entries_sum "$cm")" -v cn="$(metric coco_ledger_batch_entries_count "$cm")" \
        -v cs="$(metric coco_ledger_sync_seconds_sum "$cm")" -v cc="$(metric coco_ledger_sync_seconds_count "$cm")" \
        'BEGIN{ printf " n%s %s/%s ms", i, (cn > 0 ? sprintf("%.1f", cb/cn) : "?"), (cc > 0 ? sprintf("%.2f", cs/cc*1000) : "?") }')"
    done
  fi
  echo "$line"
done
echo "  (per member: etcd puts per WAL fsync / mean fsync, * = leader at the end; coco entries per ledger write+fsync / its mean)"
fi
for f in "$TMP"/etcd-r*.json "$TMP"/coco-r*.json; do
  [ -e "$f" ] || continue
  if ! grep -q '"errors":{}' "$f"; then echo "note: errors in $(basename "$f"): $(grep -o '"errors":{[^}]*}' "$f")"; fi
done

if [ "$CROSSCHECK" = 1 ]; then
  # etcd's own load generator on a fresh member (cluster), as a check on
  # etcdload: a fixed number of Puts sized to take about DURATION at etcd's
  # median rate. With several members, benchmark dials connection j to member
  # j mod N and puts client i on connection i mod CONNS.
  total="$(awk -v r="$me" -v d="${DURATION%s}" 'BEGIN{printf "%d", r*d}')"
  start_etcd crosscheck
  echo
  echo "== cross-check: etcd's benchmark put --clients $CLIENTS --conns $CONNS --val-size $SIZE --total $total (no warm-up)$([ "$MEMBERS" = 1 ] || echo ", --endpoints $ETCD_EPS")"
  timeout --foreground 180 "$TMP/benchmark" --endpoints "$ETCD_EPS" "${ETCD_CLIENT_TLS[@]+"${ETCD_CLIENT_TLS[@]}"}" --clients "$CLIENTS" --conns "$CONNS" \
    put --key-size 16 --sequential-keys --key-space-size 1000000000 --val-size "$SIZE" --total "$total" \
    >"$TMP/crosscheck.txt" 2>&1 || true
  stop_etcd
  grep -E 'Requests/sec|Average|50% in|99% in' "$TMP/crosscheck.txt" | sed 's/^ */  /' || cat "$TMP/crosscheck.txt"
fi
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
