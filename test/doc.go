// Package test holds certvault's end-to-end tests: real certvaultd
// processes on 127.0.0.1 ports, started and killed by the tests through
// package testcluster. The benchmark harness lives in test/bench.
package test
