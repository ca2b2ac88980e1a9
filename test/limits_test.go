package test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/certvault/certvault/test/testcluster"
)

// rawConn opens a TLS connection that speaks HTTP/1.1 to node n, closed
// when the test ends.
func rawConn(t *testing.T, c *testcluster.Cluster, n *testcluster.Node) *tls.Conn {
	t.Helper()
	pem, err := os.ReadFile(c.CACert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	d := &net.Dialer{Timeout: 10 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", n.API, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatalf("dial %s: %v", n.ID, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// writeHead writes a request's head announcing a body of length bytes,
// and none of the body.
func writeHead(t *testing.T, conn net.Conn, method, path, token string, length int) {
	t.Helper()
	head := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n", method, path, conn.RemoteAddr(), length)
	if token != "" {
		head += "Authorization: Bearer " + token + "\r\n"
	}
	if _, err := io.WriteString(conn, head+"\r\n"); err != nil {
		t.Fatalf("write the request head: %v", err)
	}
}

// TestSlowBodyCut: a client that sends the headers and then one byte a
// second is cut once the body read timeout passed, with 408 and the
// connection closed, on an authenticated write and on the unauthenticated
// endpoints (agent enrollment, node join) alike.
func TestSlowBodyCut(t *testing.T) {
	t.Parallel()
	const timeout = 2 * time.Second
	const limit = 3*timeout + 10*time.Second
	c := testcluster.Start(t, 1, testcluster.Options{ExtraArgs: []string{"--body-read-timeout", timeout.String()}})
	n := c.Nodes[0]
	for _, tc := range []struct {
		name, method, path, token string
	}{
		{"secret set", http.MethodPut, "/secrets/slow?api-version=7.6", c.Token},
		{"agent enrollment", http.MethodPost, "/v1/agents/enroll", ""},
		{"node join", http.MethodPost, "/v1/sys/cluster/join", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := rawConn(t, c, n)
			start := time.Now()
			writeHead(t, conn, tc.method, tc.path, tc.token, 1000)
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				tick := time.NewTicker(time.Second)
				defer tick.Stop()
				for {
					if _, err := conn.Write([]byte(" ")); err != nil {
						return
					}
					select {
					case <-stop:
						return
					case <-tick.C:
					}
				}
			}()
			if err := conn.SetReadDeadline(start.Add(limit)); err != nil {
				t.Fatalf("set read deadline: %v", err)
			}
			br := bufio.NewReader(conn)
			resp, err := http.ReadResponse(br, nil)
			took := time.Since(start)
			if err != nil {
				t.Fatalf("%s %s with a body of one byte a second: no answer after %v (%v); want 408 within %v", tc.method, tc.path, took.Round(time.Millisecond), err, limit)
			}
			code, msg := biAPIError(t, resp, http.StatusRequestTimeout)
			t.Logf("%s %q after %v", code, msg, took.Round(time.Millisecond))
			if code != "RequestTimeout" {
				t.Errorf("got code %s, want RequestTimeout", code)
			}
			if took > limit {
				t.Errorf("answered after %v, want within %v", took.Round(time.Millisecond), limit)
			}
			// The server closes the connection: a read ends, and not on
			// this test's own deadline.
			_, err = br.ReadByte()
			var ne net.Error
			if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
				t.Errorf("after the 408 the connection is still open (read: %v); want it closed by the server", err)
			}
		})
	}
}

// TestSlowBodyCutHTTP2: the body read timeout holds for an HTTP/2
// stream too (the deadline is the stream's, not the connection's).
func TestSlowBodyCutHTTP2(t *testing.T) {
	t.Parallel()
	const timeout = 2 * time.Second
	const limit = 3*timeout + 10*time.Second
	c := testcluster.Start(t, 1, testcluster.Options{ExtraArgs: []string{"--body-read-timeout", timeout.String()}})
	n := c.Nodes[0]
	pem, err := os.ReadFile(c.CACert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Timeout: limit, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	pr, pw := io.Pipe()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			if _, err := pw.Write([]byte(" ")); err != nil {
				return
			}
			select {
			case <-stop:
				pw.Close()
				return
			case <-tick.C:
			}
		}
	}()
	req, err := http.NewRequest(http.MethodPost, n.URL()+"/v1/agents/enroll", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = 1000
	start := time.Now()
	resp, err := hc.Do(req)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("enrollment with a body of one byte a second over HTTP/2: no answer after %v: %v; want 408", took.Round(time.Millisecond), err)
	}
	if resp.ProtoMajor != 2 {
		t.Fatalf("answered over HTTP/%d, want HTTP/2", resp.ProtoMajor)
	}
	code, msg := biAPIError(t, resp, http.StatusRequestTimeout)
	t.Logf("%s %q after %v", code, msg, took.Round(time.Millisecond))
	if code != "RequestTimeout" || took > limit {
		t.Errorf("got %s after %v, want RequestTimeout within %v", code, took.Round(time.Millisecond), limit)
	}
}

// TestUnauthenticatedInFlightBound: with --max-unauthenticated-requests
// 3, three agent enrollments whose bodies never come hold every slot; the
// next unauthenticated request is refused at once, before its body is
// read, with 503 and Retry-After, while requests with a token and health
// probes are still served; once the three are gone, enrollments are
// admitted again.
func TestUnauthenticatedInFlightBound(t *testing.T) {
	t.Parallel()
	const slots = 3
	c := testcluster.Start(t, 1, testcluster.Options{ExtraArgs: []string{
		"--max-unauthenticated-requests", fmt.Sprint(slots), "--body-read-timeout", "10m"}})
	n := c.Nodes[0]
	var holders []net.Conn
	for range slots {
		conn := rawConn(t, c, n)
		writeHead(t, conn, http.MethodPost, "/v1/agents/enroll", "", 100)
		holders = append(holders, conn)
	}

	hc := c.HTTPClient()
	probe := func() int {
		resp, err := hc.Post(n.URL()+"/v1/agents/enroll", "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatalf("enroll probe: %v", err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	waitFor(t, 30*time.Second, "an enrollment is refused with 503 while three others hold every slot", func() bool {
		return probe() == http.StatusServiceUnavailable
	})

	// Refused before its body is read: the head alone gets the answer.
	conn := rawConn(t, c, n)
	writeHead(t, conn, http.MethodPost, "/v1/agents/enroll", "", 100)
	if err := conn.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatalf("set read deadline: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("an enrollment head without its body while the slots are taken: no answer (%v); want 503 at once", err)
	}
	retry := resp.Header.Get("Retry-After")
	code, msg := biAPIError(t, resp, http.StatusServiceUnavailable)
	if code != "ServiceUnavailable" || !strings.Contains(msg, "without a credential") || retry == "" {
		t.Errorf("got %s %q Retry-After %q, want ServiceUnavailable naming the limit, with Retry-After", code, msg, retry)
	}
	// ... and lets the connection go at once, without draining the body.
	var buf [1]byte
	_, err = conn.Read(buf[:])
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Errorf("after the refusal the connection is still open (read: %v); want it closed by the server", err)
	}

	// Requests with a credential, and health probes, are served meanwhile.
	if err := c.Client(n).Do(context.Background(), http.MethodGet, "/secrets", nil, nil); err != nil {
		t.Errorf("a request with a token while the unauthenticated slots are taken: %v", err)
	}
	if resp, err := hc.Get(n.URL() + "/readyz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz while the unauthenticated slots are taken: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	for _, h := range holders {
		h.Close()
	}
	waitFor(t, 30*time.Second, "enrollments are admitted again once the held ones are gone", func() bool {
		return probe() != http.StatusServiceUnavailable
	})
}
