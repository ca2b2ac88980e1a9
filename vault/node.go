package vault

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certvault/certvault/vault/barrier"
	"github.com/certvault/certvault/vault/catalog"
	"github.com/certvault/certvault/vault/core"
	"github.com/certvault/certvault/vault/fleet"
	"github.com/certvault/certvault/vault/identity"
	"github.com/certvault/certvault/vault/issuance"
	"github.com/certvault/certvault/vault/leaderpass"

	"github.com/certvault/certvault/internal/atomicfile"
	"github.com/certvault/certvault/raftstore"
	"github.com/certvault/certvault/vault/audit"
	"github.com/certvault/certvault/vault/hsm"
	"github.com/certvault/certvault/vault/notify"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
)

// Options configures a node. The zero value starts the embedded default:
// data in ./certvault-data, the API on 127.0.0.1:8443, raft on
// 127.0.0.1:8201, a new single-node cluster with a file seal.
type Options struct {
	// DataDir holds everything the node keeps. Default "certvault-data".
	DataDir string
	// Listen is the API's HTTPS listen address. Default "127.0.0.1:8443".
	Listen string
	// APIAddr is the URL other nodes and clients use to reach this node's
	// API. Default "https://" + Listen (the hostname if Listen has no host).
	APIAddr string
	// RaftListen is the raft transport's listen address. Default
	// "127.0.0.1:8201".
	RaftListen string
	// RaftAddr is the address other nodes dial for raft. Default RaftListen.
	RaftAddr string
	// NodeID names the node in the cluster. Default: the one recorded in
	// DataDir, else the hostname.
	NodeID string
	// JoinURL and JoinToken make a new node join an existing cluster
	// instead of bootstrapping one.
	JoinURL   string
	JoinToken string
	// Seal is "file" (the default) or "pkcs11" (the data key is wrapped by
	// an AES key inside the HSM that PKCS11 reaches).
	Seal string
	// SealKeyFile is the file seal's key. Default DataDir/seal.key, which a
	// bootstrapping node creates; a joining node needs a copy of the
	// cluster's.
	SealKeyFile string
	// PKCS11, when its Module is set, is the HSM: it holds the pkcs11
	// seal's key and the keys of RSA-HSM and EC-HSM certificates and keys.
	// Every node of a cluster must reach the same token.
	PKCS11 hsm.Config
	// Mailer, when set, sends the contacts their mail (renewals, failures,
	// EmailContacts actions) through an SMTP relay.
	Mailer *notify.Mailer
	// AuditSegmentMB is the size (MiB) at which the audit trail's current
	// file becomes a segment; 0 means 256.
	AuditSegmentMB int
	// DiskReserveMB is the free space (MiB) kept on the file system of
	// the raft directory: below it writes are refused with 507 until
	// space is freed (raftstore.Config.MinFreeBytes). Zero means 5 % of
	// the file system, at most 64 MiB; negative turns the check off.
	DiskReserveMB int
	// TLSCert and TLSKey, when both set, are the API's server certificate
	// instead of one issued by the vault CA. Raft always uses the node
	// certificate from the vault CA.
	TLSCert string
	TLSKey  string
	// SnapshotThreshold and TrailingLogs tune raft log compaction (see
	// raftstore.Config). Zero means the defaults.
	SnapshotThreshold uint64
	TrailingLogs      uint64
	// SnapshotInterval is how often raft checks SnapshotThreshold. Zero
	// means the default (30s).
	SnapshotInterval time.Duration
	// Logger receives the node's logs. Default slog.Default().
	Logger *slog.Logger
	// RaftLogLevel is hashicorp/raft's log level. Default "warn".
	RaftLogLevel string
	// Banner receives the short "how to use this vault" text printed at
	// start. Nil prints nothing.
	Banner io.Writer
	// Time returns the current time of the renewal scheduler and of
	// certificate issuance (what is due, and the validity of what is
	// issued), as crypto/tls's Config.Time does. Nil means time.Now;
	// in-process tests set it to move those through a certificate's
	// lifetime. certvaultd has no flag for it.
	Time func() time.Time
	// RaftTimeout is raft's heartbeat and election timeout (the leader
	// steps down when a quorum has not answered for half of it). Default
	// 1s; longer on slow links or machines whose CPU is often starved,
	// where a second is too little and leadership flaps.
	RaftTimeout time.Duration
	// RequestDeadline bounds every request a follower passes to the
	// leader (until the leader's answer starts, or between two chunks of
	// a snapshot upload) and every linearizable read (the read index and
	// catching up with it). Past it the client gets 503 with Retry-After.
	// Default 5s.
	RequestDeadline time.Duration
	// UI serves the web console at /ui/ on the API listener
	// (vault/front/console); certvaultd's --ui, on by default.
	UI bool
	// BodyReadTimeout is how long a request body may take to arrive, from
	// the end of the headers (a snapshot upload: how long it may pause).
	// Past it the client gets 408 and the connection is closed. Default
	// 30s.
	BodyReadTimeout time.Duration
	// RetentionInterval is how often the leader runs a round of version
	// retention (settings retain_versions and retain_expired_days; see
	// vault/fleet/retention.go). Zero means 10 minutes.
	RetentionInterval time.Duration
	// MaxUnauthenticatedRequests bounds the requests without a credential
	// (and those to public endpoints that read a body: node joins, agent
	// enrollment) that the node serves at once; more get 503 with
	// Retry-After before their body is read. Default 64.
	MaxUnauthenticatedRequests int
	// MetricsCertificates is how many certificates /metrics gives their
	// own series (expiry, renewal due): the ones expiring soonest, since
	// those are what alerts watch; every certificate still counts in the
	// totals by expiry window. Default 10,000; negative gives none.
	MetricsCertificates int
}

