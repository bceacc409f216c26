#!/usr/bin/env bash
# Builds OpenTofu's CLI once into a cache outside the repository, so the
# provider's end-to-end test has a real client. `go install` refuses the
# module (its go.mod has a replace directive), so the module is copied from
# the module cache and built there. Usage: build-tofu.sh VERSION OUT
set -euo pipefail
version=$1
out=$2
if [ -x "$out" ] && "$out" version >/dev/null 2>&1; then
  exit 0
fi
go=${GO:-go}
dir=$($go mod download -json "github.com/opentofu/opentofu@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
[ -n "$dir" ] || { echo "build-tofu: go mod download gave no directory for opentofu@$version" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp"; rm -rf "$tmp"' EXIT
cp -r "$dir/." "$tmp/"
chmod -R u+w "$tmp"
mkdir -p "$(dirname "$out")"
echo "build-tofu: building OpenTofu $version into $out (a few minutes, once)" >&2
(cd "$tmp" && GOFLAGS=-mod=mod $go build -trimpath -o "$out.tmp.$$" ./cmd/tofu)
mv "$out.tmp.$$" "$out"   # atomic: a concurrent build in another clone replaces it whole
"$out" version
