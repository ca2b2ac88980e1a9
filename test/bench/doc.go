// Package bench holds the benchmark behind `make bench`: committed
// writes per second and their latency, through the HTTPS API of real
// certvaultd processes (1 and 3 nodes, started by package testcluster)
// and, for comparison, through an in-process raftstore on a real bbolt
// log without TLS, HTTP, JSON or encryption.
//
// The code is behind the build tag "bench", so `go test ./...` and
// `go vet ./...` leave it alone; run it with
//
//	go test -tags bench -run TestBench -v -timeout 40m ./test/bench
//
// It prints one table and writes the figures, the machine they were taken
// on and the goal and published anchors they are measured against to
// bench-results/writes-<UTC time>.json and bench-results/writes-latest.json
// at the module root. Environment variables tune a run:
//
//	CERTVAULT_BENCH_SECONDS  measured seconds per run (default 8)
//	CERTVAULT_BENCH_WARMUP   warm-up seconds before each run (default 2)
//	CERTVAULT_BENCH_CLIENTS  comma-separated client counts (default 1,16,256)
//	CERTVAULT_BENCH_NAMES    distinct secret names written (default 64)
//
// Each topology's cluster is started once and its rows run in order on it,
// so later rows run on a larger state (every write adds a secret version);
// the in-process store is likewise opened once. Besides writes/s and
// latency, a row records the CPU time of the certvaultd processes, of the
// load generator (which shares the machine with them) and of everything
// else, and the compare-and-set conflicts and forwards the nodes counted.
//
// It measures and asserts nothing about speed: a slow machine gives a
// slow figure, not a failure. It owns no production code.
package bench
