package sdk

import (
	"io"
	"net/http"
	"sync"
)

// Transport is an http.RoundTripper that makes a client span per request,
// a child of the request context's span, and injects its context into the
// request headers so that the server continues the trace. Wrap whatever
// transport actually sends, registry.NewTransport included:
//
//	client := &http.Client{Transport: &sdk.Transport{Tracer: tr, Base: registry.NewTransport(...)}}
//
// The span ends when the response body is read to the end or closed (or
// at once on an error), so it covers the whole exchange.
type Transport struct {
	// Tracer makes the client spans. nil makes none: the context's span
	// context is passed on as it is.
	Tracer *Tracer
	// Base sends the requests; nil means http.DefaultTransport.
	Base http.RoundTripper
}

var _ http.RoundTripper = (*Transport)(nil)

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	if t.Tracer == nil {
		sc, ok := SpanContextFromContext(req.Context())
		if !ok {
			return base.RoundTrip(req)
		}
		out := req.Clone(req.Context()) // a RoundTripper must not modify the caller's request
		Inject(sc, out.Header, DefaultFormats)
		return base.RoundTrip(out)
	}
	ctx, span := t.Tracer.Start(req.Context(), req.Method+" "+req.URL.Host, WithKind(KindClient))
	out := req.Clone(ctx)
	Inject(span.SpanContext(), out.Header, t.Tracer.inject)
	if span.IsRecording() {
		span.SetTag("http.request.method", req.Method)
		span.SetTag("server.address", req.URL.Hostname())
		if port := req.URL.Port(); port != "" {
			span.SetTag("server.port", port)
		}
		span.SetTag("url.path", req.URL.Path)
	}
	resp, err := base.RoundTrip(out)
	if err != nil {
		span.SetError(err)
		span.End()
		return nil, err
	}
	if span.IsRecording() {
		span.SetTag("http.response.status_code", resp.StatusCode)
		// A 4xx is usually an expected answer (an unknown ticket), not a
		// failure of the call.
		if resp.StatusCode >= 500 {
			span.SetStatus(StatusError, http.StatusText(resp.StatusCode))
		}
	}
	if _, upgraded := resp.Body.(io.Writer); upgraded || resp.Body == nil || resp.Body == http.NoBody || !span.IsRecording() {
		span.End()
		return resp, nil
	}
	resp.Body = &spanBody{ReadCloser: resp.Body, span: span}
	return resp, nil
}

// spanBody ends the client span when the body is consumed or closed.
type spanBody struct {
	io.ReadCloser
	span *Span
	once sync.Once
}

func (b *spanBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		if err != io.EOF {
			b.span.SetError(err)
		}
		b.once.Do(b.span.End)
	}
	return n, err
}

func (b *spanBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.span.End)
	return err
}
