// Package browser runs a real headless Chromium (Debian's chromium package)
// for a test, driven through the DevTools protocol with chromedp: Start finds
// and starts it, NewTab opens a tab, and small helpers (Navigate, Text,
// Click, SendKeys, Screenshot, Cookies, …) act on a tab with bounded waits
// and errors that say what was being done. The browser's console is captured
// so that a test can assert that a page raised no error and no
// Content-Security-Policy violation, or that it did.
//
// It owns the browser process and its temporary directories; it does not
// start the server under test, and it knows nothing of certvault's pages.
//
// # Trusting a CA
//
// The vault serves HTTPS with a certificate from its own CA. TrustCA makes
// the browser trust that CA the way a person's browser would after importing
// it: Start gives Chromium a HOME of its own (a temporary directory) and
// writes the CA certificates into an NSS database at $HOME/.pki/nssdb with
// certutil (Debian's libnss3-tools), marked as trusted for TLS servers
// ("C,,"). Chromium on Linux reads user-added trust anchors from that
// database, so every certificate the CA issues is accepted, including one
// issued after the browser started, and the full verification still runs: a
// certificate for another name (net::ERR_CERT_COMMON_NAME_INVALID), an
// expired one (net::ERR_CERT_DATE_INVALID) or one from another CA
// (net::ERR_CERT_AUTHORITY_INVALID) is refused (TestTrustCA). The machine's
// own trust store and root's HOME are not touched.
//
// The alternative, --ignore-certificate-errors-spki-list with the hash of the
// server's public key, was tried and not chosen: it makes Chromium ignore
// every certificate error for that key (it accepted a certificate for a
// wrong host name), it needs the server to run before the browser starts, and
// it breaks when the server's key changes. --ignore-certificate-errors is
// never used.
//
// # Timeouts
//
// Every wait is bounded and the bounds are generous, so that the tests pass
// on a busy two-core machine: the start (StartTimeout), each tab
// (DefaultTabTimeout, or the TabTimeout option) and each helper call
// (DefaultStepTimeout, or what WithStepTimeout sets). A helper that runs out
// of time says which selector or URL it was waiting for.
//
// # Console
//
// Every tab's console is recorded from the moment NewTab returns: calls of
// the console API, uncaught exceptions and the browser's log, where Chromium
// reports a Content-Security-Policy violation as an error. The messages
// arrive asynchronously; SyncConsole waits until every message a tab wrote
// before it has been recorded, so that "no violation" can be asserted
// without sleeping.
package browser

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Errors of the package.
var (
	// ErrNotTab is returned by the helpers when the context does not come
	// from NewTab.
	ErrNotTab = errors.New("browser: the context is not a tab of browser.NewTab")
	// ErrConsoleClosed is returned by SyncConsole when the tab's console
	// recording ended (the tab was closed or timed out) before the marker
	// arrived.
	ErrConsoleClosed = errors.New("browser: the console recording of the tab ended")
)

// Timeouts. They are generous on purpose: a loaded two-core machine starts
// Chromium in a second or two when idle, but much slower under load.
const (
	// StartTimeout bounds the start of Chromium, up to its first tab.
	StartTimeout = 90 * time.Second
	// CloseTimeout bounds the graceful close of Chromium at the end of the
	// test; after it the process is killed.
	CloseTimeout = 20 * time.Second
	// DefaultTabTimeout bounds the whole life of a tab (every action in it).
	DefaultTabTimeout = 5 * time.Minute
	// DefaultStepTimeout bounds one helper call: one navigation, one wait,
	// one click.
	DefaultStepTimeout = 45 * time.Second
	// WindowWidth and WindowHeight are the size of the browser window; a
	// screenshot is WindowWidth pixels wide.
	WindowWidth, WindowHeight = 1280, 900
)

// installHint is what a skipped test tells the reader to run.
const installHint = "run make deps (apt-get install chromium libnss3-tools)"

// Option changes how Start runs the browser.
type Option func(*config)

type config struct {
	caFiles    []string
	tabTimeout time.Duration
}

// TrustCA makes the browser trust the CA certificates in the PEM file for
// HTTPS, beside the system's roots (see the package comment). It may be
// given more than once. The file must hold at least one certificate.
func TrustCA(pemFile string) Option {
	return func(c *config) { c.caFiles = append(c.caFiles, pemFile) }
}

// TabTimeout bounds the life of each tab NewTab opens. Zero or less keeps
// DefaultTabTimeout.
func TabTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.tabTimeout = d
		}
	}
}

// Browser is a running headless Chromium. It is closed when the test that
// started it ends. Its methods are safe for concurrent use; each tab's
// context is for one goroutine at a time.
type Browser struct {
	cfg    config
	ctx    context.Context // the chromedp browser context
	output *tailBuffer     // the last of what Chromium printed

	mu      sync.Mutex
	console []message     // every tab's messages, in arrival order per tab
	changed chan struct{} // closed and replaced when console grows
	tabs    int
}

