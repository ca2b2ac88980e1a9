// Package loadgen is the benchmark's load generator, run in a process of
// its own (cmd/loadgen) as a vault's clients really are: `make bench`
// (test/bench) starts it beside the certvaultd processes it measures, so
// that the vault and its clients compete for the machine's cores the way
// separate programs do, and the bench process itself stays idle during a
// row. It is test support, never shipped in a package; the bench imports
// it for Result and the statistics both sides compute alike.
//
// Each of Config.Clients clients is a goroutine with an http.Transport of
// its own: one keep-alive HTTP/1.1 connection over TLS, handshaken once,
// as separate SDK clients would hold. Client i talks to target i mod the
// number of targets and repeats one operation in a closed loop:
//
//	create  POST /certificates/<prefix>-<i>-<seq>/create?api-version=7.6
//	        with an EC P-256, issuer Self, 12-month policy, a new name
//	        every time; it counts when answered 202 with the operation's
//	        status "completed" (the bench's definition of a completed
//	        create)
//	sign    POST /keys/<key>/sign?api-version=7.6 {"alg":"ES256",
//	        "value":<a SHA-256 digest>}; it counts when answered 200 with
//	        a 64-byte signature
//
// A run is Config.Warmup of load, then Config.Duration measured; only
// operations that end inside the measured window count. Run writes JSON
// lines: {"event":"measuring"} when the window opens, {"event":"measured"}
// when it closes (so that the bench can read the vault's CPU time at
// those moments) and last the Result.
package loadgen

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Result is the last line loadgen prints.
type Result struct {
	Event   string `json:"event"`
	Op      string `json:"op"`
	Clients int    `json:"clients"`
	// Seconds is the measured window; Completed the operations that
	// counted in it and PerSec their rate.
	Seconds   float64 `json:"seconds"`
	Completed int     `json:"completed"`
	PerSec    float64 `json:"per_sec"`
	// Latencies of the counted operations, in milliseconds.
	P50ms float64 `json:"p50_ms"`
	P99ms float64 `json:"p99_ms"`
	Maxms float64 `json:"max_ms"`
	// Errors counts operations that ended in the window and did not
	// count, by class: an HTTP status ("409", "503"), "transport",
	// "timeout", "body", "status <operation status>", "value".
	Errors        int            `json:"errors"`
	ErrorsByClass map[string]int `json:"errors_by_class,omitempty"`
	// CPUSeconds is this process's user + system CPU time in the window.
	CPUSeconds float64 `json:"cpu_seconds"`
}

type event struct {
	Event string `json:"event"`
}

// Config is one run of the generator.
type Config struct {
	// Targets are base URLs (https://HOST:PORT); client i uses target i
	// mod their number.
	Targets []string
	// Pool holds the CA the targets' certificates chain to.
	Pool *x509.CertPool
	// Token is the bearer token every request carries.
	Token   string
	Clients int
	// Op is "create", "sign" or "get".
	Op string
	// Prefix starts the created certificates' names: <Prefix>-<i>-<seq>;
	// for get, client i reads the secret <Prefix>-<i mod Names>.
	Prefix string
	Names  int
	// Key is the key sign signs with.
	Key              string
	Warmup, Duration time.Duration
}

// Run drives the load and writes its JSON lines to out: the window
// marks, then the Result.
func Run(cfg Config, out io.Writer) error {
	if len(cfg.Targets) == 0 || cfg.Token == "" || cfg.Clients < 1 || cfg.Duration <= 0 || cfg.Warmup < 0 {
		return errors.New("loadgen: want targets, a token, clients >= 1, a duration > 0 and a warm-up >= 0")
	}
	var do func(c *client) string
	switch cfg.Op {
	case "create":
		do = func(c *client) string { return c.create(cfg.Prefix) }
	case "sign":
		if cfg.Key == "" {
			return errors.New("loadgen: sign needs a key")
		}
		do = func(c *client) string { return c.sign(cfg.Key) }
	case "get":
		if cfg.Names < 1 {
			return errors.New("loadgen: get needs names >= 1")
		}
		do = func(c *client) string { return c.get(cfg.Prefix + "-" + strconv.Itoa(c.i%cfg.Names)) }
	default:
		return fmt.Errorf("loadgen: op %q: want create, sign or get", cfg.Op)
	}

	cs := make([]*client, cfg.Clients)
	for i := range cs {
		cs[i] = newClient(i, strings.TrimSuffix(cfg.Targets[i%len(cfg.Targets)], "/"), cfg.Token, cfg.Pool)
	}
	start := time.Now()
	from, until := start.Add(cfg.Warmup), start.Add(cfg.Warmup+cfg.Duration)
	loop := StartLoop(cfg.Clients, from, until, func(i int) string { return do(cs[i]) })

	enc := json.NewEncoder(out)
	time.Sleep(time.Until(from))
	cpu0 := SelfCPU()
	if err := enc.Encode(event{Event: "measuring"}); err != nil {
		return fmt.Errorf("loadgen: write: %w", err)
	}
	time.Sleep(time.Until(until))
	cpu1 := SelfCPU()
	if err := enc.Encode(event{Event: "measured"}); err != nil {
		return fmt.Errorf("loadgen: write: %w", err)
	}
	all, errs := loop.Wait()
	for _, c := range cs {
		c.hc.CloseIdleConnections()
	}

	res := Result{Event: "result", Op: cfg.Op, Clients: cfg.Clients, Seconds: cfg.Duration.Seconds(), CPUSeconds: cpu1 - cpu0, ErrorsByClass: errs}
	for _, n := range errs {
		res.Errors += n
	}
	res.Completed = len(all)
	res.PerSec = float64(len(all)) / res.Seconds
	res.P50ms, res.P99ms = Ms(Percentile(all, 0.50)), Ms(Percentile(all, 0.99))
	if len(all) > 0 {
		res.Maxms = Ms(all[len(all)-1])
	}
	if err := enc.Encode(res); err != nil {
		return fmt.Errorf("loadgen: write: %w", err)
	}
	return nil
}

