package sdk

import (
	"fmt"
	"net"
	"net/http"
	"strings"
)

// HTTPOptions adjusts Middleware. The zero value traces every request.
type HTTPOptions struct {
	// Filter, when set, excludes requests from recording (health checks,
	// metrics scrapes): they still get IDs, so their log lines have a
	// trace ID and their downstream calls carry one, but no spans.
	Filter func(*http.Request) bool
}

// Middleware makes one server span per request, continuing the trace the
// request arrived with (see Extract). The span is named by the route
// pattern next matched, "GET /events/{id}", never by the raw path, so that
// names stay few; requests that matched nothing are named by their method.
// It records the method, route, status code, peer address, and a status of
// error for 5xx answers and panics (which it re-raises).
//
// next should be the *http.ServeMux itself, or pass on the very request it
// is given: the mux records the pattern on that request.
func Middleware(t *Tracer, next http.Handler, opts HTTPOptions) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		startOpts := []StartOption{WithKind(KindServer)}
		if parent, ok := Extract(r.Header); ok {
			startOpts = append(startOpts, WithParent(parent))
		}
		if opts.Filter != nil && !opts.Filter(r) {
			startOpts = append(startOpts, withoutRecording())
		}
		ctx, span := t.Start(r.Context(), r.Method, startOpts...)
		if !span.IsRecording() {
			next.ServeHTTP(w, r.WithContext(ctx))
			return
		}
		rec := &statusRecorder{ResponseWriter: w}
		req := r.WithContext(ctx)
		defer func() {
			p := recover()
			status := rec.status
			switch {
			case p != nil && !rec.wroteHeader:
				status = http.StatusInternalServerError // what net/http or a recovery layer answers
			case status == 0:
				status = http.StatusOK
			}
			endServerSpan(span, req, req.Pattern, status)
			if p != nil {
				if p != http.ErrAbortHandler {
					span.SetError(fmt.Errorf("panic: %v", p))
				}
				span.End()
				panic(p)
			}
			span.End()
		}()
		next.ServeHTTP(rec, req)
	})
}

// endServerSpan names the span after the route and records the outcome.
func endServerSpan(span *Span, r *http.Request, route string, status int) {
	if route != "" {
		span.SetName(spanName(r.Method, route))
		span.SetTag("http.route", route)
	}
	span.SetTag("http.request.method", r.Method)
	span.SetTag("url.path", r.URL.Path)
	span.SetTag("http.response.status_code", status)
	if host, port, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		span.SetTag("client.address", host)
		span.SetTag("client.port", port)
	}
	if ua := r.UserAgent(); ua != "" {
		span.SetTag("user_agent.original", ua)
	}
	if status >= 500 {
		span.SetStatus(StatusError, http.StatusText(status))
	}
}

// spanName is "METHOD route": ServeMux patterns may already start with
// the method, gin routes never do.
func spanName(method, route string) string {
	if strings.HasPrefix(route, method+" ") {
		return route
	}
	return method + " " + route
}

// statusRecorder remembers the status code the handler sent.
type statusRecorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wroteHeader && code >= 200 { // 1xx are informational, the real status follows
		r.status, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = http.StatusOK, true
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush, Hijack and deadlines.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
