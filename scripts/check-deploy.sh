#!/usr/bin/env bash
# Renders each region's manifests (deploy/regions/*) with `kubectl kustomize` and validates every
# rendered object against Kubernetes' own schemas with kubernetes-validate (from PyPI), strictly:
# unknown fields fail. The InferencePool, a custom resource, has no schema there and is reported
# as unchecked. Needs kubectl (any release with kustomize v5) and python3 with pip.
set -euo pipefail
cd "$(dirname "$0")/.."
k8s="${K8S_VERSION:-1.34.0}"
command -v kubectl >/dev/null || { echo "check-deploy: kubectl is missing" >&2; exit 1; }
command -v kubernetes-validate >/dev/null || python3 -m pip install -q kubernetes-validate
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
for dir in deploy/regions/*/; do
  region="$(basename "$dir")"
  kubectl kustomize "$dir" > "$out/$region.yaml"
  kubernetes-validate -k "$k8s" --strict --quiet "$out/$region.yaml"
  all=$(grep -c '^kind:' "$out/$region.yaml"); custom=$(grep -c '^kind: InferencePool' "$out/$region.yaml" || true)
  echo "check-deploy: region $region: $((all - custom)) objects valid for Kubernetes $k8s; $custom InferencePool unchecked (no schema)"
done
# The check itself must be able to fail: a misspelt field in a rendered Deployment is refused.
sed 's/terminationGracePeriodSeconds:/terminationGracePeriod:/' "$out/$region.yaml" > "$out/broken.yaml"
if kubernetes-validate -k "$k8s" --strict --quiet "$out/broken.yaml" >/dev/null 2>&1; then
  echo "check-deploy: the validator accepted a misspelt field" >&2
  exit 1
fi
