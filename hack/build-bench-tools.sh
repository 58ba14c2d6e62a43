#!/usr/bin/env bash
# The compiled tools of `make bench-gateway`, built once from the Go module proxy and cached next to the
# cluster binaries: vegeta (the load generator) and hack/goproxy (a minimal net/http/httputil reverse proxy).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache_root="${INFERENCE_OPERATOR_CACHE:-$HOME/.cache/inference-operator}"
bin_dir="$cache_root/bin/bench"
VEGETA_VERSION="${VEGETA_VERSION:-v12.12.0}"
mkdir -p "$bin_dir"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
if [ ! -x "$bin_dir/vegeta" ]; then
  echo ">> vegeta $VEGETA_VERSION"
  GOBIN="$bin_dir" go install -trimpath -ldflags "-s -w" "github.com/tsenart/vegeta/v12@$VEGETA_VERSION"
fi
if [ ! -x "$bin_dir/goproxy" ] || [ "$here/goproxy/main.go" -nt "$bin_dir/goproxy" ]; then
  echo ">> goproxy (hack/goproxy)"
  (cd "$here/goproxy" && go build -trimpath -ldflags "-s -w" -o "$bin_dir/goproxy" .)
fi
ls -1 "$bin_dir"
