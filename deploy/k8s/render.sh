#!/usr/bin/env bash
# Render the checked-in manifests from the chart (tests/k8s/manifests.test.mjs fails when they differ):
#   deploy/k8s/render.sh [HELM]       (default: helm on PATH)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
chart="$here/../helm/genai-gateway"
helm=${1:-helm}
render() { # render OUT [VALUES]
  local out=$1
  shift
  {
    echo "# Rendered from deploy/helm/genai-gateway by deploy/k8s/render.sh${1:+ with $(basename "$1")}: do not edit,"
    echo "# edit the chart or its values and render again. Release genai-gateway, namespace default."
    "$helm" template genai-gateway "$chart" --namespace default ${1:+-f "$1"}
  } >"$here/$out"
}
render sidecar.yaml
render sidecar-plain.yaml "$chart/ci/sidecar-plain-values.yaml"
render tier.yaml "$chart/ci/tier-forward-values.yaml"
