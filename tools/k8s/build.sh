#!/usr/bin/env bash
# Builds the programs pinned by this module (see tools.go) into tools/bin:
# kube-apiserver, kube-controller-manager, kube-scheduler, kine, kwok, helm.
# internal/k8stest runs them. A cold build takes about nine minutes on two
# cores, so it is skipped while every binary is newer than the files that
# decide what gets built (go.mod, go.sum, this script).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
bin="$(cd "$here/.." && pwd)/bin"
cd "$here"
go="${GO:-go}"

programs=(kube-apiserver kube-controller-manager kube-scheduler kine kwok helm)
packages=(
	k8s.io/kubernetes/cmd/kube-apiserver
	k8s.io/kubernetes/cmd/kube-controller-manager
	k8s.io/kubernetes/cmd/kube-scheduler
	github.com/k3s-io/kine
	sigs.k8s.io/kwok/cmd/kwok
	helm.sh/helm/v3/cmd/helm
)

fresh=1
for p in "${programs[@]}"; do
	for input in go.mod go.sum build.sh; do
		if [ ! -x "$bin/$p" ] || [ "$input" -nt "$bin/$p" ]; then
			fresh=0
		fi
	done
done
if [ "$fresh" = 1 ]; then
	exit 0
fi

version() { "$go" list -mod=readonly -m -f '{{.Version}}' "$1"; }
kube="$(version k8s.io/kubernetes)"
major="${kube#v}"; major="${major%%.*}"
minor="${kube#v*.}"; minor="${minor%%.*}"
kine="$(version github.com/k3s-io/kine)"
helm="$(version helm.sh/helm/v3)"

# Clients compare the server's version with their own, so the Kubernetes
# programs must know which release they are: a plain `go build` says
# v0.0.0-master. Both version packages are stamped, as Kubernetes' own
# hack/lib/version.sh does.
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X $pkg.gitVersion=$kube -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
	ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
ldflags+=" -X github.com/k3s-io/kine/pkg/version.Version=$kine"
ldflags+=" -X helm.sh/helm/v3/internal/version.version=$helm"

echo "k8s tools: building ${programs[*]} (Kubernetes $kube) into $bin; a cold build takes about 9 minutes" >&2
start=$SECONDS
mkdir -p "$bin"
# Build into a scratch folder and move the results in only when all of them
# built, so an interrupted build never leaves binaries that look fresh.
tmp="$(mktemp -d "$bin/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
# kine's SQLite driver (mattn/go-sqlite3) needs cgo.
CGO_ENABLED=1 "$go" build -mod=readonly -trimpath -ldflags "$ldflags" -o "$tmp/" "${packages[@]}"
for p in "${programs[@]}"; do
	mv -f "$tmp/$p" "$bin/$p"
done
echo "k8s tools: built in $((SECONDS - start)) s" >&2
