#!/usr/bin/env bash
# `make run`: the embedded sandbox plus the Dagster UI and daemon on 127.0.0.1:3000, schedule and first sync on.
set -euo pipefail
cd "$(dirname "$0")/.."
export DAGSTER_HOME="${DAGSTER_HOME:-$PWD/.dagster_home}"
mkdir -p "$DAGSTER_HOME"
cp dagster.yaml "$DAGSTER_HOME/dagster.yaml"
export AMAZON_MARKETPLACES="${AMAZON_MARKETPLACES:-DE,FR,US}"
# The sandbox is local: no need to space writes as real Optiply wants (0.2 s).
export OPTIPLY_MIN_WRITE_INTERVAL_SECONDS="${OPTIPLY_MIN_WRITE_INTERVAL_SECONDS:-0.01}"

sandbox_env="$DAGSTER_HOME/sandbox.env"
rm -f "$sandbox_env"
.venv/bin/python -m amazon_optiply.sandbox --sp-api-port "${SP_API_PORT:-8701}" --optiply-port "${OPTIPLY_PORT:-8702}" \
  --marketplaces "$AMAZON_MARKETPLACES" --skus "${SANDBOX_SKUS:-2000}" --rate-scale "${SANDBOX_RATE_SCALE:-5}" \
  ${SANDBOX_OLD_INTEGRATION:+--old-integration} >"$sandbox_env" &
sandbox_pid=$!
trap 'kill $sandbox_pid 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 1 100); do
  grep -q '^AMAZON_MARKETPLACES=' "$sandbox_env" 2>/dev/null && break
  kill -0 $sandbox_pid 2>/dev/null || { echo "the sandbox did not start" >&2; exit 1; }
  sleep 0.2
done
# Credentials the sandbox took from the environment are not echoed; they are already exported.
while IFS='=' read -r name value; do
  [ "$value" = "(from environment)" ] || export "$name=$value"
done <"$sandbox_env"
echo "sandbox: Amazon $SP_API_ENDPOINT  Optiply $OPTIPLY_API_URL"

# A second sandbox: a Vendor Central account (DE) with an Optiply account of its own, for the vendor tenant.
vendor_env="$DAGSTER_HOME/sandbox-vendor.env"
rm -f "$vendor_env"
.venv/bin/python -m amazon_optiply.sandbox --sp-api-port "${VENDOR_SP_API_PORT:-8703}" \
  --optiply-port "${VENDOR_OPTIPLY_PORT:-8704}" --marketplaces DE --skus 50 --vendor \
  --rate-scale "${SANDBOX_RATE_SCALE:-5}" >"$vendor_env" &
vendor_pid=$!
trap 'kill $sandbox_pid $vendor_pid 2>/dev/null || true' EXIT INT TERM
for _ in $(seq 1 100); do
  grep -q '^AMAZON_MARKETPLACES=' "$vendor_env" 2>/dev/null && break
  kill -0 $vendor_pid 2>/dev/null || { echo "the vendor sandbox did not start" >&2; exit 1; }
  sleep 0.2
done

# Unless you bring your own registry: the environment's seller (tenant `default`) and the sandbox vendor.
if [ -z "${TENANTS_FILE:-}" ]; then
  export TENANTS_FILE="$DAGSTER_HOME/tenants.yaml"
  VENDOR_SP_API="$(sed -n 's/^SP_API_ENDPOINT=//p' "$vendor_env")" \
  VENDOR_OPTIPLY="$(sed -n 's/^OPTIPLY_API_URL=//p' "$vendor_env")" \
    .venv/bin/python -m amazon_optiply.tenants_sandbox >"$TENANTS_FILE"
fi
echo "sandbox vendor: $(sed -n 's/^SP_API_ENDPOINT=//p' "$vendor_env")  tenants: $TENANTS_FILE"
echo "Dagster UI: http://127.0.0.1:3000 (first syncs of every tenant start on their own)"
.venv/bin/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml
