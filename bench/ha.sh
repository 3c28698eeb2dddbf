#!/usr/bin/env bash
# `make ha-bench`: a replica group behind Debian's HAProxy (round robin, no
# stickiness, /readyz checks) against one gateway alone — starts, round
# trips and a stream through the balancer — and the failover: SIGKILL of
# the replica that carries two clients mid-stream (how long until output
# resumes and until code runs again, what was lost). Everything listens on
# 127.0.0.1 and is stopped on exit.
#
#   bench/ha.sh <kernelgate binary> <output dir>
#
# HA_REPLICAS (default 2) replicas; BENCH_QUICK=1 shortens the runs.
set -euo pipefail

kg=$(realpath "$1")
out=$(realpath -m "$2")
mkdir -p "$out"
source "$(dirname "$0")/lib.sh"
replicas=${HA_REPLICAS:-2}
if [ "$replicas" -lt 2 ]; then
	echo "ha-bench: HA_REPLICAS must be at least 2" >&2
	exit 2
fi
if [ "${BENCH_QUICK:-}" = 1 ]; then
	sizes=(--starts 2 --concurrent-starts 2 --rtt-count 50 --stream-count 10000)
else
	sizes=(--starts 10 --concurrent-starts 5 --rtt-count 500 --stream-count 100000)
fi
haproxy=$(command -v haproxy || echo /usr/sbin/haproxy)

: >"$out/single.txt"
serve single
echo "== one gateway at $url"
suite single start,rtt,stream start,rtt,stream --quiet --url "$url" --pid "$pid"
kill "$pid"

# The group: a shared persistence root and token, each replica its own
# kernel ports. replica I [PORT] starts replica I (on PORT: back where it
# was).
root="$work/group"
mkdir -p "$root"
token="ha-bench-$RANDOM$RANDOM"
replica() {
	local low=$((20000 + ($1 - 1) * 2000))
	serve "replica$1${2:+-again}" ${2:+--port "$2"} --availability-mode replication --persistence-root "$root" \
		--instance-id "r$1" --replica-token "$token" --local-port-range "$low..$((low + 1999))"
}
servers="" targets=""
for i in $(seq "$replicas"); do
	replica "$i"
	servers+="  server r$i ${url#http://} check inter 300ms fall 2 rise 1"$'\n'
	targets+="${targets:+,}$url=$pid"
done
lbport=$(free_port)
{ cat "$(dirname "$0")/../deploy/haproxy/kernelgate.cfg"; printf %s "$servers"; } >"$work/haproxy.cfg"
KERNELGATE_LB_BIND="127.0.0.1:$lbport" "$haproxy" -f "$work/haproxy.cfg" -db >"$out/haproxy.log" 2>&1 &
pids+=("$!")
wait_port "127.0.0.1:$lbport"
lb="http://127.0.0.1:$lbport"
echo "== $replicas replicas behind HAProxy at $lb"
: >"$out/group.txt"
suite "group-$replicas" start,rtt,stream start,rtt,stream --quiet --url "$lb"

# Failover kills a replica: one run per kernel, the killed replica brought
# back in between.
: >"$out/failover.txt"
files=()
for kernel in synthetic python3; do
	"$kg" bench --label "failover-$replicas" --kernel "$kernel" --scenarios failover --url "$lb" --replicas "$targets" \
		--json "$work/failover-$kernel.json" --quiet | tee -a "$out/failover.txt"
	files+=("$work/failover-$kernel.json")
	# Bring the killed replica back under its name and address.
	for i in $(seq "$replicas"); do
		p=$(echo "$targets" | tr ',' '\n' | sed -n "${i}p")
		if ! kill -0 "${p#*=}" 2>/dev/null; then
			u=${p%=*}
			replica "$i" "${u##*:}"
			targets=$(echo "$targets" | sed "s#$u=[0-9]*#$u=$pid#")
		fi
	done
done
merge_json "$out/failover.json" "${files[@]}"

echo
echo "== the group against one gateway (ratios are group ÷ single)"
"$kg" bench compare --html "$out/report.html" "$out/group-$replicas.json" "$out/single.json" | tee "$out/compare.txt"
echo
echo "reports: $out/compare.txt, $out/failover.txt, $out/report.html, $out/*.json"
