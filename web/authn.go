package web

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"

	"github.com/kplane/kplane/auth"
)

const (
	sessionCookie = "kplane_session"
	// loginCSRFCookie carries the double-submit CSRF token of the login
	// form, which is posted before any session exists.
	loginCSRFCookie = "kplane_login_csrf"
	csrfField       = "csrf"

	keyIdentity = "kplane.identity"
	keySession  = "kplane.session"
)

// identity returns who the request was authenticated as.
func identity(c *gin.Context) auth.Identity {
	id, _ := c.Get(keyIdentity)
	v, _ := id.(auth.Identity)
	return v
}

func session(c *gin.Context) auth.Session {
	v, _ := c.Get(keySession)
	sess, _ := v.(auth.Session)
	return sess
}

// bearerToken returns the token of an "Authorization: Bearer" header and
// whether the header was present at all.
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", false
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", true
	}
	return strings.TrimSpace(tok), true
}

// requireRole admits API requests carrying a Bearer token whose user holds
// at least role: 401 without a valid token, 403 with too small a role.
// Mutating routes use it; browser sessions are not accepted there, so a
// cross-site form can never reach them.
func (s *Server) requireRole(role auth.Role) gin.HandlerFunc {
	return func(c *gin.Context) {
		tok, _ := bearerToken(c.Request)
		id, err := s.auth.Authenticate(c.Request.Context(), tok)
		if err != nil {
			s.fail(c, err)
			return
		}
		s.admit(c, id, role)
	}
}

// requireRead is requireRole for safe (GET) routes that the console also
// calls: a Bearer token, or failing that a session cookie. Safe methods
// change nothing, so they need no CSRF token.
func (s *Server) requireRead(role auth.Role) gin.HandlerFunc {
	return func(c *gin.Context) {
		var id auth.Identity
		var err error
		if tok, present := bearerToken(c.Request); present {
			id, err = s.auth.Authenticate(c.Request.Context(), tok)
		} else {
			id, _, err = s.auth.Session(c.Request.Context(), sessionID(c))
		}
		if err != nil {
			s.fail(c, err)
			return
		}
		s.admit(c, id, role)
	}
}

func (s *Server) admit(c *gin.Context, id auth.Identity, role auth.Role) {
	if !id.Role.Allows(role) {
		s.fail(c, fmt.Errorf("role %s may not do this, it needs %s: %w", id.Role, role, auth.ErrForbidden))
		return
	}
	c.Set(keyIdentity, id)
	requestLogger(c, s.log).Debug("authenticated", "user", id.User, "role", id.Role.String())
	c.Next()
}

func sessionID(c *gin.Context) string {
	v, err := c.Cookie(sessionCookie)
	if err != nil {
		return ""
	}
	return v
}

// requireSession admits console requests from a signed-in browser and
// sends everyone else to the login page, remembering where they were going.
// The event stream gets a 401 instead: an EventSource cannot follow a login
// redirect.
func (s *Server) requireSession(c *gin.Context) {
	id, sess, err := s.auth.Session(c.Request.Context(), sessionID(c))
	if err != nil {
		if !errors.Is(err, auth.ErrUnauthenticated) {
			s.failPage(c, err)
			return
		}
		if sessionID(c) != "" {
			s.clearCookie(c, sessionCookie, "/")
		}
		if strings.HasPrefix(c.Request.URL.Path, "/ui/events/") {
			s.fail(c, err)
			return
		}
		target := "/login"
		if c.Request.Method == http.MethodGet && c.Request.URL.Path != "/" {
			target += "?next=" + url.QueryEscape(c.Request.URL.RequestURI())
		}
		c.Redirect(http.StatusSeeOther, target)
		c.Abort()
		return
	}
	c.Set(keyIdentity, id)
	c.Set(keySession, sess)
	c.Next()
}

// requireCSRF admits a console form post only if it carries the session's
// CSRF token.
func (s *Server) requireCSRF(c *gin.Context) {
	if !equalSecret(c.PostForm(csrfField), session(c).CSRF) {
		s.failPage(c, errCSRF)
		return
	}
	c.Next()
}

// safeNext returns the path to continue to after login, refusing anything
// that would leave this site (an open redirect helps phishing).
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/services"
	}
	u, err := url.Parse(next)
	if err != nil || u.Host != "" || u.Scheme != "" {
		return "/services"
	}
	return next
}

func (s *Server) secure(c *gin.Context) bool {
	return s.cfg.SecureCookies || c.Request.TLS != nil
}

// setCookie sets an HttpOnly cookie. expires is absolute (a session ends
// when auth says so); maxAge, if non-zero, is relative and wins in browsers.
func (s *Server) setCookie(c *gin.Context, name, value, path string, expires time.Time, maxAge time.Duration) {
	http.SetCookie(c.Writer, &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     path,
		Expires:  expires,
		MaxAge:   int(maxAge / time.Second),
		HttpOnly: true,
		Secure:   s.secure(c),
		SameSite: http.SameSiteLaxMode,
	})
}

