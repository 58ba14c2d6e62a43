#!/usr/bin/env bash
# Build KServe's controller manager (the comparison of `make bench`, hack/bench_kserve.py) from the Go
# module proxy, once per pinned version: $BIN_CACHE/kserve-<version>/kserve-manager (named so: that name
# is its user agent in the audit log), plus the module's config/ directory (CRDs and the
# inferenceservice-config ConfigMap). Nothing is downloaded but modules; the build runs at nice 19.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
cache_root="${INFERENCE_OPERATOR_CACHE:-$HOME/.cache/inference-operator}"
out="$cache_root/bin/kserve-$KSERVE_VERSION"
mod="$cache_root/build/kserve-$KSERVE_VERSION"
if [ -x "$out/kserve-manager" ] && [ -d "$out/config" ]; then
  echo "$out"; exit 0
fi
mkdir -p "$out" "$mod"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
echo ">> kserve $KSERVE_VERSION in $mod" >&2
printf 'module example.invalid/kservebin\n\ngo 1.25.0\n' > "$mod/go.mod"
info="$(cd "$mod" && GOFLAGS=-mod=mod go mod download -json "github.com/kserve/kserve@$KSERVE_VERSION")"
gomod="$(sed -n 's/.*"GoMod": "\(.*\)".*/\1/p' <<<"$info")"
src="$(sed -n 's/.*"Dir": "\(.*\)".*/\1/p' <<<"$info")"
# A replace directive only applies in the main module: the wrapper carries KServe's own (one-line or block form).
{
  printf 'module example.invalid/kservebin\n\ngo 1.25.0\n\nrequire github.com/kserve/kserve %s\n\n' "$KSERVE_VERSION"
  awk '/^replace \($/ {b=1; next} b && /^\)/ {b=0; next} b {print "replace " $0; next} /^replace / {print}' "$gomod"
} > "$mod/go.mod"
cat > "$mod/tools.go" <<'GO'
//go:build tools

package tools

import _ "github.com/kserve/kserve/cmd/manager"
GO
(cd "$mod" && GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1 || true)
(cd "$mod" && GOFLAGS="-mod=mod -buildvcs=false" nice -n 19 go build -trimpath -ldflags "-s -w" \
   -o "$out/kserve-manager" github.com/kserve/kserve/cmd/manager)
rm -rf "$out/config" && cp -r "$src/config" "$out/config" && chmod -R u+w "$out/config"
echo "$out"
