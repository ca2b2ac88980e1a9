// Package runner is the certvault-agent's main loop: it long-polls the
// vault for the target versions of the configured bindings, installs a
// new version atomically, runs the reload hook and the health check,
// rolls back when either fails, reports each outcome, puts back files
// changed under it, and reloads its configuration on SIGHUP or when the
// file changes. It keeps serving what it installed while the vault is
// unreachable: an outage never deletes or changes installed files. When
// the configuration has a managed_identity section it also runs the
// managed-identity endpoint (package midentity), with the vault client
// as its token source.
package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/certvault/certvault/agent/config"
	"github.com/certvault/certvault/agent/enroll"
	"github.com/certvault/certvault/agent/hook"
	"github.com/certvault/certvault/agent/install"
	"github.com/certvault/certvault/agent/midentity"
	"github.com/certvault/certvault/agent/sdnotify"
	"github.com/certvault/certvault/agent/tlscheck"
	"github.com/certvault/certvault/agent/vaultclient"
	"github.com/certvault/certvault/internal/serial"
	"github.com/fsnotify/fsnotify"
)

// Options configure Run. The zero value of every field but ConfigPath
// works.
type Options struct {
	// ConfigPath is the YAML configuration (agent.yaml).
	ConfigPath string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// PollWait is how long one long poll is held (default 30 s; each poll
	// is jittered by ±20 %).
	PollWait time.Duration
	// DriftInterval is how often every binding is checked for drift even
	// without a file event (default 1 min).
	DriftInterval time.Duration
}

// binding is one configured certificate or secret, resolved.
type binding struct {
	key        string // Object + "→" + path
	kind, name string
	object     string
	path       string // certificate dir or secret file
	target     install.Target
	files      install.Files // certificates
	file       string        // secrets: base name
	pfxPass    string
	reload     []string
	timeout    time.Duration
	check      *config.Check
	names      []string // names the leaf must carry
}

// agent is the running state of Run.
type agent struct {
	opts     Options
	log      *slog.Logger
	cfg      *config.Config
	bindings []*binding
	id       *enroll.Identity
	vc       *vaultclient.Client
	st       *State
	notify   *sdnotify.Notifier
	// content is what each binding's current version holds, by base name:
	// what Repair writes back.
	content map[string]map[string][]byte
	// pending reports wait for the vault to answer again.
	pending []vaultclient.Report
	// failures counts consecutive failed polls (for the backoff).
	failures int
	// beat is when the main loop last came round (Unix ns); busyUntil
	// is how long an install in progress may take (Unix ns): the watchdog
	// pings systemd while either says the loop is alive.
	beat, busyUntil atomic.Int64
	// mi is the managed-identity endpoint, nil when not configured;
	// miIDs are the identities it serves and miErr the last error of
	// keeping their env files (logged once).
	mi    *midentity.Server
	miIDs []midentity.Identity
	miErr string
	// miOn is the listen address and socket the endpoint was started
	// with (they change only at a restart).
	miOn [2]string
}

// watchdog pings systemd's watchdog while the main loop is alive: it came
// round within two intervals, or is inside an install whose reload and
// check are bounded by their timeouts. A loop stuck past that is left to
// systemd to restart.
func (a *agent) watchdog(ctx context.Context, iv time.Duration) {
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			now := time.Now().UnixNano()
			if now-a.beat.Load() < int64(2*iv) || now < a.busyUntil.Load() {
				a.notify.Watchdog()
			}
		}
	}
}

