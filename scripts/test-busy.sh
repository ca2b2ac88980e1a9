#!/usr/bin/env bash
# test-busy.sh runs `make test` with a CPU hog beside it: HOGS busy
# processes (default 2, one per core of the 2-core machines CI uses) that
# spin until the suite ends. The suite must pass this way; it is how a
# shared or busy machine looks to the tests (slower raft elections, later
# timers, slower TLS handshakes), without any test knowing about it.
#
#   bash scripts/test-busy.sh          once
#   RUNS=3 bash scripts/test-busy.sh   three times in a row, stopping at the first failure
#
# The hogs are this script's own children: they are stopped on every way
# out (success, failure, Ctrl-C), and the script prints each run's time.
set -euo pipefail
cd "$(dirname "$0")/.."

HOGS=${HOGS:-2}
RUNS=${RUNS:-1}
MAKE=${MAKE:-make}

hogs=()
stop_hogs() {
	if [ ${#hogs[@]} -gt 0 ]; then
		kill "${hogs[@]}" 2>/dev/null || true
		wait "${hogs[@]}" 2>/dev/null || true
		hogs=()
	fi
}
trap stop_hogs EXIT
trap 'stop_hogs; exit 130' INT TERM

# Everything the suite needs is installed and built before the hogs start,
# so that they load the tests, not apt-get.
"$MAKE" deps

for i in $(seq "$HOGS"); do
	# A shell busy loop: no output, no memory, no system calls.
	bash -c 'while :; do :; done' &
	hogs+=("$!")
done
echo "test-busy: ${HOGS} CPU hogs running (pids ${hogs[*]}) beside make test, ${RUNS} run(s)"

for run in $(seq "$RUNS"); do
	start=$(date +%s)
	if ! "$MAKE" test; then
		echo "test-busy: run ${run} of ${RUNS} FAILED after $(( $(date +%s) - start ))s"
		exit 1
	fi
	echo "test-busy: run ${run} of ${RUNS} passed in $(( $(date +%s) - start ))s"
done
