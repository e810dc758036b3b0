#!/usr/bin/env bash
# Same-machine throughput comparison: Coco (one node, `coco bench`) against a
# single-member etcd v3.6 (etcdload, a closed-loop Put client on
# go.etcd.io/etcd/client/v3), alternating the two for ROUNDS rounds, then the
# medians and the coco/etcd ratio. Everything listens on 127.0.0.1 only.
#
# Usage (from anywhere):  tools/etcdbench/run.sh
# Knobs (environment):    ROUNDS=3 CLIENTS=64 CONNS=8 DURATION=10s SIZE=100
#                         CROSSCHECK=1  also run etcd's own `benchmark put` once
#                         KEEP=1        keep the scratch directory (logs, JSON)
#                         TMPDIR=...    where the scratch directory goes (its
#                                       disk is the one both systems fsync to)
# See docs/performance.md for the method and the recorded results.
set -euo pipefail

ROUNDS="${ROUNDS:-3}"
CLIENTS="${CLIENTS:-64}"
CONNS="${CONNS:-8}"           # coco bench puts 8 clients on one HTTP/2 connection
DURATION="${DURATION:-10s}"   # warm-up included (both tools: 10% of it, at most 1s)
SIZE="${SIZE:-100}"
CROSSCHECK="${CROSSCHECK:-1}"
KEEP="${KEEP:-0}"

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

# A pair of free consecutive ports on 127.0.0.1 for etcd (client, peer).
pick_ports() {
  local p
  for p in $(seq 23790 2 23990); do
    if port_free "$p" && port_free $((p + 1)); then
      echo "$p"
      return 0
    fi
  done
  echo "no free port pair in 23790-23991" >&2
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
echo "go: $(go version)"
echo "cores: $(nproc); load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

start_etcd() { # start_etcd NAME: fresh data dir, defaults (fsync on), 127.0.0.1
  local name="$1"
  ETCD_PORT="$(pick_ports)"
  local c="http://127.0.0.1:$ETCD_PORT" p="http://127.0.0.1:$((ETCD_PORT + 1))"
  "$TMP/etcd" --name bench --data-dir "$TMP/$name.etcd" \
    --listen-client-urls "$c" --advertise-client-urls "$c" \
    --listen-peer-urls "$p" --initial-advertise-peer-urls "$p" \
    --initial-cluster "bench=$p" >"$TMP/$name.etcd.log" 2>&1 &
  ETCD_PID=$!
  pids+=("$ETCD_PID")
  for _ in $(seq 1 300); do
    if curl -sf "$c/health" 2>/dev/null | grep -q '"health":"true"'; then return 0; fi
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
  timeout 120 "$TMP/etcdload" --endpoint "127.0.0.1:$ETCD_PORT" --clients "$CLIENTS" --conns "$CONNS" \
    --duration "$DURATION" --size "$SIZE" --json >"$TMP/$name.json"
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
  timeout 120 "$TMP/coco" bench --workspace "$ws" --clients "$CLIENTS" --duration "$DURATION" --size "$SIZE" \
    --json >"$TMP/$name.json"
  stop "$pid" INT
  cat "$TMP/$name.json"
}

settle() { sync; sleep 2; }

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
echo "== results: $CLIENTS clients, $SIZE-byte values, $DURATION per run (warm-up included), $ROUNDS rounds"
printf '%-6s %14s %8s %8s %14s %8s %8s %7s\n' round etcd_put/s p50_ms p99_ms coco_tx/s p50_ms p99_ms ratio
E=() C=() EP50=() EP99=() CP50=() CP99=()
for r in $(seq 1 "$ROUNDS"); do
  e="$TMP/etcd-r$r.json" c="$TMP/coco-r$r.json"
  E+=("$(field committed_tx_per_s "$e")"); EP50+=("$(field p50_ms "$e")"); EP99+=("$(field p99_ms "$e")")
  C+=("$(field committed_tx_per_s "$c")"); CP50+=("$(field p50_ms "$c")"); CP99+=("$(field p99_ms "$c")")
  i=$((r - 1))
  printf '%-6s %14.0f %8.2f %8.2f %14.0f %8.2f %8.2f %7.2f\n' "$r" "${E[$i]}" "${EP50[$i]}" "${EP99[$i]}" \
    "${C[$i]}" "${CP50[$i]}" "${CP99[$i]}" "$(awk -v c="${C[$i]}" -v e="${E[$i]}" 'BEGIN{print c/e}')"
done
me="$(median "${E[@]}")" mc="$(median "${C[@]}")"
printf '%-6s %14.0f %8.2f %8.2f %14.0f %8.2f %8.2f %7.2f\n' median "$me" "$(median "${EP50[@]}")" "$(median "${EP99[@]}")" \
  "$mc" "$(median "${CP50[@]}")" "$(median "${CP99[@]}")" "$(awk -v c="$mc" -v e="$me" 'BEGIN{print c/e}')"
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
  timeout 180 "$TMP/benchmark" --endpoints "127.0.0.1:$ETCD_PORT" --clients "$CLIENTS" --conns "$CONNS" \
    put --key-size 16 --sequential-keys --key-space-size 1000000000 --val-size "$SIZE" --total "$total" \
    >"$TMP/crosscheck.txt" 2>&1 || true
  stop "$ETCD_PID" TERM
  grep -E 'Requests/sec|Average|50% in|99% in' "$TMP/crosscheck.txt" | sed 's/^ */  /' || cat "$TMP/crosscheck.txt"
fi
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