// Run runs the agent until ctx is done. A configuration that does not
// load, or a missing identity, stops it before anything is installed.
func Run(ctx context.Context, opts Options) error {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.PollWait <= 0 {
		opts.PollWait = 30 * time.Second
	}
	if opts.DriftInterval <= 0 {
		opts.DriftInterval = time.Minute
	}
	cfg, err := config.Load(opts.ConfigPath)
	if err != nil {
		return err
	}
	a := &agent{opts: opts, log: opts.Logger, notify: sdnotify.New(), content: map[string]map[string][]byte{}}
	if err := a.apply(cfg); err != nil {
		return err
	}
	if a.id, err = enroll.Load(cfg.StateDir); err != nil {
		return err
	}
	tlsConf := a.id.TLSConfig()
	// The CA pinned at join is trusted, and so is ca_file (for an API
	// certificate from another CA).
	if pemData, err := os.ReadFile(cfg.CAFile); err == nil {
		pool := tlsConf.RootCAs.Clone()
		pool.AppendCertsFromPEM(pemData)
		tlsConf.RootCAs = pool
	}
	if a.vc, err = vaultclient.New(cfg.Vault, tlsConf); err != nil {
		return err
	}
	if a.st, err = LoadState(cfg.StateDir); err != nil {
		return err
	}
	go a.id.RenewLoop(ctx, cfg.Vault, cfg.StateDir, func(f string, args ...any) { a.log.Info(fmt.Sprintf(f, args...)) })
	// The managed-identity endpoint is up (env files written, listeners
	// open) before systemd hears READY, so that units ordered after the
	// agent find their env file.
	miDone := make(chan error, 1)
	if cfg.ManagedIdentity != nil {
		if err := a.startManagedIdentity(ctx, cfg.ManagedIdentity, miDone); err != nil {
			return err
		}
	}

	// What was installed before a restart is served as is; drift is put
	// back from the version directories.
	for _, b := range a.bindings {
		a.loadContent(b)
		a.repair(b, "start")
	}
	a.save()

	watcher, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch files: %w", err)
	}
	defer watcher.Close()
	a.watchFiles(watcher)

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	a.notify.Ready(a.statusLine())
	a.log.Info("agent running", "vault", cfg.Vault, "bindings", len(a.bindings), "agent", a.id.AgentID)
	if iv := sdnotify.WatchdogInterval(); iv > 0 {
		go a.watchdog(ctx, iv)
	}
	driftTick := time.NewTicker(opts.DriftInterval)
	defer driftTick.Stop()

	results := make(chan watchResult, 1)
	var pollCancel context.CancelFunc
	var lastErr error
	gen := 0
	startPoll := func() {
		if pollCancel != nil {
			pollCancel()
			pollCancel = nil
		}
		gen++
		objs := a.objects()
		if len(objs) == 0 {
			// Nothing bound (an agent that only serves the managed
			// identity): nothing to watch until a reload binds something.
			return
		}
		var pctx context.Context
		pctx, pollCancel = context.WithCancel(ctx)
		var delay time.Duration
		if a.failures > 0 {
			delay = backoff(a.failures, lastErr)
		}
		go a.poll(pctx, gen, delay, objs, a.st.Index, results)
	}
	startPoll()
	defer func() {
		if pollCancel != nil {
			pollCancel()
		}
	}()

	var driftDue <-chan time.Time // debounce of file events
	var cfgDue <-chan time.Time   // debounce of configuration changes
	for {
		a.beat.Store(time.Now().UnixNano())
		select {
		case <-ctx.Done():
			a.notify.Stopping()
			a.save()
			return nil
		case err := <-miDone:
			a.notify.Stopping()
			a.save()
			return err
		case r := <-results:
			if r.gen != gen {
				continue // a replaced poll's answer
			}
			lastErr = r.err
			a.handle(ctx, r)
			a.flushReports(ctx)
			a.save()
			a.notify.Status(a.statusLine())
			a.watchFiles(watcher)
			startPoll()
		case ev, ok := <-watcher.Events:
			if !ok {
				return errors.New("file watcher stopped")
			}
			if filepath.Clean(ev.Name) == filepath.Clean(opts.ConfigPath) {
				// Editors write in steps: wait for the file to settle.
				if cfgDue == nil && (ev.Has(fsnotify.Write) || ev.Has(fsnotify.Create) || ev.Has(fsnotify.Rename)) {
					cfgDue = time.After(300 * time.Millisecond)
				}
				continue
			}
			if driftDue == nil {
				driftDue = time.After(200 * time.Millisecond)
			}
		case err := <-watcher.Errors:
			a.log.Warn("file watcher", "err", err)
		case <-cfgDue:
			cfgDue = nil
			if a.reload() {
				a.watchFiles(watcher)
				startPoll()
			}
		case <-driftDue:
			driftDue = nil
			a.checkDrift(ctx)
			a.watchFiles(watcher)
		case <-driftTick.C:
			a.checkDrift(ctx)
			a.flushReports(ctx)
			a.keepIdentities()
		case <-hup:
			a.log.Info("SIGHUP: reloading the configuration")
			if a.reload() {
				a.watchFiles(watcher)
				startPoll()
			}
		}
	}
}

