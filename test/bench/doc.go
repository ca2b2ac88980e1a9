// Package bench holds the benchmark behind `make bench`: committed
// writes per second and their latency, through the HTTPS API of real
// certvaultd processes (1 and 3 nodes, started by package testcluster)
// and, for comparison, through an in-process raftstore on a real bbolt
// log without TLS, HTTP, JSON or encryption; for issue #3,
// certificates created to completion per second and secret reads per
// second through the same API; and, for issue "HSM-backed keys" (item 7),
// ECDSA P-256 signatures per second with a key in a SoftHSM2 token,
// straight through crypto11 and through the keys API; and, for issue 18
// (Azure identity), the token endpoint's requests per second and what a
// secret GET costs with its access token against a certvault token.
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
//	hsm           ES256 signatures with an EC P-256 key in one SoftHSM2
//	              token: first goroutines of this process calling Sign
//	              straight through crypto11 (package vault/hsm), no node
//	              running; then POST /keys/{name}/sign on one node started
//	              with --seal pkcs11 on the same token
//	identity      on one node: POST /{tenant}/oauth2/v2.0/token with a
//	              service principal's client secret, then with client
//	              assertions; then GET /secrets/bench-x with a cvt token
//	              of the same role and with the endpoint's access token
//	schedule      the renewal scheduler with 100,000 certificates, in
//	              process: planning one version, the memory the plans
//	              hold, and one tick with nothing due (beside 1,000)
//	agent         certvault-agent: binary size, resident memory idle and
//	              after 50 installs, commit-to-swap time (fsnotify on the
//	              binding's current link)
//	fleet         1,000 / 5,000 / 10,000 simulated agents (real enrollment,
//	              mutual TLS, the long poll; CERTVAULT_BENCH_AGENTS to
//	              choose) on one node, then the largest on three: time from
//	              a new version's create to each agent's answer, vault
//	              memory per waiting agent, vault CPU
//
// Secret GETs read GET /secrets/{name}/ (a linearizable read) of
// CERTVAULT_BENCH_NAMES secrets set beforehand. Creates POST
// /certificates/{name}/create with an EC P-256, issuer Self, 12-month
// policy, a new name every time, and count only 202 answers whose
// operation is completed; their share of the raw ceiling measured in the
// same run is reported beside them. Reads run before creates, so that
// they see a vault holding only the secrets they read.
//
// The hsm group needs cgo and SoftHSM2 (apt-get install softhsm2; it
// skips without them, and the run is then not complete). It initializes
// a token in a temporary directory (package test/softhsmtest, which sets
// SOFTHSM2_CONF for the test). The direct rows open it with hsm.Open,
// generate an EC P-256 key there and sign a SHA-256 digest with it from
// as many goroutines as clients, sharing one crypto11 context of at most
// 64 sessions; they close it before the node starts. The node then opens
// the token with its own sessions, a key is created with POST
// /keys/{name}/create {"kty":"EC-HSM","crv":"P-256"}, and each client
// signs with POST /keys/{name}/sign {"alg":"ES256","value":<digest>}
// over its own keep-alive HTTPS connection with the root token; only 200
// answers with a 64-byte signature count, and one signature is verified
// with the key's public key before and after the runs. Each API row
// reports its rate as a share of the direct rate at the same client
// count.
//
// The identity group's node holds two service principals made with
// `certvault sp create` (Secrets User at /secrets/bench-), one with a
// client secret and one with a registered RSA-2048 certificate, and a
// cvt token made with `certvault token create` with the same role and
// scope. Its token rows post grant_type=client_credentials for the scope
// https://HOST/.default, with the client secret, or with a client
// assertion: a JWT signed PS256 with the certificate's key, header
// x5t#S256, iss and sub the client id, aud the token endpoint, exp ten
// minutes ahead, nbf, jti. Each assertion run makes 16 of them
// beforehand and client i sends number i mod 16 every time (the vault
// keeps no replay record), so the rows measure the vault's verification
// and not this process's RSA signing. Only 200 answers with a bearer
// token count. The token endpoint takes no credential: its requests
// count against the node's --max-unauthenticated-requests (64), and more
// clients than that see 503s. Its GET rows read GET
// /secrets/bench-x?api-version=7.5 at each client count with the cvt
// token (get-cvt) and then with one access token of the client-secret
// principal shared by all clients (get-jwt); ratio_to_cvt is get-jwt's
// rate over get-cvt's at the same client count. The group has no goals.
// Its rows are shorter than the others' so that it takes well under a
// minute: at most 2 s measured after at most 0.5 s of warm-up (less when
// CERTVAULT_BENCH_SECONDS or CERTVAULT_BENCH_WARMUP say less).
//
// It prints four tables, writes, then issuance and reads, then HSM
// signatures, then the identity group's, and writes the figures, the machine they were taken on and
// the goals and published anchors they are measured against (issue #2's
// for writes, issue #3's for creates and reads, issue "HSM-backed keys"'s
// for signatures: hsm_goals, hsm_anchors) to
// bench-results/writes-<UTC time>.json and, for a run of every group,
// bench-results/writes-latest.json at the module root. The file keeps its
// name for continuity; each result carries a "kind" that says what its
// writes and writes_per_sec count: "write" (committed secret writes),
// "raw-create" (certificates of the raw loop), "create" (completed
// creates), "read" (secret GETs answered 200 with the value),
// "hsm-direct" (signatures made through crypto11 by this process) or
// "hsm-sign" (signs through the keys API answered 200 with a signature;
// pct_of_direct is their share of the hsm-direct rate at the same client
// count), "token" (token requests answered 200 with a bearer token) or
// "identity-read" (the identity group's secret GETs answered 200 with
// the value). The HSM goal, at least 70 % of the direct crypto11 rate through
// the keys API, is evaluated at the client count where the API signs
// most, against the direct rate at that count. Environment variables
// tune a run:
//
//	CERTVAULT_BENCH_SECONDS  measured seconds per run (default 8)
//	CERTVAULT_BENCH_WARMUP   warm-up seconds before each run (default 2)
//	CERTVAULT_BENCH_CLIENTS  comma-separated client counts (default 1,16,256);
//	                         the hsm group uses them for both of its paths
//	CERTVAULT_BENCH_NAMES    distinct secret names written or read (default 64)
//	CERTVAULT_BENCH_PPROF    loopback HOST:PORT where a single-node cluster
//	                         serves Go profiles (certvaultd --pprof-listen),
//	                         the hsm group's node included
//
// Each topology's cluster is started once and its rows run in order on it,
// so later rows run on a larger state (every write adds a secret version,
// every create a certificate); the in-process store is likewise opened
// once, and so is the hsm group's token, shared by its two paths.
// Besides the rate and latency, a row records the CPU time of the
// certvaultd processes, of the load generator (which shares the machine
// with them) and of everything else, and the compare-and-set conflicts
// and forwards the nodes counted.
//
// It measures and asserts nothing about speed: a slow machine gives a
// slow figure, not a failure. It owns no production code.
package bench
