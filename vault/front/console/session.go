package console

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/certvault/certvault/vault/core"
	"github.com/certvault/certvault/vault/front"
	"github.com/certvault/certvault/vault/identity"
)

// Cookie names: the session, and the login form's CSRF value before
// there is a session.
const (
	sessionCookie = "cv_session"
	loginCookie   = "cv_login"
)

// session is a request's signed-in session.
type session struct {
	secret string
	caller core.Caller
	csrf   string
}

type sessionKey struct{}

// sessionOf returns the request's session, set by signedIn.
func sessionOf(r *http.Request) (session, bool) {
	s, ok := r.Context().Value(sessionKey{}).(session)
	return s, ok
}

func (f *Front) idle() time.Duration {
	if f.IdleTimeout > 0 {
		return f.IdleTimeout
	}
	return DefaultIdleTimeout
}

// mac signs parts for purpose with the barrier's key ("" while sealed).
func (f *Front) mac(purpose string, parts ...string) string {
	b := f.Barrier.Load()
	if b == nil {
		return ""
	}
	bs := make([][]byte, len(parts))
	for i, p := range parts {
		bs[i] = []byte(p)
	}
	return base64.RawURLEncoding.EncodeToString(b.Mac("certvault console "+purpose, bs...))
}

// cookieValue is SECRET.LASTUSED.MAC: the session and when it was last
// used, signed so that the idle time cannot be reset by the browser.
func (f *Front) cookieValue(secret string, last time.Time) string {
	ts := strconv.FormatInt(last.Unix(), 10)
	return secret + "." + ts + "." + f.mac("cookie", secret, ts)
}

// parseCookie checks a session cookie's signature and returns its secret
// and last use.
func (f *Front) parseCookie(v string) (string, time.Time, bool) {
	return splitCookie(v, func(secret, ts string) string { return f.mac("cookie", secret, ts) })
}

// splitCookie parses SECRET.LASTUSED.MAC and checks MAC with sign ("" from
// sign refuses every cookie: the vault is sealed).
func splitCookie(v string, sign func(secret, ts string) string) (string, time.Time, bool) {
	parts := strings.Split(v, ".")
	if len(parts) != 3 || parts[0] == "" {
		return "", time.Time{}, false
	}
	want := sign(parts[0], parts[1])
	if want == "" || !hmac.Equal([]byte(parts[2]), []byte(want)) {
		return "", time.Time{}, false
	}
	ts, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil {
		return "", time.Time{}, false
	}
	return parts[0], time.Unix(ts, 0), true
}

func (f *Front) setSessionCookie(w http.ResponseWriter, value string) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: value, Path: "/ui/", HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
}

func clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/ui/", MaxAge: -1, HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
}

// signedIn wraps h so that it runs only for a valid session: a signed
// cookie, used within the idle timeout, naming a session that exists and
// whose token is still valid. Anything else goes to the sign-in page. A
// POST must also come from the console (Origin, Sec-Fetch-Site) and carry
// the session's CSRF token.
func (f *Front) signedIn(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && !f.Store.IsLeader() {
			// Writes are built from the leader's state, as the API's
			// are: the leader checks and serves the whole request.
			f.ProxyToLeader(w, r)
			return
		}
		now := time.Now()
		s, ok, err := f.resolveSession(r, now)
		if err != nil {
			f.Fail(w, r, err)
			return
		}
		if !ok {
			// The cookie is left alone: a cross-site navigation arrives
			// without it (SameSite=Strict) and must not sign the
			// person out; only sign-out clears it.
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
				return
			}
			f.renderError(w, r, http.StatusUnauthorized, "Signed out", "Your session ended; sign in again.")
			return
		}
		front.InfoOf(r).Caller = s.caller
		if r.Method == http.MethodGet && !f.Linearized(w, r) {
			// A page shows what the cluster has committed, a write made
			// a moment ago through the leader included, as the API's
			// reads do.
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), sessionKey{}, s))
		if r.Method == http.MethodPost {
			if !sameOrigin(r) || subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(s.csrf)) != 1 {
				front.InfoOf(r).Denied = true
				f.renderError(w, r, http.StatusForbidden, "Refused", "This form did not come from this console page (cross-site request refused); reload the page and try again.")
				return
			}
		}
		f.setSessionCookie(w, f.cookieValue(s.secret, now))
		h(w, r)
	}
}

