#!/usr/bin/env bash
# Build the Collector described by collector/builder-config.yaml with the
# OpenTelemetry Collector Builder, and cache the binary outside the repository.
#
# Usage: collector/build.sh [--print-path]
#
# The binary goes to ${OTEL_MLMON_CACHE:-$HOME/.cache/otel_mlmon}/otelcol-<sha256
# of the manifest>/otelcol-mlmon, so any change to the manifest builds anew and
# an unchanged manifest reuses the cached binary. The last line on stdout is the
# binary's path; progress and the builder's output go to stderr.
# --print-path prints that path and exits without building.
#
# Needs Go (1.25 or newer, as the v0.159.0 modules require) and access to the
# Go module proxy. One build from an empty module cache took 3 min 47 s on a
# 2-core machine (Go 1.26.8), about 1.5 min of it downloading modules.
set -euo pipefail

# The builder release that matches otelcol-contrib 0.159.0: core and contrib
# share the v0.159.0 release number.
readonly BUILDER_VERSION=v0.159.0
readonly BINARY_NAME=otelcol-mlmon

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
manifest="$here/builder-config.yaml"
cache_root="${OTEL_MLMON_CACHE:-$HOME/.cache/otel_mlmon}"
manifest_sha="$(sha256sum "$manifest" | cut -d ' ' -f 1)"
out_dir="$cache_root/otelcol-$manifest_sha"
binary="$out_dir/$BINARY_NAME"

if [[ "${1:-}" == "--print-path" ]]; then
    echo "$binary"
    exit 0
elif [[ $# -gt 0 ]]; then
    echo "build.sh: unknown argument '$1'; usage: build.sh [--print-path]" >&2
    exit 2
fi

if [[ -x "$binary" ]]; then
    echo "build.sh: using cached Collector $binary" >&2
    echo "$binary"
    exit 0
fi

if ! command -v go >/dev/null 2>&1; then
    echo "build.sh: go not found on PATH; install Go 1.25 or newer to build the Collector" >&2
    exit 1
fi

mkdir -p "$cache_root"
builder="$cache_root/tools/builder-$BUILDER_VERSION/builder"
if [[ ! -x "$builder" ]]; then
    echo "build.sh: installing go.opentelemetry.io/collector/cmd/builder@$BUILDER_VERSION" >&2
    GOBIN="$(dirname "$builder")" go install \
        "go.opentelemetry.io/collector/cmd/builder@$BUILDER_VERSION" >&2
fi

# Build in a scratch folder, then move the binary into place with a rename, so
# an interrupted or concurrent build never leaves a partial binary at $binary.
work="$(mktemp -d "$cache_root/build.XXXXXX")"
trap 'rm -rf "$work"' EXIT

started_s=$SECONDS
echo "build.sh: building $BINARY_NAME from $manifest in $work" >&2
(cd "$work" && "$builder" --config "$manifest") >&2

mkdir -p "$out_dir"
cp "$manifest" "$out_dir/builder-config.yaml"
mv "$work/otelcol-mlmon-src/$BINARY_NAME" "$binary.partial.$$"
mv "$binary.partial.$$" "$binary"
echo "build.sh: built $binary in $((SECONDS - started_s)) s" >&2
echo "$binary"