// apply resolves a loaded configuration into bindings.
func (a *agent) apply(cfg *config.Config) error {
	var bs []*binding
	for i := range cfg.Certificates {
		c := &cfg.Certificates[i]
		b := &binding{kind: "certificates", name: c.Name, path: c.Dir, reload: c.Reload, timeout: c.Timeout, check: c.Check,
			files:  install.Files{Cert: c.Files.Cert, Chain: c.Files.Chain, Fullchain: c.Files.Fullchain, Key: c.Files.Key, Combined: c.Files.Combined, PFX: c.Files.PFX},
			target: install.Target{Dir: c.Dir, Name: c.Name, UID: c.UID, GID: c.GID, Mode: c.Mode}}
		if c.PFXPasswordFile != "" {
			pw, err := os.ReadFile(c.PFXPasswordFile)
			if err != nil {
				return fmt.Errorf("read pfx_password_file: %w", err)
			}
			b.pfxPass = strings.TrimRight(string(pw), "\r\n")
		}
		if c.Check != nil && c.Check.ServerName != "" {
			b.names = []string{c.Check.ServerName}
		}
		bs = append(bs, b)
	}
	for i := range cfg.Secrets {
		s := &cfg.Secrets[i]
		bs = append(bs, &binding{kind: "secrets", name: s.Name, path: s.File, file: filepath.Base(s.File), reload: s.Reload, timeout: s.Timeout,
			target: install.Target{Dir: filepath.Dir(s.File), Name: s.Name, UID: s.UID, GID: s.GID, Mode: s.Mode}})
	}
	for _, b := range bs {
		b.object = b.kind + "/" + b.name
		b.key = b.object + "→" + b.path
	}
	a.cfg, a.bindings = cfg, bs
	return nil
}

// reload loads the configuration again; a bad one is refused and the
// running one kept.
func (a *agent) reload() bool {
	cfg, err := config.Load(a.opts.ConfigPath)
	if err != nil {
		a.log.Error("the changed configuration does not load; keeping the running one", "err", err)
		return false
	}
	if cfg.Vault != a.cfg.Vault || cfg.StateDir != a.cfg.StateDir {
		a.log.Warn("vault and state_dir changes take effect at the next restart")
		cfg.Vault, cfg.StateDir = a.cfg.Vault, a.cfg.StateDir
	}
	a.reloadIdentities(cfg.ManagedIdentity)
	if err := a.apply(cfg); err != nil {
		a.log.Error("the changed configuration does not load; keeping the running one", "err", err)
		return false
	}
	for _, b := range a.bindings {
		if _, ok := a.content[b.key]; !ok {
			a.loadContent(b)
		}
	}
	// A reload is the operator's "try again": versions that failed are
	// attempted once more.
	for _, st := range a.st.Bindings {
		st.Failed = ""
	}
	a.log.Info("configuration reloaded; failed versions will be tried again", "bindings", len(a.bindings))
	return true
}