// message is one recorded console message.
type message struct {
	tab  int
	msg  chromedp.ConsoleMessage
	done bool // the tab's recording ended
}

// Start starts a headless Chromium for the test and closes it when the test
// ends. It skips the test when Chromium (or, with TrustCA, certutil) is not
// installed, and fails it when the browser does not start within
// StartTimeout.
//
// Chromium runs with --headless, --no-sandbox (the tests run as root),
// --disable-gpu, a window of WindowWidth×WindowHeight at scale 1, the
// language en-US, a temporary user-data-dir that chromedp creates and
// removes, and a temporary HOME (see TrustCA).
func Start(t testing.TB, opts ...Option) *Browser {
	t.Helper()
	exe := findChromium()
	if exe == "" {
		t.Skip("chromium is not installed: " + installHint)
	}
	b := &Browser{
		cfg:     config{tabTimeout: DefaultTabTimeout},
		output:  newTailBuffer(64 << 10),
		changed: make(chan struct{}),
	}
	for _, o := range opts {
		o(&b.cfg)
	}

	// Chromium's HOME: the NSS database of TrustCA, and whatever else it
	// writes outside its profile. Created before the browser's cleanup is
	// registered, so it is removed after the browser has exited.
	home := filepath.Join(t.TempDir(), "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatalf("browser: create chromium's HOME: %v", err)
	}
	if len(b.cfg.caFiles) > 0 {
		if _, err := exec.LookPath("certutil"); err != nil {
			t.Skip("certutil is not installed (needed to trust a CA): " + installHint)
		}
		if err := trustCAs(home, b.cfg.caFiles); err != nil {
			t.Fatalf("browser: %v", err)
		}
	}

	allocOpts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.WindowSize(WindowWidth, WindowHeight),
		chromedp.Flag("force-device-scale-factor", "1"),
		chromedp.Flag("lang", "en-US"),
		chromedp.Env("HOME="+home,
			"XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
			"XDG_CACHE_HOME="+filepath.Join(home, ".cache"),
			"LANGUAGE=en_US"),
		chromedp.CombinedOutput(b.output),
	)

	// The browser lives as long as the context of its first action, so the
	// start is bounded by cancelling that context's parent on a timer, not
	// by a timeout on the context itself.
	root, stop := context.WithCancel(context.Background())
	allocCtx, allocCancel := chromedp.NewExecAllocator(root, allocOpts...)
	// The context's cancel func is not kept: chromedp.Cancel in close ends
	// it (calling both can block).
	b.ctx, _ = chromedp.NewContext(allocCtx)
	t.Cleanup(func() { b.close(t, stop, allocCancel) })

	timer := time.AfterFunc(StartTimeout, stop)
	err := chromedp.Do(b.ctx)
	if !timer.Stop() && err == nil {
		err = fmt.Errorf("not started within %v", StartTimeout)
	}
	if err != nil {
		t.Fatalf("browser: start %s: %v\nchromium printed:\n%s", exe, err, b.output)
	}
	return b
}

// close closes the browser gracefully within CloseTimeout, then kills what
// is left and waits for chromedp to remove its profile directory.
func (b *Browser) close(t testing.TB, stop, allocCancel context.CancelFunc) {
	ctx, cancel := context.WithTimeout(b.ctx, CloseTimeout)
	err := chromedp.Cancel(ctx)
	cancel()
	stop()
	allocCancel() // waits for the process and the profile's removal
	switch {
	case err == nil, errors.Is(err, context.Canceled):
	case errors.Is(err, context.DeadlineExceeded):
		t.Logf("browser: chromium did not close within %v; it was killed", CloseTimeout)
	default:
		t.Errorf("browser: close chromium: %v\nchromium printed:\n%s", err, b.output)
	}
}