// resolveSession finds the request's valid session.
func (f *Front) resolveSession(r *http.Request, now time.Time) (session, bool, error) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return session{}, false, nil
	}
	secret, last, ok := f.parseCookie(ck.Value)
	if !ok || now.Sub(last) > f.idle() || last.After(now.Add(time.Minute)) {
		return session{}, false, nil
	}
	c, _, ok, err := f.SessionCaller(secret, now)
	if err == nil && !ok {
		// Made a moment ago through the leader?
		if again, cerr := f.CatchUp(); cerr != nil {
			return session{}, false, cerr
		} else if again {
			c, _, ok, err = f.SessionCaller(secret, now)
		}
	}
	if err != nil || !ok {
		return session{}, false, err
	}
	return session{secret: secret, caller: c, csrf: f.mac("csrf", secret)}, true, nil
}

// loginPage is the sign-in page's data.
type loginPage struct {
	page
	Error string
}

// handleLoginPage shows the sign-in form with a fresh login CSRF value
// (a cookie and the same value in the form).
func (f *Front) handleLoginPage(w http.ResponseWriter, r *http.Request) {
	// While the user signs in, this node loads the certificates'
	// catalog (once: a catalog loaded before is left alone), so that
	// the inventory the sign-in leads to answers at once.
	f.Catalog.Warm(core.KindCertificates, func(err error) {
		f.Log.Error("console: load the certificates' catalog", "err", err)
	})
	f.showLogin(w, r, http.StatusOK, "")
}

func (f *Front) showLogin(w http.ResponseWriter, r *http.Request, status int, msg string) {
	raw := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		f.Fail(w, r, err)
		return
	}
	v := base64.RawURLEncoding.EncodeToString(raw)
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: v, Path: "/ui/", HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode, MaxAge: 3600})
	f.render(w, status, "login", loginPage{page: page{Title: "Sign in", CSRF: v}, Error: msg})
}

// handleLogin signs in with a certvault token: the token is checked as
// the API checks it, and a session is made; the token itself is not kept.
func (f *Front) handleLogin(w http.ResponseWriter, r *http.Request) {
	ck, err := r.Cookie(loginCookie)
	if !sameOrigin(r) || err != nil || ck.Value == "" || subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(ck.Value)) != 1 {
		front.InfoOf(r).Denied = true
		f.renderError(w, r, http.StatusForbidden, "Refused", "This sign-in form did not come from this console (cross-site request refused); open the sign-in page and try again.")
		return
	}
	var c core.Caller
	clientID := strings.TrimSpace(r.PostFormValue("client_id"))
	if clientID != "" {
		c, err = f.SignInServicePrincipal(clientID, r.PostFormValue("client_secret"))
		if errors.Is(err, identity.ErrUnknownClient) {
			if again, cerr := f.CatchUp(); cerr == nil && again {
				c, err = f.SignInServicePrincipal(clientID, r.PostFormValue("client_secret"))
			}
		}
		var oe *identity.OAuthError
		if errors.As(err, &oe) {
			err = fmt.Errorf("%w: %w", front.ErrUnauthenticated, err)
		}
	} else {
		c, err = f.AuthenticateToken(strings.TrimSpace(r.PostFormValue("token")))
		if err == nil && c.TokenID == "" {
			err = front.ErrUnauthenticated // an access token: sign in with what it came from
		}
	}
	if errors.Is(err, front.ErrUnauthenticated) {
		front.InfoOf(r).Denied = true
		f.showLogin(w, r, http.StatusUnauthorized, "Those credentials are not valid, were revoked or have expired.")
		return
	}
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	ri := front.InfoOf(r)
	ri.Caller, ri.Object = c, "/ui/sessions"
	now := time.Now()
	secret, _, err := f.CreateSession(r.Context(), c, clientID, now)
	if err != nil {
		f.Fail(w, r, err)
		return
	}
	clearCookie(w, loginCookie)
	f.setSessionCookie(w, f.cookieValue(secret, now))
	http.Redirect(w, r, "/ui/certificates", http.StatusSeeOther)
}

// handleLogout ends the session everywhere.
func (f *Front) handleLogout(w http.ResponseWriter, r *http.Request) {
	s, _ := sessionOf(r)
	front.InfoOf(r).Object = "/ui/sessions"
	if err := f.DeleteSession(r.Context(), s.secret); err != nil {
		f.Fail(w, r, err)
		return
	}
	clearCookie(w, sessionCookie)
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}