// startManagedIdentity writes the identities' env files, opens the
// listeners and serves the managed-identity endpoint until ctx is done;
// a listener that fails later is sent on done. Any failure before
// serving stops the agent's start, as a bad configuration does.
func (a *agent) startManagedIdentity(ctx context.Context, m *config.ManagedIdentity, done chan<- error) error {
	a.mi = midentity.New(ctx, midentity.Options{Source: a.vc, Logger: a.log})
	a.miIDs = identities(m)
	if err := a.mi.SetIdentities(a.miIDs); err != nil {
		return fmt.Errorf("managed identity: %w", err)
	}
	var ls []net.Listener
	closeAll := func() {
		for _, l := range ls {
			l.Close()
		}
	}
	if m.Listen != "" {
		l, err := midentity.ListenTCP(m.Listen)
		if err != nil {
			return err
		}
		ls = append(ls, l)
	}
	if m.Socket != "" {
		l, err := midentity.ListenUnix(m.Socket)
		if err != nil {
			closeAll()
			return err
		}
		ls = append(ls, l)
	}
	a.miOn = [2]string{m.Listen, m.Socket}
	go func() { done <- a.mi.Serve(ctx, ls...) }()
	a.log.Info("managed identity endpoint serving", "listen", m.Listen, "socket", m.Socket, "identities", len(a.miIDs))
	return nil
}

// identities are the managed identity's identities as midentity takes
// them.
func identities(m *config.ManagedIdentity) []midentity.Identity {
	out := make([]midentity.Identity, len(m.Identities))
	for i, id := range m.Identities {
		out[i] = midentity.Identity{User: id.User, UID: id.UID, ServicePrincipal: id.ServicePrincipal, ClientID: id.ClientID, EnvFile: id.EnvFile}
	}
	return out
}

// reloadIdentities applies a reloaded managed_identity section: its
// identities are served from now on; listen and socket, and adding or
// removing the section, take effect at the next restart.
func (a *agent) reloadIdentities(cur *config.ManagedIdentity) {
	switch {
	case a.mi == nil && cur == nil:
		return
	case a.mi == nil || cur == nil || a.miOn != [2]string{cur.Listen, cur.Socket}:
		a.log.Warn("managed_identity: listen and socket changes, and adding or removing the section, take effect at the next restart")
	}
	if a.mi == nil || cur == nil {
		return
	}
	a.miIDs = identities(cur)
	a.miErr = ""
	a.keepIdentities()
}

// keepIdentities makes the env files hold the secrets served again
// (they are put back when changed or removed), logging a failure once.
func (a *agent) keepIdentities() {
	if a.mi == nil {
		return
	}
	err := a.mi.SetIdentities(a.miIDs)
	switch {
	case err != nil && err.Error() != a.miErr:
		a.log.Error("managed identity: env files", "err", err)
		a.miErr = err.Error()
	case err == nil && a.miErr != "":
		a.log.Info("managed identity: env files written again")
		a.miErr = ""
	}
}

// objects lists the bound objects with the version each holds (the
// oldest held across bindings of one object, so that any binding behind
// makes the vault answer at once).
func (a *agent) objects() []vaultclient.Object {
	held := map[string]string{}
	var order []string
	for _, b := range a.bindings {
		v := ""
		if s := a.st.Bindings[b.key]; s != nil {
			v = s.Version
			if s.Failed != "" && s.Target == s.Failed {
				v = s.Failed // don't be woken for the version that failed
			}
		}
		if prev, ok := held[b.object]; !ok {
			order = append(order, b.object)
			held[b.object] = v
		} else if prev != v {
			held[b.object] = "" // bindings disagree: ask for the target at once
		}
	}
	out := make([]vaultclient.Object, 0, len(order))
	for _, o := range order {
		kind, name, _ := strings.Cut(o, "/")
		out = append(out, vaultclient.Object{Kind: kind, Name: name, Held: held[o]})
	}
	return out
}

