package web

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kplane/kplane/auth"
)

// FuzzAPI drives the whole HTTP handler of a fully configured server
// (fullEnv: SQLite auth, in-memory builds, deploys, autoscaler and span
// store) with fuzzed requests: method, path (seeded with every real route),
// Content-Type, Content-Encoding, Authorization and body, the body
// optionally gzipped or made larger than the route's limit. Whatever
// arrives:
//
//   - no 5xx but 503 with Retry-After (a panic is answered 500 by the
//     recovery middleware, so it fails here too);
//   - a 4xx under /api/ is JSON with "error" and "code";
//   - a declared Content-Length above the route's limit is 413, and a
//     chunked body that a handler reads past the limit is 413 too;
//   - every request is answered within 10 s.
//
// Seeds are in testdata/fuzz/FuzzAPI and below; scripts/fuzz.sh runs it:
//
//	go test ./web -run '^$' -fuzz '^FuzzAPI$' -fuzztime 60s
func FuzzAPI(f *testing.F) {
	e := fullEnv(f)
	h := e.srv.Handler()
	limits := routeLimits(e)

	// Seeds: every route of the authorization matrix with its body, as
	// each role, and the reads.
	for key, cases := range apiMatrix {
		method, _, _ := strings.Cut(key, " ")
		for _, tc := range cases {
			ctype := tc.ctype
			if ctype == "" {
				ctype = "application/json"
			}
			f.Add(method, tc.path, ctype, "", uint8(fuzzAuthAdmin), []byte(tc.body))
		}
	}
	for _, r := range e.srv.engine.Routes() {
		if r.Method == http.MethodGet && !isStream(r.Path) {
			f.Add(r.Method, concretePath(r.Path), "", "", uint8(fuzzAuthViewer), []byte(nil))
		}
	}
	f.Add("POST", "/v1/traces", "application/json", "", uint8(fuzzAuthNone|fuzzGzip), []byte(`{"resourceSpans":[]}`))
	f.Add("POST", "/api/v2/spans", "application/json", "gzip", uint8(fuzzAuthNone), []byte(`[]`))
	f.Add("POST", "/api/v1/builds", "application/json", "", uint8(fuzzAuthDeveloper|fuzzDeclaredTooLarge), []byte(`{}`))
	f.Add("PUT", "/api/v1/policies/inventory", "application/json", "", uint8(fuzzAuthDeveloper|fuzzChunkedTooLarge), []byte(`{"min":`))
	f.Add("POST", "/v1/traces", "application/x-protobuf", "", uint8(fuzzAuthNone|fuzzChunkedTooLarge), []byte{})
	f.Add("PATCH", "/api/v1/nope", "text/plain", "br", uint8(fuzzAuthGarbage), []byte("x"))

	f.Fuzz(func(t *testing.T, method, path, ctype, cenc string, mode uint8, body []byte) {
		if !validMethod(method) || !strings.HasPrefix(path, "/") || !validHeader(ctype) || !validHeader(cenc) {
			return // net/http refuses these before any handler runs
		}
		u, err := url.ParseRequestURI(path)
		if err != nil || isStream(u.Path) && method == http.MethodGet {
			return // event streams answer until the client leaves
		}
		if mode&fuzzGzip != 0 {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			zw.Write(body)
			zw.Close()
			body, cenc = buf.Bytes(), "gzip"
		}
		limit := limits.of(method, u.Path, e.srv.maxBody)
		read := &countingReader{r: bytes.NewReader(body)}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req := httptest.NewRequestWithContext(ctx, method, "/", nil)
		req.URL, req.RequestURI = u, path
		req.Body, req.ContentLength = io.NopCloser(read), int64(len(body))
		switch mode & fuzzSizeMask {
		case fuzzDeclaredTooLarge:
			read.r = io.MultiReader(bytes.NewReader(body), spaces(limits.max+1-int64(len(body))))
			req.ContentLength = limits.max + 1
		case fuzzChunkedTooLarge:
			read.r = io.MultiReader(bytes.NewReader(body), spaces(limit+1-int64(len(body))))
			req.ContentLength = -1
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		if cenc != "" {
			req.Header.Set("Content-Encoding", cenc)
		}
		if a := fuzzAuthorization(e, mode&fuzzAuthMask); a != "" {
			req.Header.Set("Authorization", a)
		}

		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if ctx.Err() != nil {
			t.Fatalf("%s %s: no answer within 10 s", method, path)
		}
		status, got := w.Code, w.Body.Bytes()
		switch {
		case status >= 500 && status != http.StatusServiceUnavailable:
			t.Fatalf("%s %s (%s): %d %s\nlog tail:\n%s", method, path, ctype, status, got, logTail(e.logs.String()))
		case status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "":
			t.Fatalf("%s %s: 503 without Retry-After: %s", method, path, got)
		}
		if mode&fuzzSizeMask == fuzzDeclaredTooLarge && status != http.StatusRequestEntityTooLarge && !isRedirect(status) {
			t.Fatalf("%s %s with Content-Length %d above the limit: %d %s, want 413", method, path, req.ContentLength, status, got)
		}
		if mode&fuzzSizeMask == fuzzChunkedTooLarge && read.n.Load() > limit && status != http.StatusRequestEntityTooLarge {
			t.Fatalf("%s %s: read %d bytes of a chunked body over the %d-byte limit and answered %d %s, want 413",
				method, path, read.n.Load(), limit, status, got)
		}
		if status >= 400 && status < 500 && strings.HasPrefix(u.Path, "/api/") && method != http.MethodHead {
			var eb struct {
				Error *string `json:"error"`
				Code  *string `json:"code"`
			}
			if err := json.Unmarshal(got, &eb); err != nil || eb.Error == nil || *eb.Error == "" || eb.Code == nil || *eb.Code == "" {
				t.Fatalf("%s %s: %d with a body that is not {\"error\", \"code\"} (%v): %q", method, path, status, err, got)
			}
		}
	})
}

// mode bits of FuzzAPI.
const (
	fuzzAuthMask = 0x07
	fuzzGzip     = 0x08
	fuzzSizeMask = 0x30

	fuzzAuthNone      = 0
	fuzzAuthViewer    = 1
	fuzzAuthDeveloper = 2
	fuzzAuthReleaser  = 3
	fuzzAuthAdmin     = 4
	fuzzAuthGarbage   = 5

	fuzzDeclaredTooLarge = 0x10
	fuzzChunkedTooLarge  = 0x20
)

func fuzzAuthorization(e *env, sel uint8) string {
	switch sel {
	case fuzzAuthViewer:
		return "Bearer " + e.tokens[auth.Viewer]
	case fuzzAuthDeveloper:
		return "Bearer " + e.tokens[auth.Developer]
	case fuzzAuthReleaser:
		return "Bearer " + e.tokens[auth.Releaser]
	case fuzzAuthAdmin:
		return "Bearer " + e.tokens[auth.Admin]
	case fuzzAuthGarbage:
		return "Bearer kp_not-a-token"
	case 6:
		return "Basic YWRtaW46YWRtaW4="
	case 7:
		return "Bearer"
	}
	return ""
}

// routeLimits is the body limit of each route that has its own.
type routeLimitTable struct {
	routes []routeLimit
	max    int64 // the largest limit of any route
}

type routeLimit struct {
	method string
	path   *regexp.Regexp
	limit  int64
}

func routeLimits(e *env) routeLimitTable {
	t := routeLimitTable{max: e.srv.maxBody}
	for _, r := range e.srv.engine.Routes() {
		l, ok := e.srv.bodyLimits[r.Path]
		if !ok {
			continue
		}
		var re strings.Builder
		re.WriteString("^")
		for i, part := range strings.Split(r.Path, "/") {
			if i > 0 {
				re.WriteString("/")
			}
			switch {
			case strings.HasPrefix(part, ":"):
				re.WriteString("[^/]+")
			case strings.HasPrefix(part, "*"):
				re.WriteString(".*")
			default:
				re.WriteString(regexp.QuoteMeta(part))
			}
		}
		re.WriteString("$")
		t.routes = append(t.routes, routeLimit{method: r.Method, path: regexp.MustCompile(re.String()), limit: l})
		t.max = max(t.max, l)
	}
	return t
}

func (t routeLimitTable) of(method, path string, def int64) int64 {
	for _, r := range t.routes {
		if r.method == method && r.path.MatchString(path) {
			return r.limit
		}
	}
	return def
}

// countingReader counts the bytes a handler read of the body.
type countingReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// spaces is n bytes of whitespace: valid padding inside JSON and XML, so
// a decoder keeps reading to the limit.
func spaces(n int64) io.Reader {
	if n < 0 {
		n = 0
	}
	return io.LimitReader(spaceReader{}, n)
}

type spaceReader struct{}

func (spaceReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

func isStream(path string) bool { return strings.Contains(path, "/events/") }

func isRedirect(status int) bool { return status >= 300 && status < 400 }

// validMethod: a token of at most 16 characters, as net/http accepts.
func validMethod(m string) bool {
	if m == "" || len(m) > 16 {
		return false
	}
	for _, r := range m {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}

// validHeader: a value net/http would pass on (no control characters).
func validHeader(v string) bool {
	for i := 0; i < len(v); i++ {
		if b := v[i]; b < ' ' && b != '\t' || b == 0x7f {
			return false
		}
	}
	return true
}

func logTail(logs string) string {
	if len(logs) > 4000 {
		return logs[len(logs)-4000:]
	}
	return logs
}
