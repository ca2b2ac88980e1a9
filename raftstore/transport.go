package raftstore

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"time"

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
	return raft.NewNetworkTransport(stream, 3, 10*time.Second, logOutput), nil
}
