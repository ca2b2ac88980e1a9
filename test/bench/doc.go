// Package bench holds the benchmark behind `make bench`: committed
// writes per second and their latency, through the HTTPS API of real
// certvaultd processes (1 and 3 nodes, started by package testcluster)
// and, for comparison, through an in-process raftstore on a real bbolt
// log without TLS, HTTP, JSON or encryption; and, for issue #3,
// certificates created to completion per second and secret reads per
// second through the same API.
//
// The code is behind the build tag "bench", so `go test ./...` and
// `go vet ./...` leave it alone; run it with
//
//	go test -tags bench -run TestBench -v -timeout 40m ./test/bench
//
// TestBench runs these groups in order (select some with
// -run 'TestBench/<regexp>'):
//
//	store         writes through the in-process raftstore
//	api-1node     secret PUTs through one node
//	api-3nodes    secret PUTs through three nodes, spread and on the leader
//	raw-issue     the raw ceiling: GOMAXPROCS goroutines of this process
//	              looping EC P-256 key generation + self-signing with the
//	              vault's own template (vault/certs), no cluster running
//	issue-1node   secret GETs, then certificate creates, on one node
//	issue-3nodes  the same on three nodes, clients spread over all of them
//
// Secret GETs read GET /secrets/{name}/ (a linearizable read) of
// CERTVAULT_BENCH_NAMES secrets set beforehand. Creates POST
// /certificates/{name}/create with an EC P-256, issuer Self, 12-month
// policy, a new name every time, and count only 202 answers whose
// operation is completed; their share of the raw ceiling measured in the
// same run is reported beside them. Reads run before creates, so that
// they see a vault holding only the secrets they read.
//
// It prints two tables, writes and then issuance and reads, and writes the
// figures, the machine they were taken on and the goals and published
// anchors they are measured against (issue #2's for writes, issue #3's
// for creates and reads) to bench-results/writes-<UTC time>.json and,
// for a run of every group, bench-results/writes-latest.json at the module
// root. The file keeps its name for continuity; each result carries a
// "kind" that says what its writes and writes_per_sec count: "write"
// (committed secret writes), "raw-create" (certificates of the raw loop),
// "create" (completed creates) or "read" (secret GETs answered 200 with
// the value). Environment variables tune a run:
//
//	CERTVAULT_BENCH_SECONDS  measured seconds per run (default 8)
//	CERTVAULT_BENCH_WARMUP   warm-up seconds before each run (default 2)
//	CERTVAULT_BENCH_CLIENTS  comma-separated client counts (default 1,16,256)
//	CERTVAULT_BENCH_NAMES    distinct secret names written or read (default 64)
//	CERTVAULT_BENCH_PPROF    loopback HOST:PORT where a single-node cluster
//	                         serves Go profiles (certvaultd --pprof-listen)
//
// Each topology's cluster is started once and its rows run in order on it,
// so later rows run on a larger state (every write adds a secret version,
// every create a certificate); the in-process store is likewise opened
// once. Besides the rate and latency, a row records the CPU time of the
// certvaultd processes, of the load generator (which shares the machine
// with them) and of everything else, and the compare-and-set conflicts
// and forwards the nodes counted.
//
// It measures and asserts nothing about speed: a slow machine gives a
// slow figure, not a failure. It owns no production code.
package bench