// findChromium returns the path of Chromium (or Chrome), or "".
func findChromium() string {
	if fi, err := os.Stat("/usr/bin/chromium"); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
		return "/usr/bin/chromium"
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// tab is what a tab's context carries for the helpers.
type tab struct {
	b           *Browser
	id          int
	stepTimeout time.Duration
}

type tabKey struct{}

// WithStepTimeout returns a copy of the tab's context in which each helper
// call may take up to d: longer for a page that waits on a slow operation,
// shorter for a test that expects a wait to fail. Zero or less, or a
// context that is no tab, leaves ctx as it is.
func WithStepTimeout(ctx context.Context, d time.Duration) context.Context {
	tb, err := tabOf(ctx)
	if err != nil || d <= 0 {
		return ctx
	}
	c := *tb
	c.stepTimeout = d
	return context.WithValue(ctx, tabKey{}, &c)
}

func tabOf(ctx context.Context) (*tab, error) {
	if tb, ok := ctx.Value(tabKey{}).(*tab); ok {
		return tb, nil
	}
	return nil, ErrNotTab
}

// NewTab opens a tab and returns its context, which ends after the tab
// timeout (DefaultTabTimeout) or when the test ends; the tab is closed then.
// Each tab is its own browser context, like a fresh private window: it
// shares no cookies or storage with the other tabs. Its console is recorded
// from now on.
func (b *Browser) NewTab(t testing.TB) context.Context {
	t.Helper()
	tabCtx, closeTab := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	ctx, cancel := context.WithTimeout(tabCtx, b.cfg.tabTimeout)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		closeTab()
		wg.Wait()
	})
	// The first action creates the target, bound to ctx: the tab lives as
	// long as ctx.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("browser: open a tab: %v\nchromium printed:\n%s", err, b.output)
	}

	b.mu.Lock()
	b.tabs++
	tb := &tab{b: b, id: b.tabs, stepTimeout: DefaultStepTimeout}
	b.mu.Unlock()

	messages := chromedp.Console(ctx)
	wg.Go(func() {
		defer b.record(message{tab: tb.id, done: true})
		for m, err := range messages {
			if err != nil {
				return
			}
			b.record(message{tab: tb.id, msg: m})
		}
	})
	return context.WithValue(ctx, tabKey{}, tb)
}

// record appends one message and wakes SyncConsole.
func (b *Browser) record(m message) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.console = append(b.console, m)
	close(b.changed)
	b.changed = make(chan struct{})
}

// syncPrefix starts the text of SyncConsole's markers; they are not reported.
const syncPrefix = "certvault-browser-sync "

// ConsoleErrors returns the errors every tab wrote to its console so far:
// console.error calls, uncaught exceptions and the browser's error entries,
// among them Content-Security-Policy violations and failed loads. Each is
// "type: text", with the URL where the browser gave one. Call SyncConsole
// first to be sure a page's messages have arrived.
//
// A failed load of /favicon.ico is left out: the browser asks for it on its
// own after the page loaded, so it would come or not depending on timing.
func (b *Browser) ConsoleErrors() []string {
	return b.consoleMatching(func(m chromedp.ConsoleMessage) bool {
		if m.Source == "network" && strings.HasSuffix(m.URL, "/favicon.ico") {
			return false
		}
		return m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException
	})
}

// CSPViolations returns the Content-Security-Policy violations the browser
// reported so far (report-only ones too), as ConsoleErrors formats them.
func (b *Browser) CSPViolations() []string {
	return b.consoleMatching(func(m chromedp.ConsoleMessage) bool {
		return strings.Contains(m.Text, "Content Security Policy")
	})
}

func (b *Browser) consoleMatching(keep func(chromedp.ConsoleMessage) bool) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, r := range b.console {
		if r.done || strings.HasPrefix(r.msg.Text, syncPrefix) || !keep(r.msg) {
			continue
		}
		s := r.msg.String()
		if r.msg.URL != "" {
			s += " (" + r.msg.URL + ")"
		}
		out = append(out, s)
	}
	return out
}

// SyncConsole writes a marker to the tab's console and waits (up to the
// step timeout) until the recording has seen it: every message the tab's
// page wrote before the call is then in ConsoleErrors and CSPViolations.
// Call it once the page has loaded (after Navigate, ClickAndWait or
// WaitVisible), not while a navigation is under way.
func SyncConsole(ctx context.Context) error {
	tb, err := tabOf(ctx)
	if err != nil {
		return err
	}
	b := tb.b
	b.mu.Lock()
	marker := fmt.Sprintf("%s%d-%d", syncPrefix, tb.id, len(b.console))
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, tb.stepTimeout)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](
		fmt.Sprintf("console.debug(%q)", marker))); err != nil {
		return fmt.Errorf("write a marker to the console: %w", err)
	}
	for {
		b.mu.Lock()
		seen, ended := false, false
		for _, r := range b.console {
			if r.tab != tb.id {
				continue
			}
			seen = seen || r.msg.Text == marker
			ended = ended || r.done
		}
		changed := b.changed
		b.mu.Unlock()
		switch {
		case seen:
			return nil
		case ended:
			return fmt.Errorf("wait for console marker %q: %w", marker, ErrConsoleClosed)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("wait for console marker %q: not recorded within %v: %w", marker, tb.stepTimeout, ctx.Err())
		}
	}
}

// tailBuffer keeps the last max bytes written to it; it is safe for
// concurrent use.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

func (w *tailBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if over := len(w.buf) - w.max; over > 0 {
		w.buf = append(w.buf[:0], w.buf[over:]...)
	}
	return len(p), nil
}

func (w *tailBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.buf)
}
