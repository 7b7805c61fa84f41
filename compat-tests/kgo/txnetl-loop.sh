#!/usr/bin/env bash
# Reruns franz-go's TestTxnEtl against a fresh node until it fails (at most N times), keeping
# that run's node log (sluice::group and sluice::txn at debug) and test output:
#   compat-tests/kgo/txnetl-loop.sh [N]   (SLUICE_BIN, default target/debug/sluice)
# KGO_RUN='^(TestTxnEtl|TestGroupETL)$' runs it beside TestGroupETL, as the whole suite does.
# It reproduces the intermittent TestTxnEtl failure described in RESULTS.md.
set -uo pipefail
source "$(dirname "$(readlink -f "$0")")/../bin/_env.sh"
bin="${SLUICE_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/sluice/target}/debug/sluice}"
out="$(mktemp -d)"
echo "logs in $out"
for i in $(seq 1 "${1:-5}"); do
  rm -rf "$out/data"
  RUST_LOG=info,sluice::group=debug,sluice::txn=debug "$bin" serve --data-dir "$out/data" \
    --kafka-addr 127.0.0.1:0 --http-addr 127.0.0.1:0 --controller-addr 127.0.0.1:0 \
    > "$out/ready.$i" 2> "$out/node.$i.log" &
  pid=$!
  for _ in $(seq 1 100); do grep -q "sluice ready" "$out/ready.$i" && break; sleep 0.2; done
  addr="$(grep -o "kafka=[0-9.:]*" "$out/ready.$i" | cut -d= -f2)"
  (cd "$out" && KGO_SEEDS="$addr" KGO_TEST_RF=1 KGO_TEST_RECORDS=20000 \
    KGO_LOG_LEVEL="${KGO_LOG_LEVEL:-none}" timeout 300 "$CACHE/bin/kgo.test" -test.v \
    -test.count 1 -test.timeout 280s -test.run "${KGO_RUN:-^TestTxnEtl\$}" > "$out/kgo.$i" 2>&1)
  rc=$?
  kill "$pid"; wait "$pid"
  echo "run $i: exit $rc"
  if [[ $rc -ne 0 ]]; then
    grep -- "--- FAIL" "$out/kgo.$i"
    exit 1
  fi
  rm -f "$out/node.$i.log" "$out/kgo.$i"
done
