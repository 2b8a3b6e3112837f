#!/usr/bin/env bash
# End-to-end on kind: creates a cluster, builds the image and loads it,
# installs the Helm chart (and runs its `helm test`), runs the Rust suite
# (cargo test -p sorcha-kind-tests) against it, and deletes the cluster.
#
#   kind-tests/run.sh                 # everything, cluster deleted at the end
#   KEEP_CLUSTER=1 kind-tests/run.sh  # leave the cluster for inspection
#
# Needs docker (with a running daemon), kind, helm, kubectl and cargo.
set -euo pipefail
cd "$(dirname "$0")/.."

cluster="${SORCHA_KIND_CLUSTER:-sorcha-e2e}"
namespace="${SORCHA_KIND_NAMESPACE:-sorcha-e2e}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)"
image="ghcr.io/sorcha/sorcha-peer:${version}"
context="kind-${cluster}"

for tool in docker kind helm kubectl cargo; do
  command -v "$tool" >/dev/null 2>&1 || { echo "kind-tests: $tool not found" >&2; exit 1; }
done
docker info >/dev/null 2>&1 || { echo "kind-tests: the Docker daemon is not reachable" >&2; exit 1; }

if ! kind get clusters 2>/dev/null | grep -qx "$cluster"; then
  kind create cluster --name "$cluster" --wait 180s
fi
if [ -z "${KEEP_CLUSTER:-}" ]; then
  trap 'kind delete cluster --name "$cluster"' EXIT
fi

docker build -t "$image" .
kind load docker-image "$image" --name "$cluster"

helm upgrade --install sorcha-operator charts/sorcha-operator \
  --kube-context "$context" --namespace sorcha-system --create-namespace \
  --set image.pullPolicy=IfNotPresent --wait --timeout 5m
helm test sorcha-operator --kube-context "$context" --namespace sorcha-system --timeout 10m

kubectl --context "$context" create namespace "$namespace" --dry-run=client -o yaml |
  kubectl --context "$context" apply -f -

SORCHA_KIND_CLUSTER="$cluster" SORCHA_KIND_NAMESPACE="$namespace" SORCHA_KIND_IMAGE="$image" \
  cargo test -p sorcha-kind-tests --locked -- --nocapture
