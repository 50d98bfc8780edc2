package web

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kplane/kplane/auth"
)

// loginCSRFTTL is how long a login form stays valid.
const loginCSRFTTL = time.Hour

type loginView struct {
	CSRF     string
	Next     string
	Username string
	Error    string
}

type errorView struct {
	Status  int
	Message string
}

// loginPage shows the sign-in form, issuing the double-submit CSRF cookie
// the form must echo. A browser that is already signed in goes on.
func (s *Server) loginPage(c *gin.Context) {
	if _, _, err := s.auth.Session(c.Request.Context(), sessionID(c)); err == nil {
		c.Redirect(http.StatusSeeOther, safeNext(c.Query("next")))
		return
	}
	s.showLogin(c, http.StatusOK, loginView{Next: c.Query("next")})
}

// newCSRFToken returns 256 random bits, hex-encoded.
func newCSRFToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

func (s *Server) showLogin(c *gin.Context, status int, v loginView) {
	tok, err := c.Cookie(loginCSRFCookie)
	if err != nil || len(tok) < 32 {
		tok = newCSRFToken()
		s.setCookie(c, loginCSRFCookie, tok, "/login", time.Time{}, loginCSRFTTL)
	}
	v.CSRF = tok
	v.Next = safeNext(v.Next)
	s.render(c, status, "login", pageData{Title: "Sign in", Page: v})
}

// login signs a browser in with an API token (what `kplane dev` prints) or
// with a user name and password.
func (s *Server) login(c *gin.Context) {
	if err := c.Request.ParseForm(); err != nil {
		s.failPage(c, err)
		return
	}
	v := loginView{Next: c.PostForm("next"), Username: strings.TrimSpace(c.PostForm("username"))}
	cookieTok, _ := c.Cookie(loginCSRFCookie)
	if !equalSecret(c.PostForm(csrfField), cookieTok) {
		// Most often an expired or never-loaded form: say so and offer a
		// fresh one rather than a bare error.
		v.Error = "Your sign-in form expired. Please try again."
		s.showLogin(c, http.StatusForbidden, v)
		return
	}
	tok := strings.TrimSpace(c.PostForm("token"))
	limitedUser := v.Username
	if tok != "" {
		limitedUser = ""
	}
	forget, wait := s.loginLimit.admit(c.ClientIP(), limitedUser, s.now())
	if wait > 0 {
		requestLogger(c, s.log).Warn("sign-in rate limited", "client", c.ClientIP())
		c.Header("Retry-After", retryAfter(wait))
		v.Error = fmt.Sprintf("Too many failed sign-ins. Try again in %s.", retryAfter(wait)+" s")
		s.showLogin(c, http.StatusTooManyRequests, v)
		return
	}
	var sess auth.Session
	var err error
	if tok != "" {
		sess, err = s.auth.LoginToken(c.Request.Context(), tok)
	} else {
		sess, err = s.auth.Login(c.Request.Context(), v.Username, c.PostForm("password"))
	}
	if err == nil {
		forget()
	}
	if errors.Is(err, auth.ErrUnauthenticated) {
		v.Error = "Wrong user name, password or token."
		s.showLogin(c, http.StatusUnauthorized, v)
		return
	}
	if err != nil {
		s.failPage(c, err)
		return
	}
	s.setCookie(c, sessionCookie, sess.ID, "/", sess.Expires, 0)
	s.clearCookie(c, loginCSRFCookie, "/login")
	c.Redirect(http.StatusSeeOther, safeNext(v.Next))
}

func (s *Server) logout(c *gin.Context) {
	if err := s.auth.Logout(c.Request.Context(), session(c).ID); err != nil {
		s.failPage(c, err)
		return
	}
	s.clearCookie(c, sessionCookie, "/")
	c.Redirect(http.StatusSeeOther, "/login")
}

func (s *Server) servicesPage(c *gin.Context) {
	s.render(c, http.StatusOK, "services", pageData{
		Title: "Services",
		Nav:   "services",
		Page:  s.servicesView(),
	})
}

type comingView struct {
	Feature string // what arrives, e.g. "Build promotion (HAWAII)"
	What    string // what the page will show
	Icon    string // nav icon name
}

var (
	comingAutoscaler = comingView{
		Feature: "Autoscaling (Scout → Headquarter → Signalman)",
		What:    "each service's scaling policy, its current capacity, and every scaling decision with the votes and guards that explain it.",
		Icon:    "autoscaler",
	}
	comingBuilds = comingView{
		Feature: "Build promotion (HAWAII)",
		What:    "every reported build moving through alpha and QA to prod, with its test results, what changed, and a promote button for releasers.",
		Icon:    "builds",
	}
)

func (s *Server) comingPage(v comingView) gin.HandlerFunc {
	title := map[string]string{"autoscaler": "Autoscaler", "builds": "Builds", "traces": "Traces"}[v.Icon]
	return func(c *gin.Context) {
		s.render(c, http.StatusOK, "coming", pageData{Title: title, Nav: v.Icon, Page: v})
	}
}
