// Package instrument gives a ticketing service its observability: a
// middleware that counts and times every request in Prometheus metrics
// labelled by service and route, writes one JSON access log line per
// request, and carries a trace ID from the W3C traceparent header (or
// X-Request-ID, or a fresh one) through the request context to outgoing
// calls and back to the client in X-Trace-Id.
//
// Routes are ServeMux patterns ("POST /events/{id}/orders"), never raw
// paths, so that metric cardinality stays bounded whatever clients send.
// The package registers metrics only on the registerer it is given; it has
// no global state.
//
// Use it by wrapping the service's mux:
//
//	mw, err := instrument.New(instrument.Config{Service: "inventory", Registerer: reg, AccessLog: os.Stdout})
//	srv := &http.Server{Handler: mw.Wrap(mux)}
package instrument