func (s *Server) clearCookie(c *gin.Context, name, path string) {
	http.SetCookie(c.Writer, &http.Cookie{
		Name:     name,
		Value:    "",
		Path:     path,
		MaxAge:   -1,
		HttpOnly: true,
		Secure:   s.secure(c),
		SameSite: http.SameSiteLaxMode,
	})
}

// LoginLimits bound failed sign-ins, so that passwords cannot be guessed
// at speed: per client address (one attacker trying many users) and per
// user name (many addresses trying one user). A successful sign-in does
// not count. Over a limit the login form answers 429 with Retry-After.
//
// API tokens are not limited this way: they are 256 random bits, beyond
// guessing at any rate.
type LoginLimits struct {
	// ClientRate and ClientBurst limit one client address. Zero is
	// DefaultLoginClientRate and DefaultLoginClientBurst.
	ClientRate  rate.Limit
	ClientBurst int
	// UserRate and UserBurst limit attempts naming one user. Zero is
	// DefaultLoginUserRate and DefaultLoginUserBurst.
	UserRate  rate.Limit
	UserBurst int
}

// Defaults of LoginLimits: 20 failures at once from an address, then one
// every 6 s; 10 failures for a user name, then one every 30 s.
var (
	DefaultLoginClientRate  = rate.Every(6 * time.Second)
	DefaultLoginClientBurst = 20
	DefaultLoginUserRate    = rate.Every(30 * time.Second)
	DefaultLoginUserBurst   = 10
)

// limiterSweepAt is the number of keys above which a keyedLimiter forgets
// the keys whose limiter has refilled (and so is as good as new).
const limiterSweepAt = 4096

// keyedLimiter is one token bucket per key (client address or user name).
type keyedLimiter struct {
	limit rate.Limit
	burst int

	mu   sync.Mutex
	keys map[string]*keyedEntry
}

type keyedEntry struct {
	lim  *rate.Limiter
	last time.Time
}

func newKeyedLimiter(limit rate.Limit, burst int) *keyedLimiter {
	return &keyedLimiter{limit: limit, burst: max(burst, 1), keys: map[string]*keyedEntry{}}
}

// reserve takes one token for key at now.
func (k *keyedLimiter) reserve(key string, now time.Time) *rate.Reservation {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.keys) >= limiterSweepAt {
		k.sweep(now)
	}
	e := k.keys[key]
	if e == nil {
		e = &keyedEntry{lim: rate.NewLimiter(k.limit, k.burst)}
		k.keys[key] = e
	}
	e.last = now
	return e.lim.ReserveN(now, 1)
}

// sweep drops the keys untouched for long enough to have refilled.
func (k *keyedLimiter) sweep(now time.Time) {
	refill := time.Duration(float64(k.burst) / float64(k.limit) * float64(time.Second))
	for key, e := range k.keys {
		if now.Sub(e.last) >= refill {
			delete(k.keys, key)
		}
	}
}

// loginLimiter applies LoginLimits.
type loginLimiter struct {
	clients, users *keyedLimiter
}

func newLoginLimiter(l LoginLimits) *loginLimiter {
	if l.ClientRate == 0 {
		l.ClientRate, l.ClientBurst = DefaultLoginClientRate, DefaultLoginClientBurst
	}
	if l.UserRate == 0 {
		l.UserRate, l.UserBurst = DefaultLoginUserRate, DefaultLoginUserBurst
	}
	return &loginLimiter{clients: newKeyedLimiter(l.ClientRate, l.ClientBurst), users: newKeyedLimiter(l.UserRate, l.UserBurst)}
}

// admit counts one sign-in attempt from client naming user ("" for a token
// sign-in). It returns forget, which uncounts the attempt (call it when
// the sign-in succeeded), or how long to wait when over a limit.
func (l *loginLimiter) admit(client, user string, now time.Time) (forget func(), wait time.Duration) {
	rs := []*rate.Reservation{l.clients.reserve(client, now)}
	if user != "" {
		rs = append(rs, l.users.reserve(strings.ToLower(user), now))
	}
	cancel := func() {
		for _, r := range rs {
			r.CancelAt(now)
		}
	}
	for _, r := range rs {
		if d := r.DelayFrom(now); d > wait {
			wait = d
		}
	}
	if wait > 0 {
		cancel()
		return nil, wait
	}
	return cancel, 0
}

// retryAfter formats a wait as whole seconds, rounded up.
func retryAfter(d time.Duration) string {
	return strconv.Itoa(int(math.Ceil(d.Seconds())))
}
