package raftstore

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// tlsStream is a raft.StreamLayer over mutual TLS: both ends present a
// certificate issued by the cluster CA, so nothing outside the cluster can
// append to the log or read it on the wire.
type tlsStream struct {
	net.Listener
	advertise net.Addr
	client    *tls.Config
}

// Dial implements raft.StreamLayer.
func (t *tlsStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	raw, err := d.DialContext(ctx, "tcp", string(address))
	if err != nil {
		return nil, fmt.Errorf("dial raft peer %s: %w", address, err)
	}
	conn := tls.Client(raw, t.client)
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("tls handshake with raft peer %s: %w", address, err)
	}
	return conn, nil
}

// Addr implements net.Listener with the advertised address.
func (t *tlsStream) Addr() net.Addr {
	if t.advertise != nil {
		return t.advertise
	}
	return t.Listener.Addr()
}

// NewTLSTransport listens on bind and returns a raft transport whose
// connections are mutually authenticated with TLS. server must require and
// verify client certificates; client must present one and verify the
// server's. advertise, if not empty, is the address other nodes dial
// (defaults to the bound address, which must not be unspecified).
func NewTLSTransport(bind, advertise string, server, client *tls.Config, logOutput io.Writer) (*raft.NetworkTransport, error) {
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("listen for raft on %s: %w", bind, err)
	}
	stream := &tlsStream{Listener: tls.NewListener(ln, server), client: client}
	if advertise != "" {
		addr, err := net.ResolveTCPAddr("tcp", advertise)
		if err != nil {
			ln.Close()
			return nil, fmt.Errorf("resolve raft advertise address %s: %w", advertise, err)
		}
		stream.advertise = addr
	} else if a := ln.Addr().(*net.TCPAddr); a.IP.IsUnspecified() {
		ln.Close()
		return nil, fmt.Errorf("raft address %s is unspecified: give an advertise address", bind)
	}
	return newNetworkTransport(stream, logOutput), nil
}

// newNetworkTransport is hashicorp/raft's network transport over stream,
// without pipelined replication (MaxRPCsInFlight 1: one AppendEntries
// RPC at a time per follower, each carrying every entry that waits, up
// to MaxAppendEntries).
//
// Pipelining deadlocks in hashicorp/raft v1.7 (issue #612): when a
// follower answers an append with failure (its disk was full, say), the
// leader's response reader for that follower exits while its sender can
// still block handing a request to the in-flight queue, which nothing
// drains any more; the pipeline is never closed. Heartbeats go on, so no
// election repairs it: the follower stops receiving entries until the
// leader restarts. The chaos harness found it (a follower stuck at one
// applied index for minutes after a disk-full), and
// TestFollowerCatchesUpAfterFailedAppend reproduces it. hashicorp's own
// measurements (PR #541) found pipelining of little use with batching,
// which the store does (MaxAppendEntries 1024).
func newNetworkTransport(stream raft.StreamLayer, logOutput io.Writer) *raft.NetworkTransport {
	if logOutput == nil {
		logOutput = os.Stderr
	}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:          stream,
		MaxPool:         3,
		Timeout:         10 * time.Second,
		MaxRPCsInFlight: 1,
		Logger: hclog.New(&hclog.LoggerOptions{
			Name: "raft-net", Output: logOutput, Level: hclog.DefaultLevel,
		}),
	})
}
