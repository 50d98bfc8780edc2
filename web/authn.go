package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

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