func (o Options) withDefaults() (Options, error) {
	if o.DataDir == "" {
		o.DataDir = "certvault-data"
	}
	abs, err := filepath.Abs(o.DataDir)
	if err != nil {
		return o, fmt.Errorf("data directory %s: %w", o.DataDir, err)
	}
	o.DataDir = abs
	if o.Listen == "" {
		o.Listen = "127.0.0.1:8443"
	}
	if o.RaftListen == "" {
		o.RaftListen = "127.0.0.1:8201"
	}
	if o.RaftAddr == "" {
		o.RaftAddr = o.RaftListen
	}
	if o.APIAddr == "" {
		host, port, err := net.SplitHostPort(o.Listen)
		if err != nil {
			return o, fmt.Errorf("--listen %q: %w", o.Listen, err)
		}
		if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
			host, _ = os.Hostname()
		}
		o.APIAddr = "https://" + net.JoinHostPort(host, port)
	}
	o.APIAddr = strings.TrimSuffix(o.APIAddr, "/")
	if o.SealKeyFile == "" {
		o.SealKeyFile = filepath.Join(o.DataDir, "seal.key")
	}
	if o.Mailer != nil {
		if err := o.Mailer.Check(); err != nil {
			return o, err
		}
	}
	switch o.Seal {
	case "", barrier.SealFile:
		o.Seal = barrier.SealFile
	case barrier.SealPKCS11:
		if o.PKCS11.Module == "" {
			return o, errors.New("--seal pkcs11 needs --pkcs11-module, --pkcs11-token-label and --pkcs11-pin-file")
		}
	default:
		return o, fmt.Errorf("--seal %q: use file or pkcs11", o.Seal)
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return o, errors.New("--tls-cert and --tls-key must be given together")
	}
	if (o.JoinURL == "") != (o.JoinToken == "") {
		return o, errors.New("--join and --join-token must be given together")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.RaftTimeout != 0 && (o.RaftTimeout < minRaftTimeout || o.RaftTimeout > maxRaftTimeout) {
		return o, fmt.Errorf("--raft-timeout %v: use %v to %v (default %v)", o.RaftTimeout, minRaftTimeout, maxRaftTimeout, defaultRaftTimeout)
	}
	if o.RaftTimeout == 0 {
		o.RaftTimeout = defaultRaftTimeout
	}
	if o.RequestDeadline < 0 || o.BodyReadTimeout < 0 || o.MaxUnauthenticatedRequests < 0 {
		return o, errors.New("--request-deadline, --body-read-timeout and --max-unauthenticated-requests must not be negative")
	}
	if o.RetentionInterval < 0 {
		return o, fmt.Errorf("--retention-interval %v: give a positive duration such as 10m", o.RetentionInterval)
	}
	if o.RequestDeadline == 0 {
		o.RequestDeadline = defaultRequestDeadline
	}
	if o.BodyReadTimeout == 0 {
		o.BodyReadTimeout = defaultBodyReadTimeout
	}
	if o.MaxUnauthenticatedRequests == 0 {
		o.MaxUnauthenticatedRequests = defaultMaxUnauthenticated
	}
	return o, nil
}