type watchResult struct {
	res *vaultclient.WatchResult
	err error
	// gen is the poll it answers: an answer of a poll that was replaced
	// (after a reload or an earlier answer) is dropped.
	gen int
}

// poll waits delay (the backoff after a failure), then runs one long
// poll and sends its answer or error.
func (a *agent) poll(ctx context.Context, gen int, delay time.Duration, objs []vaultclient.Object, index uint64, out chan<- watchResult) {
	if delay > 0 {
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
	}
	wait := time.Duration(float64(a.opts.PollWait) * (0.8 + 0.4*rand.Float64()))
	res, err := a.vc.Watch(ctx, objs, index, wait)
	if ctx.Err() != nil {
		return
	}
	select {
	case out <- watchResult{res: res, err: err, gen: gen}:
	case <-ctx.Done():
	}
}

// backoff is the wait before the next poll after failures consecutive
// failures: 1 s doubling to a minute, jittered ×0.5–1.5, and at least what
// the vault asked for with Retry-After.
func backoff(failures int, err error) time.Duration {
	d := time.Second << min(failures-1, 6)
	d = min(d, time.Minute)
	d = time.Duration(float64(d) * (0.5 + rand.Float64()))
	return max(d, vaultclient.RetryAfter(err))
}

// handle acts on a watch answer: install what changed.
func (a *agent) handle(ctx context.Context, r watchResult) {
	if r.err != nil {
		if a.failures == 0 {
			a.log.Warn("vault unreachable; serving what is installed", "err", r.err)
		}
		a.failures++
		a.st.VaultOK, a.st.LastVaultError = false, r.err.Error()
		return
	}
	if a.failures > 0 {
		a.log.Info("vault reachable again", "after_failures", a.failures)
	}
	a.failures = 0
	a.st.VaultOK, a.st.LastVaultError = true, ""
	a.st.Index = r.res.Index
	targets := map[string]vaultclient.Target{}
	for _, t := range r.res.Objects {
		targets[t.Kind+"/"+t.Name] = t
	}
	for _, b := range a.bindings {
		t, ok := targets[b.object]
		if !ok {
			continue
		}
		s := a.bindingState(b)
		s.Target = t.Version
		s.LastCheck = time.Now().UTC()
		switch {
		case t.Error != "":
			if s.LastError != t.Error {
				a.log.Warn("the vault will not give this binding its object", "object", b.object, "path", b.path, "err", t.Error)
			}
			s.LastError = t.Error
		case t.Version == "" || t.Version == s.Version:
		case t.Version == s.Failed:
			// Failed before: not tried again until a new version comes.
		default:
			a.install(ctx, b, t.Version)
		}
	}
}

func (a *agent) bindingState(b *binding) *BindingState {
	s := a.st.Bindings[b.key]
	if s == nil {
		s = &BindingState{Object: b.object, Path: b.path}
		a.st.Bindings[b.key] = s
	}
	return s
}

// rendered is a fetched version made into files.
type rendered struct {
	files   map[string][]byte
	bundle  *install.Bundle
	serial  string
	expires time.Time
}

// fetch gets a version from the vault and renders the binding's files.
func (a *agent) fetch(ctx context.Context, b *binding, version string) (*rendered, error) {
	v, err := a.vc.Fetch(ctx, b.name, version)
	if err != nil {
		return nil, fmt.Errorf("fetch %s version %s: %w", b.object, version, err)
	}
	if b.kind == "secrets" {
		return &rendered{files: map[string][]byte{b.file: []byte(v.Value)}}, nil
	}
	bundle, err := install.ParseBundle(version, v.ContentType, v.Value)
	if err != nil {
		return nil, err
	}
	if err := install.Check(bundle, time.Now(), b.names); err != nil {
		return nil, err
	}
	files, err := install.Render(bundle, b.files, b.pfxPass)
	if err != nil {
		return nil, err
	}
	return &rendered{files: files, bundle: &bundle, serial: serial.Format(bundle.Leaf.SerialNumber), expires: bundle.Leaf.NotAfter}, nil
}

