#!/usr/bin/env bash
# `make bench`: the standard suite against kernelgate, against the limit (the
# harness reading the kernels directly over ZMQ) and against Debian's
# Jupyter Server when it is installed (its iopub rate limits off, as
# kernelgate has none by default), with ipykernel and with the synthetic
# kernel; then one table of ratios. Everything listens on 127.0.0.1 and is
# stopped on exit.
#
#   bench/run.sh <kernelgate binary> <output dir>
#
# BENCH_QUICK=1 shortens every scenario (a smoke run).
set -euo pipefail

kg=$(realpath "$1")
out=$(realpath -m "$2")
mkdir -p "$out"
source "$(dirname "$0")/lib.sh"

if [ "${BENCH_QUICK:-}" = 1 ]; then
	sizes=(--starts 2 --concurrent-starts 2 --rtt-count 50 --stream-count 10000 --fanout 4
		--users 3 --user-duration 3 --churn-duration 3 --flood-duration 2)
else
	sizes=(--starts 10 --concurrent-starts 5 --rtt-count 500 --stream-count 100000 --fanout 8
		--users 10 --user-duration 20 --churn-duration 20 --flood-duration 10)
fi

full=start,rtt,stream,fanout,flood,users,churn
: >"$out/kernelgate.txt"
serve kernelgate
kgurl=$url kgpid=$pid
echo "== kernelgate at $kgurl (pid $kgpid)"
suite kernelgate "$full" start,rtt,stream,flood,users --url "$kgurl" --pid "$kgpid"
kill "$kgpid"

echo "== the limit: kernels read directly over ZMQ"
: >"$out/limit.txt"
suite limit start,rtt,stream,fanout,flood start,rtt,stream,fanout,flood --direct

reports=("$out/kernelgate.json" "$out/limit.json")
if /usr/bin/python3 -c 'import jupyter_server' 2>/dev/null; then
	port=$(free_port)
	token=bench-$RANDOM$RANDOM
	/usr/bin/python3 -m jupyter_server --no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port="$port" \
		--ServerApp.port_retries=0 --ServerApp.token="$token" --ServerApp.root_dir="$work" --ServerApp.allow_root=True \
		--ServerApp.iopub_msg_rate_limit=0 --ServerApp.iopub_data_rate_limit=0 \
		>"$out/jupyter-server.log" 2>&1 &
	jspid=$!
	pids+=("$jspid")
	wait_port "127.0.0.1:$port"
	echo "== Jupyter Server at http://127.0.0.1:$port (pid $jspid)"
	: >"$out/jupyter-server.txt"
	suite jupyter-server "$full" start,rtt,stream,flood,users --url "http://127.0.0.1:$port" --token "$token" --pid "$jspid" --protocol legacy
	kill "$jspid"
	reports+=("$out/jupyter-server.json")
else
	echo "== Jupyter Server is not installed (apt-get install python3-jupyter-server); compared with the limit only"
fi

echo
echo "== kernelgate against the others (ratios are kernelgate ÷ other; for latency and cost lower is better, for msgs/s higher)"
"$kg" bench compare --html "$out/report.html" "${reports[@]}" | tee "$out/compare.txt"
echo
echo "reports: $out/compare.txt, $out/report.html, $out/*.json"