// Storage keys of the vault's own records.
const (
	keyKeyring       = "sys/keyring"
	keyCACert        = "sys/ca/cert"
	prefixNodes      = "sys/nodes/"
	prefixJoinTokens = "sys/join-tokens/"
)

// nodeRecord is what the cluster knows of a member.
type nodeRecord struct {
	ID       string `json:"id"`
	APIAddr  string `json:"api_addr"`
	RaftAddr string `json:"raft_addr"`
	Joined   int64  `json:"joined"`
}

// Node is a running certvault server.
type Node struct {
	*core.Core
	*issuance.Issuance
	*fleet.Fleet
	*identity.Identity
	opts Options
	seal barrier.Seal
	// catalog is the in-memory view of the objects (vault/catalog) that
	// the inventories and the certificate metrics read; set with the
	// store.
	catalog *catalog.Catalog
	// hsmErr is set while the HSM is lost (see watchHSM).
	hsmErr atomic.Pointer[error]
	// stopHSMWatch ends watchHSM at shutdown.
	stopHSMWatch context.CancelFunc
	caPool       atomic.Pointer[x509.CertPool]
	nodeCert     atomic.Pointer[tls.Certificate]
	apiCert      *tls.Certificate
	listener     net.Listener
	// raftTrans is opened with the API listener, before anything is
	// written, so that a busy port leaves the data directory untouched.
	raftTrans *raft.NetworkTransport
	server    *http.Server
	client    *http.Client
	registry  *prometheus.Registry
	metrics   *apiMetrics
	tokens    tokenCache
	// auditLog is this node's audit trail.
	auditLog *audit.Log
	// stopAudit ends anchorAudit, which closes auditDone.
	stopAudit context.CancelFunc
	auditDone chan struct{}
	passer    *leaderpass.Passer
	// publicRoutes matches the public endpoints and unauthSlots holds a
	// token per unauthenticated request in flight (see limits.go).
	publicRoutes *routeSet
	unauthSlots  chan struct{}
	fatal        chan error
	fatalMu      sync.Once

	// stopBanner ends bannerWhenReady at shutdown.
	stopBanner context.CancelFunc
}

// files of the data directory.
func (n *Node) path(parts ...string) string {
	return filepath.Join(append([]string{n.opts.DataDir}, parts...)...)
}

// Run starts a node and serves until ctx is cancelled, then drains
// requests, hands leadership over if it holds it, and shuts raft down.
func Run(ctx context.Context, opts Options) error {
	n, err := Start(ctx, opts)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
	case err := <-n.fatal:
		n.Shutdown(context.Background())
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return n.Shutdown(sctx)
}

// Start brings a node up (bootstrap, join or restart, decided by the data
// directory and the options) and returns once it serves its API.
func Start(ctx context.Context, opts Options) (*Node, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &core.Core{Log: opts.Logger, Clock: opts.Time, APIAddr: opts.APIAddr, Mailer: opts.Mailer}
	n := &Node{Core: c, Issuance: issuance.NewIssuance(c), Fleet: &fleet.Fleet{Core: c}, Identity: &identity.Identity{Core: c}, opts: opts, fatal: make(chan error, 1)}
	n.Fleet.AuditRecords = n.clusterRecords
	if err := checkWritableDir(opts.DataDir); err != nil {
		return nil, err
	}
	if opts.PKCS11.Module != "" {
		if n.HSM, err = hsm.Open(opts.PKCS11); err != nil {
			return nil, fmt.Errorf("HSM: %w", err)
		}
	}
	n.listener, err = net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen for the API on %s: %w (is another certvaultd running? pick another --listen)", opts.Listen, err)
	}
	ok := false
	defer func() {
		if !ok {
			if n.HSM != nil {
				n.HSM.Close()
			}
			n.listener.Close()
			if n.Store != nil {
				n.Store.Close()
			} else if n.raftTrans != nil {
				n.raftTrans.Close()
			}
		}
	}()
	if err := n.listenRaft(); err != nil {
		return nil, err
	}

	recorded, _ := os.ReadFile(n.path("node-id"))
	switch {
	case len(recorded) > 0:
		id := strings.TrimSpace(string(recorded))
		if opts.NodeID != "" && opts.NodeID != id {
			return nil, fmt.Errorf("data directory %s belongs to node %q, not %q", opts.DataDir, id, opts.NodeID)
		}
		if opts.JoinURL != "" {
			n.Log.Info("node already has state; ignoring --join", "node", id)
		}
		n.opts.NodeID = id
		err = n.restart(ctx)
	case opts.JoinURL != "":
		if n.opts.NodeID == "" {
			n.opts.NodeID, _ = os.Hostname()
		}
		err = n.join(ctx)
	default:
		if n.opts.NodeID == "" {
			n.opts.NodeID, _ = os.Hostname()
		}
		err = n.bootstrap(ctx)
	}
	if err != nil {
		return nil, err
	}
	ok = true
	if n.HSM != nil {
		hctx, cancel := context.WithCancel(context.Background())
		n.stopHSMWatch = cancel
		go n.watchHSM(hctx)
	}
	if n.opts.Banner != nil {
		bctx, cancel := context.WithCancel(context.Background())
		n.stopBanner = cancel
		go n.bannerWhenReady(bctx)
	}
	return n, nil
}

func checkWritableDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data directory %s cannot be created: %w", dir, err)
	}
	probe := filepath.Join(dir, ".write-test")
	if err := os.WriteFile(probe, []byte("ok"), 0o600); err != nil {
		return fmt.Errorf("data directory %s is not writable: %w", dir, err)
	}
	return os.Remove(probe)
}

// hosts are the names this node's certificate is valid for.
func (n *Node) hosts() []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil {
		hosts = append(hosts, h)
	}
	for _, a := range []string{n.opts.Listen, n.opts.RaftAddr, strings.TrimPrefix(n.opts.APIAddr, "https://")} {
		if h, _, err := net.SplitHostPort(a); err == nil {
			if ip := net.ParseIP(h); ip == nil || !ip.IsUnspecified() {
				hosts = append(hosts, h)
			}
		}
	}
	return hosts
}

// bootstrap creates a new single-node cluster: seal key, keyring, CA,
// node certificate and root token.
func (n *Node) bootstrap(ctx context.Context) error {
	seal, err := n.openSeal(true)
	if err != nil {
		return err
	}
	n.seal = seal
	kr, _, err := barrier.NewKeyring(seal)
	if err != nil {
		return err
	}
	krJSON, _ := json.Marshal(kr)
	barrier, err := barrier.OpenKeyring(krJSON, seal)
	if err != nil {
		return err
	}
	now := time.Now()
	ca, caKey, err := newCA(now)
	if err != nil {
		return err
	}
	nodeKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate node key: %w", err)
	}
	der, err := issueNodeCert(ca, caKey, nodeKey.Public(), n.opts.NodeID, n.hosts(), now)
	if err != nil {
		return err
	}
	if err := n.writeNodeFiles(ca.Raw, der, nodeKey); err != nil {
		return err
	}
	if err := n.openStore(); err != nil {
		return err
	}
	if err := n.Store.Bootstrap(n.opts.RaftAddr); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := n.Store.WaitLeader(wctx); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}

	rootToken, rootRec, err := core.NewToken("root", "root", 0, now)
	if err != nil {
		return err
	}
	caKeyPEM, err := core.PEMKey(caKey)
	if err != nil {
		return err
	}
	b := &raftstore.Batch{}
	b.PutIf(keyKeyring, krJSON, raftstore.NotExist)
	b.Put(keyCACert, core.PEMCert(ca.Raw))
	if err := core.PutSealed(b, barrier, core.KeyCAKey, caKeyPEM); err != nil {
		return err
	}
	if err := core.PutSealedJSON(b, barrier, core.PrefixTokens+"root", rootRec); err != nil {
		return err
	}
	rec, _ := json.Marshal(nodeRecord{ID: n.opts.NodeID, APIAddr: n.opts.APIAddr, RaftAddr: n.opts.RaftAddr, Joined: now.Unix()})
	b.Put(prefixNodes+n.opts.NodeID, rec)
	b.PutIf(core.KeyAssignments, core.BootstrapAssignments(now), raftstore.NotExist)
	if _, err := n.Store.Apply(wctx, b); err != nil {
		return fmt.Errorf("initialize cluster: %w", err)
	}
	n.Barrier.Store(barrier)
	if err := atomicfile.WriteFile(n.path("root-token"), []byte(rootToken+"\n"), 0o600); err != nil {
		return err
	}
	n.Log.Info("bootstrapped a new cluster", "node", n.opts.NodeID, "ca", core.Fingerprint(ca))
	return n.serve()
}