// install puts version in place for b: fetch, check, write and swap,
// reload, health check; on a failed reload or check it switches back,
// reloads again and remembers the version as failed.
func (a *agent) install(ctx context.Context, b *binding, version string) {
	// Fetch, reload, check, rollback reload: each bounded.
	a.busyUntil.Store(time.Now().Add(2*time.Minute + 3*(b.timeout+5*time.Second)).UnixNano())
	defer a.busyUntil.Store(0)
	s := a.bindingState(b)
	rep := vaultclient.Report{Object: b.object, Binding: b.path, Version: version, Previous: s.Version, Timings: map[string]int64{}}
	t0 := time.Now()
	r, err := a.fetch(ctx, b, version)
	rep.Timings["fetch"] = time.Since(t0).Milliseconds()
	if err != nil {
		var ve *vaultclient.Error
		switch {
		case errors.As(err, &ve) && ve.Status >= 400 && ve.Status < 500:
			// Refused (no access, gone): not asked again until a new
			// version comes or the configuration is reloaded.
			a.fail(b, s, &rep, version, "the vault refused the version: "+err.Error())
		case ctx.Err() == nil && !errors.As(err, &ve) && !isNetError(err):
			a.fail(b, s, &rep, version, "the version does not pass the agent's checks: "+err.Error())
		default:
			// The vault did not answer: the next poll backs off first.
			a.failures++
			s.LastError = err.Error()
			a.log.Warn("fetch failed; will retry", "object", b.object, "version", version, "err", err)
		}
		return
	}
	rep.Serial = r.serial
	res, err := install.Install(b.target, version, r.files)
	if err != nil {
		a.fail(b, s, &rep, version, "install: "+err.Error())
		return
	}
	rep.Timings["swap"] = res.Swap.Milliseconds()
	a.content[b.key] = r.files
	if !res.Changed {
		s.Version, s.Hashes, s.LastResult, s.LastError = version, hashes(r.files), "unchanged", ""
		rep.Result = "unchanged"
		a.queueReport(rep)
		return
	}
	a.log.Info("installed", "object", b.object, "path", b.path, "version", version, "previous", res.Previous, "swap", res.Swap)
	if msg := a.reloadAndCheck(ctx, b, version, r, &rep, "install"); msg != "" {
		// Switch back to what was served before, and reload it.
		if res.Previous != "" {
			if err := install.Switch(b.target, res.Previous); err != nil {
				msg += "; switching back failed: " + err.Error()
			} else {
				a.runReload(ctx, b, res.Previous, nil, "rollback")
				a.loadContent(b)
				rep.Result = "rolled-back"
			}
		}
		if rep.Result == "" {
			rep.Result = "failed"
		}
		a.log.Error("new version failed; rolled back", "object", b.object, "path", b.path, "version", version, "to", res.Previous, "why", msg)
		s.Failed, s.LastResult, s.LastError = version, rep.Result, msg
		rep.Detail = msg
		a.queueReport(rep)
		return
	}
	s.Version, s.Serial, s.Expires, s.Hashes = version, r.serial, r.expires, hashes(r.files)
	s.Failed, s.LastResult, s.LastError, s.LastChange = "", "installed", "", time.Now().UTC()
	rep.Result = "installed"
	a.queueReport(rep)
}

// fail records a version that cannot be installed at all.
func (a *agent) fail(b *binding, s *BindingState, rep *vaultclient.Report, version, msg string) {
	a.log.Error("version not installed", "object", b.object, "path", b.path, "version", version, "why", msg)
	s.Failed, s.LastResult, s.LastError = version, "failed", msg
	rep.Result, rep.Detail = "failed", msg
	a.queueReport(*rep)
}

