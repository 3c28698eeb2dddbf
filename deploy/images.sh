#!/bin/bash
# deploy/images.sh builds the two images (`make images`):
#   kernelgate:<tag>            the gateway (deploy/Containerfile): the static binary on scratch
#   kernelgate-kernel-py:<tag>  a Python kernel (deploy/kernels/python/Containerfile): ipykernel
#                               behind `kernelgate launch`, on a Debian base made by debootstrap
# with podman (else buildah), from Debian packages only: no container registry is used.
#
# The kernel image's base layer (debootstrap of python3-ipykernel, ~2 min and ~130 MB of
# packages) is kept as a tarball in $KERNELGATE_CACHE (default ~/.cache/kernelgate) and as the
# local image localhost/kernelgate-kernel-base:<key>, so later builds reuse it.
#
# Environment: TAG (default: the version, `git describe`), VERSION, GO, KERNELGATE_CACHE,
# DEBIAN_MIRROR (default: the first URI of apt's sources), DEBIAN_SUITE (bookworm),
# IMAGES (default "gateway kernel-py").
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
TAG=${TAG:-$VERSION}
TAG=${TAG//+/_}
SOURCE=${SOURCE:-https://github.com/kernelgate/kernelgate}
REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)
CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)
CACHE=${KERNELGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kernelgate}
SUITE=${DEBIAN_SUITE:-bookworm}
IMAGES=${IMAGES:-gateway kernel-py}
# debootstrap resolves no virtual packages: python3-cffi-backend and
# libboost-regex1.74.0 provide what python3-zmq and gdb (via debugpy) need.
BASE_PACKAGES="python3-ipykernel,python3-cffi-backend,libboost-regex1.74.0,ca-certificates"
# The base changes when this recipe does.
BASE_RECIPE_VERSION=1

if command -v podman >/dev/null; then TOOL=podman
elif command -v buildah >/dev/null; then TOOL=buildah
else echo "images.sh: neither podman nor buildah is installed (make images installs podman)" >&2; exit 1; fi

log() { printf 'images.sh: %s\n' "$*" >&2; }

mirror() {
	if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
	local uri
	uri=$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -1 || true)
	[ -n "$uri" ] || uri=$(grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}' | head -1 || true)
	echo "${uri:-http://deb.debian.org/debian}"
}

image_exists() {
	if [ "$TOOL" = podman ]; then podman image exists "$1"; else buildah inspect --type image "$1" >/dev/null 2>&1; fi
}

build() { # build <containerfile> <context> <tag> [build-args…]
	local file=$1 ctx=$2 tag=$3; shift 3
	local args=(--build-arg "VERSION=$VERSION" --build-arg "SOURCE=$SOURCE" --build-arg "REVISION=$REVISION"
		--build-arg "CREATED=$CREATED" --format oci -f "$file" -t "$tag" "$@")
	local previous
	previous=$(image_id "$tag")
	if [ "$TOOL" = podman ]; then podman build --pull=never --layers=false -q "${args[@]}" "$ctx" >/dev/null
	else buildah build --pull-never -q "${args[@]}" "$ctx" >/dev/null; fi
	# The image the tag named before is left untagged: remove it (unless a
	# container or another tag still uses it), or rebuilds pile up.
	if [ -n "$previous" ] && [ "$previous" != "$(image_id "$tag")" ]; then
		$TOOL rmi "$previous" >/dev/null 2>&1 || true
	fi
}

image_id() {
	if [ "$TOOL" = podman ]; then podman image inspect --format '{{.Id}}' "$1" 2>/dev/null || true
	else buildah inspect --type image --format '{{.FromImageID}}' "$1" 2>/dev/null || true; fi
}

# The kernel image's base: a Debian root file system with ipykernel.
kernel_base() {
	local key
	key=$(printf '%s %s %s' "$SUITE" "$BASE_PACKAGES" "$BASE_RECIPE_VERSION" | sha256sum | cut -c1-12)
	BASE_IMAGE=localhost/kernelgate-kernel-base:$SUITE-$key
	local tarball=$CACHE/kernel-base-$SUITE-$key.tar
	if image_exists "$BASE_IMAGE"; then log "base $BASE_IMAGE: present"; return; fi
	if [ ! -s "$tarball" ]; then
		command -v debootstrap >/dev/null || { log "debootstrap is not installed (make images installs it)"; exit 1; }
		mkdir -p "$CACHE"
		local root; root=$(mktemp -d "$CACHE/rootfs.XXXXXX")
		trap 'rm -rf "$root"' EXIT
		log "debootstrap $SUITE ($BASE_PACKAGES) from $(mirror): a few minutes, once"
		debootstrap --variant=minbase --include="$BASE_PACKAGES" "$SUITE" "$root" "$(mirror)" >"$CACHE/debootstrap.log" 2>&1 ||
			{ tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
		# EG's kernel images run as jovyan, uid 1000, gid 100 (users): the
		# defaults of KERNEL_UID and KERNEL_GID.
		chroot "$root" useradd --uid 1000 --gid 100 --create-home --shell /bin/bash jovyan
		rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log \
			"$root"/debootstrap "$root"/dev/* "$root"/proc/* "$root"/sys/* "$root"/run/*
		tar --numeric-owner --xattrs -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
		rm -rf "$root"; trap - EXIT
	fi
	log "importing $tarball as $BASE_IMAGE"
	if [ "$TOOL" = podman ]; then
		podman import -q "$tarball" "$BASE_IMAGE" >/dev/null
	else
		local ctr; ctr=$(buildah from scratch)
		buildah add -q "$ctr" "$tarball" / >/dev/null
		buildah commit -q "$ctr" "$BASE_IMAGE" >/dev/null
		buildah rm "$ctr" >/dev/null
	fi
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log "building kernelgate $VERSION (static)"
CGO_ENABLED=0 $GO build -trimpath -ldflags "-s -w -X main.version=$VERSION" -o "$work/kernelgate" ./cmd/kernelgate

for image in $IMAGES; do
	case $image in
	gateway)
		ctx=$work/gateway
		mkdir -p "$ctx"/rootfs/{etc/ssl/certs,home/kernelgate,tmp}
		cp "$work/kernelgate" "$ctx/"
		printf 'root:x:0:0:root:/root:/sbin/nologin\nkernelgate:x:65532:65532:kernelgate:/home/kernelgate:/sbin/nologin\n' >"$ctx/rootfs/etc/passwd"
		printf 'root:x:0:\nkernelgate:x:65532:\n' >"$ctx/rootfs/etc/group"
		cp /etc/ssl/certs/ca-certificates.crt "$ctx/rootfs/etc/ssl/certs/"
		chmod 1777 "$ctx/rootfs/tmp"
		chown 65532:65532 "$ctx/rootfs/home/kernelgate" 2>/dev/null || chmod 1777 "$ctx/rootfs/home/kernelgate"
		build deploy/Containerfile "$ctx" "localhost/kernelgate:$TAG"
		log "built localhost/kernelgate:$TAG"
		;;
	kernel-py)
		kernel_base
		ctx=$work/kernel-py
		mkdir -p "$ctx"
		cp "$work/kernelgate" "$ctx/"
		build deploy/kernels/python/Containerfile "$ctx" "localhost/kernelgate-kernel-py:$TAG" --build-arg "BASE=$BASE_IMAGE"
		log "built localhost/kernelgate-kernel-py:$TAG"
		;;
	*) log "unknown image $image"; exit 2 ;;
	esac
done
