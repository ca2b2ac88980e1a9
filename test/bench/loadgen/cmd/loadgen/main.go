// Command loadgen runs package loadgen's generator (see there) with its
// flags and writes its JSON lines to stdout. The token comes from the
// environment (CERTVAULT_TOKEN), never from the command line, which ps
// shows. Anything wrong with the run itself (flags, the CA file) is on
// stderr with exit status 2.
package main

import (
	"crypto/x509"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/certvault/certvault/test/bench/loadgen"
)

func main() {
	targets := flag.String("targets", "", "comma-separated base URLs (https://HOST:PORT); client i uses target i mod their number")
	caFile := flag.String("cacert", "", "PEM file of the CA the targets' certificates chain to")
	cfg := loadgen.Config{Token: os.Getenv("CERTVAULT_TOKEN")}
	flag.IntVar(&cfg.Clients, "clients", 1, "concurrent clients, one keep-alive connection each")
	flag.StringVar(&cfg.Op, "op", "create", "create, sign or get")
	flag.StringVar(&cfg.Prefix, "prefix", "lg", "create: certificate names are <prefix>-<client>-<seq>; get: secret names are <prefix>-<client mod names>")
	flag.IntVar(&cfg.Names, "names", 1, "get: how many secrets the clients read")
	flag.StringVar(&cfg.Key, "key", "", "sign: the key to sign with")
	flag.DurationVar(&cfg.Warmup, "warmup", 2*time.Second, "load before the measured window")
	flag.DurationVar(&cfg.Duration, "duration", 8*time.Second, "the measured window")
	flag.Parse()
	if *targets != "" {
		cfg.Targets = strings.Split(*targets, ",")
	}
	pem, err := os.ReadFile(*caFile)
	if err != nil {
		fail(fmt.Errorf("read the CA: %w", err))
	}
	cfg.Pool = x509.NewCertPool()
	if !cfg.Pool.AppendCertsFromPEM(pem) {
		fail(fmt.Errorf("no certificate in %s", *caFile))
	}
	if err := loadgen.Run(cfg, os.Stdout); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "loadgen:", err)
	os.Exit(2)
}
