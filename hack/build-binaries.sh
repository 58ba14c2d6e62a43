#!/usr/bin/env bash
# Build the local cluster's binaries from the Go module proxy, once per pinned version.
# Output: $BIN_CACHE/<kubernetes version>/{kube-apiserver,kube-controller-manager,kube-scheduler,
# kubectl,etcd,kwok,helm,kstatus,toxiproxy-server}, and the CRD manifests the local cluster installs in
# $BIN_CACHE/../crds/<module>@<version>/. What is already in the cache is reused; nothing is downloaded but modules.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
cache_root="${INFERENCE_OPERATOR_CACHE:-$HOME/.cache/inference-operator}"
bin_dir="$cache_root/bin/$KUBERNETES_VERSION"
work="$cache_root/build"
mkdir -p "$bin_dir" "$work"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false

need() { for b in "$@"; do [ -x "$bin_dir/$b" ] || return 0; done; return 1; }

build_kubernetes() {
  need kube-apiserver kube-controller-manager kube-scheduler kubectl || return 0
  local k8s="$KUBERNETES_VERSION" staging="v0.${KUBERNETES_VERSION#v1.}"
  local mod="$work/k8s-$k8s"
  mkdir -p "$mod"
  echo ">> kubernetes $k8s (staging modules at $staging) in $mod"
  # The staging modules are required at v0.0.0 and replaced by ./staging paths in k8s.io/kubernetes;
  # a wrapper module replaces each with its published tag (golang/go#44840).
  local gomod
  gomod="$(cd "$mod" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$k8s" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  {
    echo "module example.invalid/k8sbin"
    echo
    echo "go 1.25.0"
    echo
    echo "require k8s.io/kubernetes $k8s"
    echo
    echo "replace ("
    grep -E '^\s+k8s.io/[^ ]+ v0\.0\.0$' "$gomod" | awk -v v="$staging" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } > "$mod/go.mod"
  cat > "$mod/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  (cd "$mod" && go mod tidy -e >/dev/null 2>&1 || true; cd "$mod" && GOFLAGS=-mod=mod go mod download)
  local minor="${k8s#v1.}"; minor="${minor%%.*}"
  local ldf="-s -w -X k8s.io/component-base/version.gitVersion=$k8s -X k8s.io/component-base/version.gitMajor=1"
  ldf="$ldf -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
  ldf="$ldf -X k8s.io/client-go/pkg/version.gitVersion=$k8s -X k8s.io/client-go/pkg/version.gitMajor=1"
  ldf="$ldf -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  (cd "$mod" && GOFLAGS="-mod=mod -buildvcs=false" go build -trimpath -ldflags "$ldf" -o "$bin_dir/" \
     k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
     k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
}

build_etcd() {
  need etcd || return 0
  local mod="$work/etcd-$ETCD_VERSION"
  mkdir -p "$mod"
  echo ">> etcd $ETCD_VERSION"
  # server/v3 carries replace directives too, so a three-line main stands in for its own.
  cat > "$mod/go.mod" <<GOMOD
module example.invalid/etcdbin

go 1.25.0

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
GOMOD
  cat > "$mod/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  (cd "$mod" && GOFLAGS=-mod=mod go mod tidy && go build -trimpath -ldflags "-s -w" -o "$bin_dir/etcd" .)
}

build_go_install() {  # name module-path version
  need "$1" || return 0
  echo ">> $1 $3"
  GOBIN="$bin_dir" go install -trimpath -ldflags "-s -w $4" "$2@$3"
}

build_kstatus() {  # hack/kstatus: sigs.k8s.io/cli-utils' kstatus on one object (tests/e2e/test_gitops.py)
  need kstatus || return 0
  echo ">> kstatus (hack/kstatus)"
  (cd "$here/kstatus" && GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$bin_dir/kstatus" .)
}

build_toxiproxy() {  # the fault proxy of tests/faults (its command is named "server" in the module)
  need toxiproxy-server || return 0
  echo ">> toxiproxy $TOXIPROXY_VERSION"
  local gobin; gobin="$(mktemp -d)"
  GOBIN="$gobin" go install -trimpath -ldflags "-s -w" "github.com/Shopify/toxiproxy/v2/cmd/server@$TOXIPROXY_VERSION"
  mv "$gobin/server" "$bin_dir/toxiproxy-server"
  rmdir "$gobin"
}

fetch_crds() {  # module version dir file...: CRD manifests shipped in a Go module, copied into the cache
  local module="$1" version="$2" sub="$3"; shift 3
  local out="$cache_root/crds/${module##*/}@$version"
  [ -d "$out" ] && return 0
  echo ">> CRDs of $module $version"
  local dir
  dir="$(cd "$work" && go mod download -json "$module@$version" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
  [ -n "$dir" ] || { echo "no module directory for $module@$version" >&2; return 1; }
  rm -rf "$out.tmp" && mkdir -p "$out.tmp"
  for file in "$@"; do install -m 0644 "$dir/$sub/"$file "$out.tmp/"; done  # $file may be a glob
  mv "$out.tmp" "$out"
}

build_kubernetes
build_etcd
build_go_install kwok sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION" "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
build_go_install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
build_kstatus
build_toxiproxy
fetch_crds sigs.k8s.io/gateway-api "$GATEWAY_API_VERSION" config/crd/standard '*.yaml'
fetch_crds sigs.k8s.io/gateway-api-inference-extension "$GATEWAY_API_INFERENCE_EXTENSION_VERSION" config/crd/bases \
  inference.networking.k8s.io_inferencepools.yaml
echo "binaries in $bin_dir:"
ls -1 "$bin_dir"
