# Shared by the bench scripts (sourced): a work directory cleaned up on
# exit with every process started, the kernelspecs (the synthetic kernel is
# the kernelgate binary $kg; python3 is ipykernel's), and helpers.

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/jupyter/kernels/synthetic"
printf '{"argv":["%s","bench-kernel","-f","{connection_file}"],"display_name":"Synthetic","language":"synthetic","interrupt_mode":"signal"}\n' \
	"$kg" >"$work/jupyter/kernels/synthetic/kernel.json"
export JUPYTER_PATH="$work/jupyter"
export JUPYTER_RUNTIME_DIR="$work/runtime"

# wait_port HOST:PORT waits (up to a minute) until something accepts there.
wait_port() {
	for _ in $(seq 300); do
		if (exec 3<>"/dev/tcp/${1%:*}/${1#*:}") 2>/dev/null; then return 0; fi
		sleep 0.2
	done
	echo "bench: nothing listens on $1" >&2
	return 1
}

free_port() {
	/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# serve NAME ARGS... starts `kernelgate serve` on a free loopback port with
# ARGS, its log in $out/NAME.log; it sets $url and $pid.
serve() {
	local name=$1
	shift
	"$kg" serve --ip 127.0.0.1 --port 0 --port-retries 0 --unauthorized-users "" --log-level warn \
		--runtime-dir "$work/$name-runtime" "$@" >"$work/$name.out" 2>"$out/$name.log" &
	pid=$!
	pids+=("$pid")
	for _ in $(seq 100); do grep -q "is available at" "$work/$name.out" 2>/dev/null && break; sleep 0.1; done
	url=$(grep 'is available at' "$work/$name.out" | grep -o 'http://[0-9.:]*')
	if [ -z "$url" ]; then
		echo "bench: $name did not start; see $out/$name.log" >&2
		return 1
	fi
}

# suite LABEL SCENARIOS PYTHON_SCENARIOS ARGS... runs `kernelgate bench`
# with the synthetic kernel (SCENARIOS) and ipykernel (PYTHON_SCENARIOS),
# the sizes in ${sizes[@]} and ARGS, into $out/LABEL.txt and one JSON array
# in $out/LABEL.json.
suite() {
	local label=$1 synthetic=$2 python=$3
	shift 3
	local files=()
	for kernel in synthetic python3; do
		local scen=$synthetic
		if [ "$kernel" = python3 ]; then scen=$python; fi
		"$kg" bench --label "$label" --kernel "$kernel" --scenarios "$scen" "${sizes[@]}" \
			--json "$work/$label-$kernel.json" "$@" | tee -a "$out/$label.txt"
		files+=("$work/$label-$kernel.json")
	done
	merge_json "$out/$label.json" "${files[@]}"
}

# merge_json OUT FILES... writes the reports of FILES as one JSON array.
merge_json() {
	local to=$1
	shift
	/usr/bin/python3 -c 'import json,sys; print(json.dumps([r for f in sys.argv[1:] for r in json.load(open(f))], indent=1))' \
		"$@" >"$to"
}