// reloadAndCheck runs the reload hook and the health check; it returns
// why they failed, or "".
func (a *agent) reloadAndCheck(ctx context.Context, b *binding, version string, r *rendered, rep *vaultclient.Report, event string) string {
	if len(b.reload) > 0 {
		t := time.Now()
		hr := a.runReload(ctx, b, version, r, event)
		rep.Timings["hook"] = time.Since(t).Milliseconds()
		rep.Hook = &vaultclient.HookReport{ExitCode: hr.ExitCode, DurationMS: hr.Duration.Milliseconds()}
		if hr.Err != nil {
			rep.Hook.Error = hr.Err.Error()
			out := strings.TrimSpace(hr.Output)
			if len(out) > 300 {
				out = "..." + out[len(out)-300:]
			}
			return fmt.Sprintf("reload %q: %v: %s", strings.Join(b.reload, " "), hr.Err, out)
		}
	}
	if b.check != nil && b.check.TLS != "" && r.bundle != nil {
		t := time.Now()
		cctx, cancel := context.WithTimeout(ctx, b.timeout)
		err := tlscheck.WaitServes(cctx, b.check.TLS, b.check.ServerName, r.bundle.Leaf)
		cancel()
		rep.Timings["check"] = time.Since(t).Milliseconds()
		rep.Check = &vaultclient.CheckReport{OK: err == nil}
		if err != nil {
			rep.Check.Detail = err.Error()
			return "health check: " + err.Error()
		}
	}
	return ""
}

// runReload runs b's reload command with the binding in its environment.
func (a *agent) runReload(ctx context.Context, b *binding, version string, r *rendered, event string) hook.Result {
	if len(b.reload) == 0 {
		return hook.Result{}
	}
	env := []string{"CERTVAULT_EVENT=" + event, "CERTVAULT_OBJECT=" + b.object, "CERTVAULT_NAME=" + b.name,
		"CERTVAULT_VERSION=" + version, "CERTVAULT_DIR=" + b.target.Dir}
	if r != nil && r.serial != "" {
		env = append(env, "CERTVAULT_SERIAL="+r.serial, "CERTVAULT_EXPIRES="+r.expires.UTC().Format(time.RFC3339))
	}
	for role, f := range map[string]string{"CERT": b.files.Cert, "CHAIN": b.files.Chain, "FULLCHAIN": b.files.Fullchain,
		"KEY": b.files.Key, "COMBINED": b.files.Combined, "PFX": b.files.PFX, "FILE": b.file} {
		if f != "" {
			env = append(env, "CERTVAULT_"+role+"_FILE="+filepath.Join(b.target.Dir, f))
		}
	}
	slices.Sort(env)
	return hook.Run(ctx, hook.Command{Argv: b.reload, Env: env, Timeout: b.timeout})
}

// loadContent reads what b's current version holds, if it matches the
// hashes recorded at install (a changed version directory is refetched).
func (a *agent) loadContent(b *binding) {
	s := a.st.Bindings[b.key]
	if s == nil || s.Version == "" {
		return
	}
	dir := filepath.Join(b.target.Dir, ".certvault", b.target.Name, "current")
	files := map[string][]byte{}
	for name, sum := range s.Hashes {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || hash(data) != sum {
			a.log.Warn("the installed version's files were changed or removed; fetching it again", "object", b.object, "path", b.path, "file", name)
			delete(a.content, b.key)
			s.Version = "" // the next poll answers at once with the target
			return
		}
		files[name] = data
	}
	a.content[b.key] = files
}

// checkDrift puts back every binding's files changed or removed under it.
func (a *agent) checkDrift(ctx context.Context) {
	for _, b := range a.bindings {
		a.repair(b, "drift")
	}
	a.flushReports(ctx)
	a.save()
}

