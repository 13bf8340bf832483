# Grafana's dashboard JSON schema, generated from the TypeScript types that Grafana itself publishes
# (npm @grafana/schema), for tests/test_dashboards.py:
#   .tools/grafana/dashboard.schema.json   the Dashboard type as JSON Schema (draft 7)
#   .tools/grafana/schema-version          the schemaVersion a new dashboard gets in that Grafana
# Unknown properties are rejected (no --additional-properties), so a misspelt field fails validation;
# free-form parts (panel options, query targets) stay free-form because the types say so.
GRAFANA_SCHEMA_VERSION=13.2.3
GRAFANA_DIR="$TOOLS/grafana"
if [ ! -s "$GRAFANA_DIR/dashboard.schema.json" ] || [ ! -s "$GRAFANA_DIR/schema-version" ] \
   || [ "$(cat "$GRAFANA_DIR/package-version" 2>/dev/null)" != "$GRAFANA_SCHEMA_VERSION" ]; then
  log "Grafana dashboard schema from npm @grafana/schema@$GRAFANA_SCHEMA_VERSION"
  mkdir -p "$GRAFANA_DIR"
  (
    cd "$GRAFANA_DIR"
    [ -f package.json ] || echo '{"private": true}' > package.json
    npm install --no-audit --no-fund --silent \
      "@grafana/schema@$GRAFANA_SCHEMA_VERSION" ts-json-schema-generator@2.9.0
    types=node_modules/@grafana/schema/dist/types/raw/dashboard/x/types.gen.d.ts
    npx --no-install ts-json-schema-generator --path "$types" --type Dashboard --no-type-check \
      -o dashboard.schema.json.tmp
    mv dashboard.schema.json.tmp dashboard.schema.json
    # defaultDashboard in the same generated module holds the current schemaVersion.
    sed -n 's/^ *schemaVersion: *\([0-9][0-9]*\),*$/\1/p' \
      node_modules/@grafana/schema/dist/esm/raw/dashboard/x/types.gen.mjs | head -n 1 > schema-version
    [ -s schema-version ] || { log "no schemaVersion found in @grafana/schema"; exit 1; }
    echo "$GRAFANA_SCHEMA_VERSION" > package-version
  ) 2> >(grep -v 'Unknown user config' >&2)
fi
