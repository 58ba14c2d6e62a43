#!/usr/bin/env bash
# `make images`: the project's image built from Debian's packages and PyPI only, with no Docker engine and
# no registry. A Debian base (mmdebstrap: the pinned suite's python3) is built once per suite and date of
# Debian's package lists and cached under ~/.cache/inference-operator/images; the Dockerfile is built on it
# with buildah (--pull=never); the result is in local container storage (podman/buildah, as root) and saved
# as an OCI archive under build/images/, with build/images/inference-operator.json naming its reference and
# digest (what the chart is installed with: docs/install.md). Needs: mmdebstrap, buildah, podman, skopeo.
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/hack/containers/containers.conf}"
suite=${DEBIAN_SUITE:-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
packages=python3,python3-venv  # python3-venv: the build stage's virtual environment (ensurepip)
cache="${INFERENCE_OPERATOR_CACHE:-$HOME/.cache/inference-operator}/images"
out=build/images
name=inference-operator
version=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
revision=${IMAGE_REVISION:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
source_url=${IMAGE_SOURCE:-https://github.com/inference-operator/inference-operator}
mkdir -p "$cache" "$out"

for tool in mmdebstrap buildah podman skopeo; do
  command -v "$tool" >/dev/null || { echo "images: $tool is missing (apt-get install -y mmdebstrap buildah podman skopeo runc)" >&2; exit 1; }
done
[ "$(id -u)" = 0 ] || { echo "images: run as root (mmdebstrap and buildah use root's container storage here)" >&2; exit 1; }

# The date of the suite's package lists (its InRelease file): the base is rebuilt when Debian publishes new
# lists, and two builds from the same lists get the same packages. Offline: the newest cached base.
release_date() {
  curl -fsS --max-time 20 "$mirror/dists/$suite/InRelease" 2>/dev/null | sed -n 's/^Date: //p' | head -1
}
stamp=$(release_date || true)
if [ -n "$stamp" ]; then
  epoch=$(date -u -d "$stamp" +%s)
  key="$suite-$(date -u -d "@$epoch" +%Y%m%dT%H%M%SZ)-$(echo "$packages" | sha256sum | cut -c1-8)"
else
  key=$(ls -t "$cache" 2>/dev/null | sed -n "s/^debian-\($suite-.*\)\.tar$/\1/p" | head -1)
  [ -n "$key" ] || { echo "images: $mirror unreachable and no cached $suite base" >&2; exit 1; }
  echo "images: $mirror unreachable, using the cached base $key"
fi
base_tar="$cache/debian-$key.tar"
base_image="localhost/$name-base:$key"

t0=$SECONDS
if [ ! -s "$base_tar" ]; then
  echo "images: building the Debian base $key (mmdebstrap, a few minutes)"
  # merged-usr hook instead of the usrmerge package (which would pull perl in); no docs, man pages, locales.
  SOURCE_DATE_EPOCH=$epoch mmdebstrap --variant=essential --include="$packages" \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --quiet "$suite" "$cache/.partial-$key.tar" "$mirror"
  mv "$cache/.partial-$key.tar" "$base_tar"
fi
if ! podman image exists "$base_image"; then
  podman import --quiet "$base_tar" "$base_image" >/dev/null
fi
echo "images: base $base_image ready in $((SECONDS - t0))s"

t1=$SECONDS
ca_bundle=${PIP_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
buildah bud --pull=never --layers --quiet --format oci \
  --build-arg PYTHON_IMAGE="$base_image" --build-arg PIP_CERT=/run/host-ca.crt \
  --label org.opencontainers.image.version="$version" --label org.opencontainers.image.revision="$revision" \
  --label org.opencontainers.image.source="$source_url" \
  --volume "$ca_bundle:/run/host-ca.crt:ro" \
  --tag "localhost/$name:$version" -f Dockerfile . >/dev/null
echo "images: localhost/$name:$version built in $((SECONDS - t1))s"

archive="$out/$name.oci.tar"
rm -f "$archive"
podman save --quiet --format oci-archive -o "$archive" "localhost/$name:$version"
digest=$(skopeo inspect --format '{{.Digest}}' "oci-archive:$archive")
size=$(podman image inspect --format '{{.Size}}' "localhost/$name:$version")
cat > "$out/$name.json" <<JSON
{"image": "localhost/$name:$version", "repository": "localhost/$name", "tag": "$version",
 "digest": "$digest", "archive": "$archive", "size_bytes": $size, "base": "$base_image",
 "revision": "$revision", "built": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"}
JSON
echo "images: $archive ($digest), $((size / 1000000)) MB unpacked; total $((SECONDS - t0))s"