// Loop is n callers of an operation in a closed loop (StartLoop).
type Loop struct {
	wg      sync.WaitGroup
	callers []caller
}

type caller struct {
	lat    []time.Duration
	errors map[string]int
}

// StartLoop starts n goroutines; goroutine i calls op(i) again and again
// until until, and records each call that ends between from and until:
// its latency when op returned "", else op's answer as an error class.
func StartLoop(n int, from, until time.Time, op func(i int) string) *Loop {
	l := &Loop{callers: make([]caller, n)}
	for i := range l.callers {
		c := &l.callers[i]
		c.lat, c.errors = make([]time.Duration, 0, 1024), map[string]int{}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for {
				t0 := time.Now()
				if !t0.Before(until) {
					return
				}
				class := op(i)
				t1 := time.Now()
				if t1.Before(from) || t1.After(until) {
					continue
				}
				if class != "" {
					c.errors[class]++
					continue
				}
				c.lat = append(c.lat, t1.Sub(t0))
			}
		}()
	}
	return l
}

// Wait waits for every caller to stop and returns the latencies of the
// operations that counted, sorted, and the others by error class.
func (l *Loop) Wait() ([]time.Duration, map[string]int) {
	l.wg.Wait()
	var all []time.Duration
	errs := map[string]int{}
	for _, c := range l.callers {
		all = append(all, c.lat...)
		for class, n := range c.errors {
			errs[class] += n
		}
	}
	slices.Sort(all)
	return all, errs
}

// client is one caller with its own connection.
type client struct {
	i    int
	base string
	auth string
	hc   *http.Client
	seq  int
	buf  bytes.Buffer
}

func newClient(i int, base, token string, pool *x509.CertPool) *client {
	return &client{
		i: i, base: base, auth: "Bearer " + token,
		hc: &http.Client{
			Timeout: 30 * time.Second,
			Transport: &http.Transport{
				TLSClientConfig:     &tls.Config{RootCAs: pool},
				ForceAttemptHTTP2:   false,
				TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
				MaxIdleConns:        1,
				MaxIdleConnsPerHost: 1,
				MaxConnsPerHost:     1,
				IdleConnTimeout:     time.Minute,
			},
		},
	}
}

// createBody is the policy of every create: EC P-256, issuer Self, 12
// months, subject CN=<name>.
func createBody(name string) []byte {
	return []byte(`{"policy":{"key_props":{"kty":"EC","crv":"P-256"},"x509_props":{"subject":"CN=` + name +
		`","validity_months":12},"issuer":{"name":"Self"}}}`)
}

// create makes one certificate and returns "" when it was answered 202
// with the operation completed, else an error class.
func (c *client) create(prefix string) string {
	c.seq++
	name := prefix + "-" + strconv.Itoa(c.i) + "-" + strconv.Itoa(c.seq)
	class, body := c.post(c.base+"/certificates/"+name+"/create?api-version=7.6", createBody(name), http.StatusAccepted)
	if class != "" {
		return class
	}
	var op struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(body, &op); err != nil {
		return "body"
	}
	if op.Status != "completed" {
		return "status " + op.Status
	}
	return ""
}

// signDigest is what every sign signs.
var signDigest = sha256.Sum256([]byte("certvault hsm bench"))

var signBody = []byte(`{"alg":"ES256","value":"` + base64.RawURLEncoding.EncodeToString(signDigest[:]) + `"}`)

// sign signs once and returns "" when it was answered 200 with a 64-byte
// signature, else an error class.
func (c *client) sign(key string) string {
	class, body := c.post(c.base+"/keys/"+key+"/sign?api-version=7.6", signBody, http.StatusOK)
	if class != "" {
		return class
	}
	var out struct {
		Value string `json:"value"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return "body"
	}
	sig, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(out.Value, "="))
	if err != nil || len(sig) != 64 {
		return "value"
	}
	return ""
}

// get reads the secret name once and returns "" when it was answered 200
// with a value, else an error class.
func (c *client) get(name string) string {
	class, body := c.do(http.MethodGet, c.base+"/secrets/"+name+"/?api-version=7.6", nil, http.StatusOK)
	if class != "" {
		return class
	}
	var out struct {
		Value *string `json:"value"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.Value == nil {
		return "value"
	}
	return ""
}

// post sends body and reads the answer into c.buf; it returns "" and the
// answer when the status is want, else an error class.
func (c *client) post(url string, body []byte, want int) (string, []byte) {
	return c.do(http.MethodPost, url, body, want)
}

// do sends a request (with body, when not nil) and reads the answer into
// c.buf; it returns "" and the answer when the status is want, else an
// error class.
func (c *client) do(method, url string, body []byte, want int) (string, []byte) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return "request", nil
	}
	req.Header.Set("Authorization", c.auth)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if os.IsTimeout(err) {
			return "timeout", nil
		}
		return "transport", nil
	}
	c.buf.Reset()
	_, err = io.Copy(&c.buf, resp.Body)
	resp.Body.Close()
	if err != nil {
		return "body", nil
	}
	if resp.StatusCode != want {
		return strconv.Itoa(resp.StatusCode), nil
	}
	return "", c.buf.Bytes()
}

// Percentile returns the nearest-rank p-quantile of sorted samples.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// Ms is d in milliseconds.
func Ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// SelfCPU returns this process's user + system CPU seconds.
func SelfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Sec) + float64(ru.Utime.Usec)/1e6 + float64(ru.Stime.Sec) + float64(ru.Stime.Usec)/1e6
}
