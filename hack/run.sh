#!/usr/bin/env bash
# `make run`: the operator in the foreground against the local cluster, with the sample service
# applied and shown once it is running. Ctrl-C stops the operator (the cluster keeps running).
set -euo pipefail
cd "$(dirname "$0")/.."
export KUBECONFIG="$PWD/.cluster/kubeconfig"
source hack/versions.env
kubectl="${INFERENCE_OPERATOR_CACHE:-$HOME/.cache/inference-operator}/bin/$KUBERNETES_VERSION/kubectl"
metrics_port="${METRICS_PORT:-9090}"

.venv/bin/python -m inference_operator --all-namespaces --metrics-port "$metrics_port" &
operator=$!
trap 'kill $operator 2>/dev/null; wait $operator 2>/dev/null' EXIT INT TERM
for _ in $(seq 100); do curl -fs "localhost:$metrics_port/metrics" >/dev/null && break; sleep 0.2; done

"$kubectl" apply -f examples/model-storage.yaml -f examples/single-gpu.yaml
"$kubectl" wait --for=jsonpath='{.status.status}'=running infsvc/service-demo --timeout=120s
"$kubectl" get infsvc service-demo
echo
echo "The operator runs (Ctrl-C stops it). In another shell:"
echo "  export KUBECONFIG=$KUBECONFIG"
echo "  $kubectl get infsvc -w"
echo "  $kubectl apply -f examples/weighted-three-models.yaml"
wait $operator