// repair compares what readers see with the installed version and puts
// it back, reporting the drift.
func (a *agent) repair(b *binding, why string) {
	files := a.content[b.key]
	s := a.st.Bindings[b.key]
	if files == nil || s == nil || s.Version == "" {
		return
	}
	drift, err := install.Drift(b.target, files)
	if err != nil {
		a.log.Warn("drift check", "object", b.object, "path", b.path, "err", err)
		return
	}
	if len(drift) == 0 {
		return
	}
	if err := install.Repair(b.target, files); err != nil {
		a.log.Error("could not put back changed files", "object", b.object, "path", b.path, "drift", drift, "err", err)
		s.LastError = "repair: " + err.Error()
		return
	}
	a.log.Warn("files changed under the agent were put back", "object", b.object, "path", b.path, "files", drift, "found", why)
	s.LastResult, s.LastError, s.LastChange = "repaired", "", time.Now().UTC()
	a.queueReport(vaultclient.Report{Object: b.object, Binding: b.path, Version: s.Version, Result: "repaired", Drift: drift})
}

// watchFiles (re)adds fsnotify watches: the configuration's directory and
// each binding's directory and current version directory.
func (a *agent) watchFiles(w *fsnotify.Watcher) {
	want := map[string]bool{filepath.Dir(a.opts.ConfigPath): true}
	for _, b := range a.bindings {
		want[b.target.Dir] = true
		if cur, err := filepath.EvalSymlinks(filepath.Join(b.target.Dir, ".certvault", b.target.Name, "current")); err == nil {
			want[cur] = true
		}
	}
	have := map[string]bool{}
	for _, p := range w.WatchList() {
		have[p] = true
		if !want[p] {
			w.Remove(p)
		}
	}
	for p := range want {
		if !have[p] {
			if err := w.Add(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				a.log.Debug("watch", "path", p, "err", err)
			}
		}
	}
}

// queueReport keeps a report until the vault takes it.
func (a *agent) queueReport(r vaultclient.Report) {
	a.pending = append(a.pending, r)
	if len(a.pending) > 100 {
		a.pending = a.pending[len(a.pending)-100:]
	}
}

// flushReports sends the queued reports, stopping at the first failure.
func (a *agent) flushReports(ctx context.Context) {
	for len(a.pending) > 0 {
		if err := a.vc.SendReport(ctx, a.pending[0]); err != nil {
			var ve *vaultclient.Error
			if errors.As(err, &ve) && ve.Status == 400 {
				a.log.Warn("the vault refused a report", "err", err)
				a.pending = a.pending[1:]
				continue
			}
			return
		}
		a.pending = a.pending[1:]
	}
}

func (a *agent) save() {
	if err := a.st.save(a.cfg.StateDir); err != nil {
		a.log.Error("save state", "err", err)
	}
}

// statusLine is systemd's STATUS.
func (a *agent) statusLine() string {
	ok, failed := 0, 0
	for _, b := range a.bindings {
		if s := a.st.Bindings[b.key]; s != nil && s.Version != "" {
			ok++
			if s.LastError != "" {
				failed++
			}
		}
	}
	vault := "vault ok"
	switch {
	case len(a.bindings) == 0:
		vault = "nothing bound to watch"
	case !a.st.VaultOK && a.failures == 0 && a.st.LastVaultError == "":
		vault = "vault not contacted yet"
	case !a.st.VaultOK:
		vault = "vault unreachable, serving installed files"
	}
	line := fmt.Sprintf("%d/%d bindings installed, %d with errors; %s", ok, len(a.bindings), failed, vault)
	if a.mi != nil {
		line += fmt.Sprintf("; managed identity for %d users", len(a.miIDs))
	}
	return line
}

func hash(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func hashes(files map[string][]byte) map[string]string {
	out := make(map[string]string, len(files))
	for k, v := range files {
		out[k] = hash(v)
	}
	return out
}

// isNetError reports whether err is the network failing rather than the
// version being bad.
func isNetError(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded)
}
