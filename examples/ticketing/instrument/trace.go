package instrument

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"strings"
)

// Header names the package reads and writes.
const (
	TraceparentHeader = "traceparent"
	RequestIDHeader   = "X-Request-ID"
	TraceIDHeader     = "X-Trace-Id"
)

// maxRequestIDLen bounds a client-chosen X-Request-ID: it is logged on every
// line about the request.
const maxRequestIDLen = 128

type traceKey struct{}

// trace is what the middleware learned about the request's trace.
type trace struct {
	id    string // 32 lowercase hex when w3c, else the client's X-Request-ID
	w3c   bool   // id is a valid W3C trace-id and can go out in traceparent
	flags string // trace-flags of the incoming traceparent, "01" otherwise
}

// TraceID is the trace ID of the request ctx belongs to, or "" outside a
// request served through the middleware.
func TraceID(ctx context.Context) string {
	t, _ := ctx.Value(traceKey{}).(trace)
	return t.id
}

// WithTraceID returns ctx carrying a trace ID, as the middleware does, for
// calls made outside a served request (the load generator, tests).
func WithTraceID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, traceKey{}, trace{id: id, w3c: isTraceID(id), flags: "01"})
}

// traceFrom takes the trace ID from traceparent, else X-Request-ID, else
// generates one.
func traceFrom(h http.Header) trace {
	if id, flags, ok := parseTraceparent(h.Get(TraceparentHeader)); ok {
		return trace{id: id, w3c: true, flags: flags}
	}
	if id := h.Get(RequestIDHeader); id != "" && len(id) <= maxRequestIDLen && printable(id) {
		return trace{id: id, w3c: isTraceID(id), flags: "01"}
	}
	return trace{id: randomHex(16), w3c: true, flags: "01"}
}

// parseTraceparent returns the trace-id and trace-flags of a W3C
// traceparent ("00-<32 hex trace-id>-<16 hex parent-id>-<2 hex flags>").
// Future versions may append fields, so only the prefix is required.
func parseTraceparent(v string) (id, flags string, ok bool) {
	parts := strings.Split(v, "-")
	if len(parts) < 4 || len(parts[0]) != 2 || parts[0] == "ff" || !isHex(parts[0]) {
		return "", "", false
	}
	if parts[0] == "00" && len(parts) != 4 {
		return "", "", false
	}
	if !isTraceID(parts[1]) || len(parts[2]) != 16 || !isHex(parts[2]) || parts[2] == "0000000000000000" ||
		len(parts[3]) != 2 || !isHex(parts[3]) {
		return "", "", false
	}
	return parts[1], parts[3], true
}

func isTraceID(s string) bool {
	return len(s) == 32 && isHex(s) && s != "00000000000000000000000000000000"
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}

// Transport passes the trace of the request context on to the services it
// calls: a W3C traceparent with a fresh parent-id when the trace ID is a W3C
// one, X-Request-ID otherwise.
type Transport struct {
	Base http.RoundTripper // nil means http.DefaultTransport
}

var _ http.RoundTripper = (*Transport)(nil)

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	tr, ok := req.Context().Value(traceKey{}).(trace)
	if !ok || tr.id == "" {
		return base.RoundTrip(req)
	}
	// A RoundTripper must not modify the caller's request.
	out := req.Clone(req.Context())
	if tr.w3c {
		out.Header.Set(TraceparentHeader, "00-"+tr.id+"-"+randomHex(8)+"-"+tr.flags)
	} else {
		out.Header.Set(RequestIDHeader, tr.id)
	}
	return base.RoundTrip(out)
}