// restart brings back a node that has state on disk.
func (n *Node) restart(ctx context.Context) error {
	seal, err := n.openSeal(false)
	if err != nil {
		if n.opts.Seal == barrier.SealPKCS11 {
			return err
		}
		return fmt.Errorf("%w (a node that has joined a cluster needs the cluster's seal key; pass --seal-key-file)", err)
	}
	n.seal = seal
	if err := n.loadNodeFiles(); err != nil {
		return err
	}
	if err := n.openStore(); err != nil {
		return err
	}
	if ok, err := n.Store.HasState(); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("data directory %s has a node identity but no raft state: it never finished joining; remove it and join again", n.opts.DataDir)
	}
	go n.awaitKeyring()
	return n.serve()
}

// awaitKeyring opens the barrier once the keyring has been replayed or
// replicated to this node, and reopens it whenever the keyring changes (a
// restore). A seal that cannot open it is fatal.
func (n *Node) awaitKeyring() {
	var after uint64
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		idx, err := n.Store.Watch(ctx, []string{keyKeyring}, after)
		cancel()
		if errors.Is(err, raftstore.ErrClosed) {
			return
		}
		after = idx
		e, ok := n.Store.Get(keyKeyring)
		if !ok {
			continue
		}
		b, err := barrier.OpenKeyring(e.Value, n.seal)
		if err != nil {
			n.die(fmt.Errorf("open keyring: %w", err))
			return
		}
		n.Barrier.Store(b)
		if ca, ok := n.Store.Get(keyCACert); ok {
			if cert, err := core.ParseCertPEM(ca.Value); err == nil {
				n.CACert.Store(cert)
			}
		}
	}
}

func (n *Node) die(err error) {
	n.fatalMu.Do(func() {
		n.Log.Error("fatal", "err", err)
		n.fatal <- err
	})
}

// writeNodeFiles stores the node's identity: CA, certificate chain, key,
// node ID.
func (n *Node) writeNodeFiles(caDER, certDER []byte, key *ecdsa.PrivateKey) error {
	if err := os.MkdirAll(n.path("tls"), 0o700); err != nil {
		return fmt.Errorf("create tls directory: %w", err)
	}
	keyPEM, err := core.PEMKey(key)
	if err != nil {
		return err
	}
	chain := append(core.PEMCert(certDER), core.PEMCert(caDER)...)
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{n.path("tls", "node.key"), keyPEM, 0o600},
		{n.path("tls", "node.pem"), chain, 0o644},
		{n.path("ca.pem"), core.PEMCert(caDER), 0o644},
		{n.path("node-id"), []byte(n.opts.NodeID + "\n"), 0o644},
	} {
		if err := atomicfile.WriteFile(f.path, f.data, f.mode); err != nil {
			return err
		}
	}
	return n.loadNodeFiles()
}

