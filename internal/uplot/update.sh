#!/usr/bin/env bash
# Replaces the vendored uPlot with release VERSION from npm:
#
#   internal/uplot/update.sh 1.6.32
#
# The tarball's sha512 must match the registry's dist.integrity; the built
# browser files, the stylesheet and the licence are copied, and uplot.go's
# Version is set. Nothing else of the package is kept.
set -euo pipefail

version=${1:?usage: update.sh VERSION}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
npm pack --silent "uplot@$version" >/dev/null
tgz=uplot-$version.tgz
want=$(npm view "uplot@$version" dist.integrity)
got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
if [ "$want" != "$got" ]; then
	echo "update.sh: $tgz is $got, the registry says $want" >&2
	exit 1
fi
tar xzf "$tgz"
cp package/dist/uPlot.iife.min.js package/dist/uPlot.min.css package/LICENSE "$here/"
sed -i "s/^const Version = \".*\"/const Version = \"$version\"/" "$here/uplot.go"
echo "uPlot $version vendored ($want); run go test ./internal/uplot ./bench ./http"
