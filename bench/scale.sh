#!/usr/bin/env bash
# `make scale`: one gateway with thousands of live kernels. A kernel farm
# (`kernelgate bench-kernel --farm`) hosts the synthetic kernels, each on a
# loopback address of its own; kernelgate launches them through its "farm"
# process proxy (EG's launcher protocol: the farm calls back with each
# kernel's connection info) and holds its own ZMQ sockets, heartbeats and a
# websocket to every one; `kernelgate bench --scenarios scale` ramps up,
# measures at 1,000, 5,000 and SCALE_KERNELS, and writes scale.json,
# scale.html (the curves), report.json and scale.txt. Everything listens on
# 127.0.0.0/8 and is stopped on exit.
#
#   bench/scale.sh <kernelgate binary> <output dir> [kernels]
#
# The machine: each of the three processes needs about 12 open files per
# kernel (the farm 11: five ZMQ listeners and connections and a comm port;
# the gateway 6: five ZMQ connections and a websocket), so the open-file
# limit is raised for them (root may raise the hard limit); the ephemeral
# port range must hold the bench's websockets per source address (it
# spreads them over 127.77.0.x, 500 each).
set -euo pipefail

kg=$(realpath "$1")
out=$(realpath -m "$2")
kernels=${3:-10000}
mkdir -p "$out"
source "$(dirname "$0")/lib.sh"

burst=${SCALE_BURST:-1000}
farmpids=()
files=$(( (kernels + burst) * 12 + 16384 ))
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$files" ]; then
	ulimit -Hn "$files" 2>/dev/null || echo "scale: cannot raise the hard open-file limit to $files (not root?); the run may fail at $(ulimit -Hn)" >&2
fi
ulimit -n "$(ulimit -Hn)"
# The gateway holds 6 open files a kernel (five ZMQ connections and a
# websocket), the burst's kernels on top: where the limit cannot be raised
# (a container without CAP_SYS_RESOURCE), measure as many kernels as it
# holds rather than fail at it, and say so.
if [ "$(ulimit -n)" != unlimited ]; then
	fits=$(( ($(ulimit -n) - 1024) / 6 - (burst > 0 ? burst : 0) ))
	if [ "$kernels" -gt "$fits" ]; then
		echo "scale: the open-file limit $(ulimit -n) holds about $fits kernels besides the burst; measuring $fits (the gateway needs $(( (kernels + burst) * 6 + 1024 )) for $kernels)" >&2
		kernels=$fits
	fi
fi

machine() {
	echo "== $1: $(date -u +%FT%TZ)"
	echo "$(nproc) cores, $(free -g | awk '/^Mem:/ {print $2 " GiB, " $7 " GiB available"}'), load: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "open files: $(ulimit -n); ephemeral ports: $(cat /proc/sys/net/ipv4/ip_local_port_range)"
	echo "busiest processes:"
	ps -eo pcpu,rss,comm --sort=-pcpu | head -8
}
machine before >"$out/machine.txt"

# A farm holds about 11 open files per kernel: as many farms as the limit
# needs, each kernel address range a /16 of its own.
perfarm=$(( ($(ulimit -n) - 1024) / 11 ))
nfarms=$(( (kernels + burst + 100 + perfarm - 1) / perfarm ))
farms=()
for i in $(seq 0 $((nfarms - 1))); do
	"$kg" bench-kernel --farm 127.0.0.1:0 --farm-first-ip "127.$((64 + i)).0.1" --farm-max-kernels "$perfarm" \
		>"$work/farm$i.out" 2>"$out/farm$i.log" &
	pids+=("$!")
	farmpids+=("$!")
	for _ in $(seq 100); do grep -q "is available at" "$work/farm$i.out" 2>/dev/null && break; sleep 0.1; done
	a=$(grep -o '127[0-9.:]*' "$work/farm$i.out" || true)
	if [ -z "$a" ]; then
		echo "scale: farm $i did not start; see $out/farm$i.log" >&2
		exit 1
	fi
	farms+=("$a")
done
farm=$(IFS=,; echo "${farms[*]}")
mkdir -p "$work/jupyter/kernels/farm"
printf '{"argv":["farm"],"display_name":"Synthetic (kernel farm)","language":"synthetic","metadata":{"process_proxy":{"class_name":"farm","config":{"farm_address":"%s"}}}}\n' \
	"$farm" >"$work/jupyter/kernels/farm/kernel.json"

serve kernelgate --list-kernels --response-ip 127.0.0.1 ${SCALE_SERVE_ARGS:-}
echo "== kernelgate at $url (pid $pid), $nfarms farm(s) at $farm (pids ${farmpids[*]}), $kernels kernels"
"$kg" bench --url "$url" --pid "$pid" --kernel farm --scenarios scale --kernels "$kernels" --scale-burst "$burst" \
	--json "$out/report.json" --html "$out/scale.html" --scale-json "$out/scale.json" ${SCALE_BENCH_ARGS:-} | tee "$out/scale.txt"
machine after >>"$out/machine.txt"
echo "reports: $out/scale.json, $out/scale.html, $out/scale.txt, $out/machine.txt"
