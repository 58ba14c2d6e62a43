#!/usr/bin/env bash
# `make run`: against the local cluster, the operator, the gateway and a model process on this machine, with
# the sample service applied (its kwok pod is "hostlocal": its address is this machine's, so the gateway's
# traffic reaches the model process), then the commands that call it. Ctrl-C stops the three processes
# (the cluster keeps running). Ports: MODEL_PORT (the sample's 8080), GATEWAY_PORT (8000), METRICS_PORT
# (9090, the operator's), GATEWAY_METRICS_PORT (9091).
set -euo pipefail
cd "$(dirname "$0")/.."
export KUBECONFIG="$PWD/.cluster/kubeconfig"
source hack/versions.env
kubectl="${INFERENCE_OPERATOR_CACHE:-$HOME/.cache/inference-operator}/bin/$KUBERNETES_VERSION/kubectl"
model_port="${MODEL_PORT:-8080}" gateway_port="${GATEWAY_PORT:-8000}"
metrics_port="${METRICS_PORT:-9090}" gateway_metrics_port="${GATEWAY_METRICS_PORT:-9091}"
logs="$PWD/.cluster/logs"
mkdir -p "$logs"

pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait "${pids[@]}" 2>/dev/null' EXIT INT TERM
# The model: an echo server on every interface (the pod's address is this machine's, not loopback).
.venv/bin/python tests/gateway/model_server.py --name jar-model --host 0.0.0.0 --port "$model_port" \
  > "$logs/run-model.log" 2>&1 &
pids+=($!)
.venv/bin/python -m inference_operator.gateway --host 127.0.0.1 --port "$gateway_port" \
  --metrics-port "$gateway_metrics_port" > "$logs/run-gateway.log" 2>&1 &
pids+=($!)
INFERENCE_OPERATOR_GATEWAY_BASE_URL="http://127.0.0.1:$gateway_port" \
  .venv/bin/python -m inference_operator --all-namespaces --metrics-port "$metrics_port" &
pids+=($!)
for _ in $(seq 150); do curl -fs "localhost:$metrics_port/metrics" >/dev/null && break; sleep 0.2; done

sed "s/port: 8080/port: $model_port/" examples/single-gpu.yaml |
  "$kubectl" apply -f examples/model-storage.yaml -f examples/demo-app.yaml -f -
"$kubectl" wait --for=jsonpath='{.status.status}'=running infsvc/service-demo --timeout=120s
"$kubectl" get infsvc service-demo
addr=$("$kubectl" get infsvc service-demo -o jsonpath='{.status.accessAddress}')
for _ in $(seq 150); do
  curl -fs -o /dev/null -X POST "$addr/predict" -H 'X-Apig-AppCode: demo-app-code' && break; sleep 0.2
done
cat <<TEXT

The operator, the gateway and the model run (Ctrl-C stops them). In another shell:
  curl -fsS -X POST $addr/predict -H 'X-Apig-AppCode: demo-app-code' -H 'Content-Type: application/json' -d '{"x": 1}'
  .venv/bin/python -c 'import sys, urllib.request as u; from inference_operator.gateway.client import Signer; b = b"{\"x\": 1}"; h = Signer("demo-app-key", "demo-app-secret").sign("POST", sys.argv[1], {"Content-Type": "application/json"}, b); print(u.urlopen(u.Request(sys.argv[1], b, h, method="POST")).read().decode())' $addr/predict
  $kubectl --kubeconfig $KUBECONFIG get infsvc -w
TEXT
wait "${pids[@]}"
