package instrument

import (
	"context"

	"github.com/kplane/kplane/ktrace/sdk"
)

// Header names the package reads and writes.
const (
	TraceparentHeader = "traceparent"
	RequestIDHeader   = "X-Request-ID"
	// TraceIDHeader tells the client the trace ID of its request, to
	// paste into ktrace or quote in a bug report.
	TraceIDHeader = "X-Trace-Id"
)

// maxRequestIDLen bounds a client-chosen X-Request-ID: it is logged on every
// line about the request.
const maxRequestIDLen = 128

// TraceID is the trace ID of the request ctx belongs to (the ktrace SDK's
// span context, the one source of trace IDs), or "" outside a traced
// request.
func TraceID(ctx context.Context) string {
	sc := sdk.SpanFromContext(ctx).SpanContext()
	if !sc.IsValid() {
		return ""
	}
	return sc.TraceID.String()
}

// requestID is the client's X-Request-ID if it is fit for a log line.
func requestID(v string) string {
	if v == "" || len(v) > maxRequestIDLen || !printable(v) {
		return ""
	}
	return v
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
