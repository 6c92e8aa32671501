#!/usr/bin/env bash
# `make lambda-invoke`: runs the payments-api binary under cargo-lambda's Lambda emulator
# (`cargo lambda watch`) against a moto server and invokes it with an events/ fixture
# (`cargo lambda invoke --data-file`), as the README shows. Fails unless the function answers
# the fixture's request with the problem+json 404 of an order that has no payment.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=.venv/bin/python
LAMBDA=.venv-build/bin/cargo-lambda
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
MOTO_PORT=$(free_port)
WATCH_PORT=$(free_port)
LOG=$(mktemp -d)
cleanup() { kill "${WATCH_PID:-}" "${MOTO_PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$LOG"; }
trap cleanup EXIT

MOTO_PORT=$MOTO_PORT "$PY" infra/local-aws/moto_server.py -H 127.0.0.1 -p "$MOTO_PORT" >"$LOG/moto.log" 2>&1 &
MOTO_PID=$!
export AWS_ENDPOINT_URL=http://127.0.0.1:$MOTO_PORT AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
for _ in $(seq 50); do curl -sf "$AWS_ENDPOINT_URL/moto-api/" >/dev/null && break; sleep 0.2; done
"$PY" - <<'PY'
import boto3
boto3.client("dynamodb").create_table(
    TableName="payments", BillingMode="PAY_PER_REQUEST",
    AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk")],
    KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
PY

PAYMENTS_TABLE=payments "$LAMBDA" lambda watch -A 127.0.0.1 -P "$WATCH_PORT" >"$LOG/watch.log" 2>&1 &
WATCH_PID=$!
for _ in $(seq 150); do
  (echo > "/dev/tcp/127.0.0.1/$WATCH_PORT") 2>/dev/null && break
  sleep 1
done
OUT=$("$LAMBDA" lambda invoke payments-api -A 127.0.0.1 -P "$WATCH_PORT" \
  --data-file events/payments-api/get-payment.json 2>&1) || { echo "$OUT"; tail -30 "$LOG/watch.log"; exit 1; }
echo "$OUT"
echo "$OUT" | grep -q '"statusCode":404' || echo "$OUT" | grep -q '"statusCode": 404' || { echo "expected a 404 answer"; exit 1; }
echo "$OUT" | grep -q 'application/problem+json' || { echo "expected a problem+json body"; exit 1; }
echo "cargo lambda invoke payments-api --data-file events/payments-api/get-payment.json: OK"
