#!/usr/bin/env bash
# Builds the pinned binaries of the local testbed into bin/ from their Go modules.
#
# Each binary is stamped (bin/.stamps/NAME) with the recipe that built it; a binary whose stamp matches
# is not rebuilt, so a second run takes seconds. Change a pin below (or a tools module under
# deploy/dev/tools) and only what it affects is rebuilt.
#
# Usage: hack/tools.sh [NAME...]   (default: all)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/bin"
stamps="$bin/.stamps"
mkdir -p "$stamps"
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"

TEMPORAL_VERSION=v1.5.1
KUBE_VERSION=v1.37.2
ETCD_VERSION=v3.6.8
KWOK_VERSION=v0.8.0
METRICS_SERVER_VERSION=v0.8.0
PROMETHEUS_VERSION=v0.316.0
HELM_VERSION=v3.22.0

kube_module="$root/deploy/dev/tools/kube"
etcd_module="$root/deploy/dev/tools/etcd"

# recipe NAME prints the string that identifies how NAME is built; a change rebuilds it.
recipe() {
  case "$1" in
    temporal) echo "go install github.com/temporalio/cli/cmd/temporal@$TEMPORAL_VERSION" ;;
    kube-apiserver|kube-controller-manager|kube-scheduler|kubectl)
      echo "go build k8s.io/kubernetes/cmd/$1 $KUBE_VERSION $(sha256sum "$kube_module/go.sum" | cut -c1-16)" ;;
    etcd) echo "go build go.etcd.io/etcd/server/v3 $ETCD_VERSION $(sha256sum "$etcd_module/go.sum" | cut -c1-16)" ;;
    kwok|kwokctl) echo "go install sigs.k8s.io/kwok/cmd/$1@$KWOK_VERSION" ;;
    metrics-server) echo "go install sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION" ;;
    prometheus) echo "go install github.com/prometheus/prometheus/cmd/prometheus@$PROMETHEUS_VERSION" ;;
    helm) echo "go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION" ;;
    metrics-server-manifests) echo "copy sigs.k8s.io/metrics-server@$METRICS_SERVER_VERSION/manifests/base" ;;
    *) echo "unknown tool $1" >&2; return 1 ;;
  esac
}

kube_ldflags() {
  local major minor
  major=$(echo "${KUBE_VERSION#v}" | cut -d. -f1)
  minor=$(echo "${KUBE_VERSION#v}" | cut -d. -f2)
  local p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    printf -- '-X %s.gitVersion=%s -X %s.gitMajor=%s -X %s.gitMinor=%s -X %s.gitTreeState=clean ' \
      "$p" "$KUBE_VERSION" "$p" "$major" "$p" "$minor" "$p"
  done
  printf -- '-s -w'
}

build() {
  local name=$1 out="$bin/$1.tmp"
  case "$name" in
    temporal|kwok|kwokctl|metrics-server|prometheus|helm)
      local pkg
      pkg=$(recipe "$name" | awk '{print $3}')
      local tmpbin
      tmpbin=$(mktemp -d)
      GOBIN="$tmpbin" go install -ldflags='-s -w' "$pkg"
      mv "$tmpbin/$name" "$out"
      rm -rf "$tmpbin" ;;
    kube-*|kubectl)
      (cd "$kube_module" && go build -ldflags="$(kube_ldflags)" -o "$out" "k8s.io/kubernetes/cmd/$name") ;;
    etcd)
      (cd "$etcd_module" && go build -ldflags='-s -w' -o "$out" go.etcd.io/etcd/server/v3) ;;
    metrics-server-manifests)
      # kwokctl applies metrics-server's own kustomize base (APIService, RBAC); take it from the module.
      local src
      src=$(cd "$(mktemp -d)" && go mod download -json "sigs.k8s.io/metrics-server@$METRICS_SERVER_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
      [ -n "$src" ] || { echo "cannot find sigs.k8s.io/metrics-server@$METRICS_SERVER_VERSION in the module cache" >&2; return 1; }
      rm -rf "$out" "$bin/$name"
      cp -r "$src/manifests/base" "$out"
      chmod -R u+w "$out" ;;
  esac
  rm -rf "$bin/$name"
  mv "$out" "$bin/$name"
}

all=(temporal etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok kwokctl metrics-server metrics-server-manifests prometheus helm)
names=("$@")
[ ${#names[@]} -gt 0 ] || names=("${all[@]}")

for name in "${names[@]}"; do
  want=$(recipe "$name")
  if [ -e "$bin/$name" ] && [ -f "$stamps/$name" ] && [ "$(cat "$stamps/$name")" = "$want" ]; then
    continue
  fi
  start=$(date +%s)
  echo "building $name: $want" >&2
  build "$name"
  echo "$want" > "$stamps/$name"
  echo "built $name in $(( $(date +%s) - start ))s" >&2
done