// loadNodeFiles reads the node's CA and certificate from disk.
func (n *Node) loadNodeFiles() error {
	caPEM, err := os.ReadFile(n.path("ca.pem"))
	if err != nil {
		return fmt.Errorf("read CA: %w", err)
	}
	ca, err := core.ParseCertPEM(caPEM)
	if err != nil {
		return fmt.Errorf("parse %s: %w", n.path("ca.pem"), err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	n.CACert.Store(ca)
	n.caPool.Store(pool)
	cert, err := tls.LoadX509KeyPair(n.path("tls", "node.pem"), n.path("tls", "node.key"))
	if err != nil {
		return fmt.Errorf("load node certificate: %w", err)
	}
	n.nodeCert.Store(&cert)
	if n.opts.TLSCert != "" {
		c, err := tls.LoadX509KeyPair(n.opts.TLSCert, n.opts.TLSKey)
		if err != nil {
			return fmt.Errorf("load --tls-cert/--tls-key: %w", err)
		}
		n.apiCert = &c
	}
	return nil
}

// verifyNodeChain accepts only certificates of cluster nodes: issued by the
// vault CA, with the node OU.
func (n *Node) verifyNodeChain(rawCerts [][]byte, _ [][]*x509.Certificate) error {
	if len(rawCerts) == 0 {
		return errors.New("no certificate presented")
	}
	leaf, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return fmt.Errorf("parse peer certificate: %w", err)
	}
	inter := x509.NewCertPool()
	for _, raw := range rawCerts[1:] {
		if c, err := x509.ParseCertificate(raw); err == nil {
			inter.AddCert(c)
		}
	}
	pool := n.caPool.Load()
	if pool == nil {
		return errors.New("this node has no cluster CA yet")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("peer certificate not issued by the cluster CA: %w", err)
	}
	if !isNodeCert(leaf) {
		return errors.New("peer certificate is not a cluster node's")
	}
	return nil
}

func isNodeCert(c *x509.Certificate) bool {
	for _, ou := range c.Subject.OrganizationalUnit {
		if ou == nodeOU {
			return true
		}
	}
	return false
}

// listenRaft opens the raft transport: mutual TLS with the node
// certificate, which is loaded at handshake time, so the transport can be
// listening before the certificate exists.
func (n *Node) listenRaft() error {
	getCert := func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return n.nodeCert.Load(), nil }
	serverTLS := &tls.Config{
		MinVersion:            tls.VersionTLS12,
		GetCertificate:        getCert,
		ClientAuth:            tls.RequireAnyClientCert,
		VerifyPeerCertificate: n.verifyNodeChain,
	}
	clientTLS := &tls.Config{
		MinVersion:           tls.VersionTLS12,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return n.nodeCert.Load(), nil },
		// Raft dials addresses, not names: the chain and the node OU are
		// checked by verifyNodeChain instead of a host name.
		InsecureSkipVerify:    true,
		VerifyPeerCertificate: n.verifyNodeChain,
	}
	trans, err := raftstore.NewTLSTransport(n.opts.RaftListen, n.opts.RaftAddr, serverTLS, clientTLS, io.Discard)
	if err != nil {
		return fmt.Errorf("%w (is another certvaultd running? pick another --raft-listen)", err)
	}
	n.raftTrans = trans
	return nil
}

// openStore starts raft on the transport opened by listenRaft.
func (n *Node) openStore() error {
	var err error
	n.client = &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{
				MinVersion:           tls.VersionTLS12,
				GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return n.nodeCert.Load(), nil },
				InsecureSkipVerify:   true,
				VerifyPeerCertificate: func(raw [][]byte, chains [][]*x509.Certificate) error {
					return n.verifyNodeChain(raw, chains)
				},
			},
			MaxIdleConnsPerHost: 64,
		},
	}
	n.passer = &leaderpass.Passer{NodeID: n.opts.NodeID, Deadline: n.opts.RequestDeadline, Resolve: n.resolveNode,
		Transport: n.client.Transport, Log: n.Log, Fail: n.fail,
		WaitLeader: func(ctx context.Context) (string, error) { return n.Store.WaitLeader(ctx) }}
	n.Store, err = raftstore.Open(raftstore.Config{
		NodeID:            n.opts.NodeID,
		Dir:               n.path("raft"),
		Transport:         n.raftTrans,
		Forwarder:         &raftstore.HTTPForwarder{Client: n.client, Resolve: n.resolveNode},
		Logger:            n.Log,
		RaftLogLevel:      n.opts.RaftLogLevel,
		SnapshotThreshold: n.opts.SnapshotThreshold,
		TrailingLogs:      n.opts.TrailingLogs,
		SnapshotInterval:  n.opts.SnapshotInterval,
		RequestTimeout:    n.opts.RequestDeadline,
		HeartbeatTimeout:  n.opts.RaftTimeout,
		ElectionTimeout:   n.opts.RaftTimeout,
		MinFreeBytes:      int64(n.opts.DiskReserveMB) << 20,
		KeepInMemory:      keepInMemory,
		OnLeader:          n.runLeader,
	})
	if err != nil {
		return err // Start closes the transport
	}
	n.catalog = catalog.New(n.Store)
	return nil
}

// resolveNode returns the API URL of a cluster member.
func (n *Node) resolveNode(id string) (string, error) {
	e, ok := n.Store.Get(prefixNodes + id)
	if !ok {
		return "", fmt.Errorf("node %s has no record", id)
	}
	var rec nodeRecord
	if err := json.Unmarshal(e.Value, &rec); err != nil {
		return "", fmt.Errorf("decode node record %s: %w", id, err)
	}
	return rec.APIAddr, nil
}

