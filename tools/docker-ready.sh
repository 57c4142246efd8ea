#!/usr/bin/env bash
# Makes sure a Docker engine answers. On a machine without a registry (../shared/offline-images
# present), builds the local stand-ins for the public images first (idempotent, seconds when done).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
offline="$here/../../shared/offline-images"
if [[ -f "$offline/build.sh" ]]; then
  bash "$offline/build.sh" 2>&1 | grep -v '^\s*$' | tail -n 1 >&2
fi
if ! docker info >/dev/null 2>&1; then
  echo "harness: Docker is not reachable; start the Docker engine (or set DOCKER_HOST) and retry" >&2
  exit 13
fi
