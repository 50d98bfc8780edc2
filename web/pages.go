package web

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kplane/kplane/auth"
)

//go:embed templates static
var assets embed.FS

// Every template under templates/ but layout.html is a page, parsed
// together with layout.html into its own set so that every page can define
// "content". A feature adds a page by adding its template file.

type pages struct {
	sets map[string]*template.Template
	// assetVersion changes whenever a static file does; it is appended to
	// static URLs so browsers may cache them without serving stale CSS.
	assetVersion string
}

func loadPages() (*pages, error) {
	funcs := template.FuncMap{
		"initial": func(s string) string {
			if s == "" {
				return "?"
			}
			return strings.ToUpper(s[:1])
		},
	}
	p := &pages{sets: map[string]*template.Template{}}
	files, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.New(name).Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("parse template %s: %w", name, err)
		}
		p.sets[name] = t
	}
	h := sha256.New()
	err = fs.WalkDir(assets, "static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := assets.ReadFile(path)
		h.Write([]byte(path))
		h.Write(b)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("hash static files: %w", err)
	}
	p.assetVersion = hex.EncodeToString(h.Sum(nil))[:12]
	return p, nil
}

// pageData is what every template receives.
type pageData struct {
	Title   string
	Nav     string // which navigation entry is current
	User    auth.Identity
	CSRF    string // the session's token, for the sign-out form
	Version string
	Asset   string
	Page    any // the page's own view
}

// render executes a page into a buffer first, so that a template error
// becomes a clean 500 instead of half a page.
func (s *Server) render(c *gin.Context, status int, page string, data pageData) {
	data.Version = s.cfg.Version
	data.Asset = s.pages.assetVersion
	if data.User.User == "" {
		data.User = identity(c)
	}
	if data.CSRF == "" {
		data.CSRF = session(c).CSRF
	}
	layout := "console"
	if data.User.User == "" || page == "login" {
		layout = "bare"
	}
	var buf bytes.Buffer
	if err := s.pages.sets[page].ExecuteTemplate(&buf, layout, data); err != nil {
		requestLogger(c, s.log).Error("render page", "page", page, "err", err)
		c.AbortWithStatusJSON(http.StatusInternalServerError, errorBody{Error: "internal error", Code: "internal"})
		return
	}
	c.Data(status, "text/html; charset=utf-8", buf.Bytes())
}

// renderFragment executes one named template of a page, for live updates.
func (s *Server) renderFragment(page, name string, data any) (string, error) {
	var buf bytes.Buffer
	if err := s.pages.sets[page].ExecuteTemplate(&buf, name, data); err != nil {
		return "", err
	}
	return buf.String(), nil
}

func (s *Server) static() gin.HandlerFunc {
	sub, err := fs.Sub(assets, "static")
	if err != nil {
		// fs.Sub fails only for an invalid literal path: a build mistake.
		panic(err)
	}
	files := http.StripPrefix("/static/", http.FileServerFS(sub))
	return func(c *gin.Context) {
		if c.Query("v") == s.pages.assetVersion {
			c.Header("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			c.Header("Cache-Control", "no-cache")
		}
		files.ServeHTTP(c.Writer, c.Request)
	}
}

// equalSecret compares a presented secret with the expected one in
// constant time; an empty expected secret matches nothing.
func equalSecret(got, want string) bool {
	if want == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// formatUptime renders a duration the way an operator scans it: "45s",
// "3m12s", "2h05m", "3d4h". console.js mirrors it for the live ticker.
func formatUptime(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	sec := int64(d / time.Second)
	switch {
	case sec < 60:
		return fmt.Sprintf("%ds", sec)
	case sec < 3600:
		return fmt.Sprintf("%dm%02ds", sec/60, sec%60)
	case sec < 86400:
		return fmt.Sprintf("%dh%02dm", sec/3600, sec%3600/60)
	default:
		return fmt.Sprintf("%dd%dh", sec/86400, sec%86400/3600)
	}
}