// Shutdown stops serving: the listener closes, in-flight requests finish
// (until ctx expires), leadership moves to another voter, raft stops.
func (n *Node) Shutdown(ctx context.Context) error {
	var errs []error
	if n.server != nil {
		if err := n.server.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("drain API: %w", err))
		}
	}
	if err := n.closeAudit(); err != nil {
		errs = append(errs, fmt.Errorf("close the audit trail: %w", err))
	}
	if n.Store != nil {
		if err := n.Store.TransferLeadership(); err != nil {
			n.Log.Warn("leadership transfer failed", "err", err)
		}
		if err := n.Store.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if n.stopHSMWatch != nil {
		n.stopHSMWatch()
	}
	if n.stopBanner != nil {
		n.stopBanner()
	}
	if n.HSM != nil {
		if err := n.HSM.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close the HSM session: %w", err))
		}
	}
	n.Log.Info("stopped", "node", n.opts.NodeID)
	return errors.Join(errs...)
}

// bannerWhenReady prints the banner once the node is ready, that is once
// /readyz would answer 200 (keyring open, a leader, caught up): before
// that, the commands it suggests would fail. It polls until then or until
// ctx ends (shutdown), and prints at most once.
func (n *Node) bannerWhenReady(ctx context.Context) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for n.readiness() != "" {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
	n.printBanner()
}

// printBanner tells the operator how to point the CLI at this node: the
// exports for certvault, including PATH with the directory of this
// certvaultd binary (where make build puts the CLI too).
func (n *Node) printBanner() {
	w := n.opts.Banner
	fmt.Fprintf(w, "certvault node %q is ready at %s (data in %s). To use it:\n\n", n.opts.NodeID, n.opts.APIAddr, n.opts.DataDir)
	if exe, err := os.Executable(); err == nil {
		fmt.Fprintf(w, "  export PATH=%s:$PATH\n", filepath.Dir(exe))
	}
	fmt.Fprintf(w, "  export CERTVAULT_ADDR=%s\n", n.opts.APIAddr)
	fmt.Fprintf(w, "  export CERTVAULT_CACERT=%s\n", n.path("ca.pem"))
	if _, err := os.Stat(n.path("root-token")); err == nil {
		fmt.Fprintf(w, "  export CERTVAULT_TOKEN=$(cat %s)\n", n.path("root-token"))
	} else {
		fmt.Fprintf(w, "  export CERTVAULT_TOKEN=...   (a token of this cluster)\n")
	}
	if ca := n.CACert.Load(); ca != nil {
		fmt.Fprintf(w, "\nCA fingerprint: %s\n", core.Fingerprint(ca))
	}
}

// Bounds and default of Options.RaftTimeout: below 100 ms a scheduling
// hiccup deposes the leader; past a minute a dead leader is noticed too
// late for any client.
const (
	defaultRaftTimeout = time.Second
	minRaftTimeout     = 100 * time.Millisecond
	maxRaftTimeout     = time.Minute
)

// openSeal returns the seal the options name. create lets the file seal
// write a new key file and the pkcs11 seal generate its key in the HSM
// (only when bootstrapping a new cluster).
func (n *Node) openSeal(create bool) (barrier.Seal, error) {
	switch n.opts.Seal {
	case barrier.SealPKCS11:
		if n.HSM == nil {
			return nil, errors.New("--seal pkcs11 needs the HSM: --pkcs11-module, --pkcs11-token-label and --pkcs11-pin-file")
		}
		return barrier.NewPKCS11Seal(n.HSM, create)
	default:
		return barrier.LoadFileSeal(n.opts.SealKeyFile, create)
	}
}

// keepInMemory keeps in memory, whatever the store's spill threshold,
// the records that requests read every time and that stay small: objects'
// meta records, and the version records of secrets and keys (a
// certificate's holds its chain and goes to the value log).
func keepInMemory(key string, size int) bool {
	if size > 1024 {
		return false
	}
	return strings.HasPrefix(key, "meta/") || strings.HasPrefix(key, "ver/"+core.KindSecrets+"/") || strings.HasPrefix(key, "ver/"+core.KindKeys+"/")
}
