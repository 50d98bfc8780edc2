// Package instrument gives a ticketing service its observability: a
// middleware that traces every request with the ktrace SDK (a server span
// continuing the caller's W3C or B3 trace context), counts and times it in
// Prometheus metrics labelled by service and route, writes one JSON access
// log line carrying the span's trace ID, and returns that ID to the client
// in X-Trace-Id. The SDK's span context is the only source of trace IDs:
// log lines, spans and downstream calls (through sdk.Transport) agree.
//
// Routes are ServeMux patterns ("POST /events/{id}/orders"), never raw
// paths, so that metric cardinality stays bounded whatever clients send.
// The package registers metrics only on the registerer it is given; it has
// no global state.
//
// Use it by wrapping the service's mux:
//
//	mw, err := instrument.New(instrument.Config{Service: "inventory", Registerer: reg, AccessLog: os.Stdout, Tracer: tracer})
//	srv := &http.Server{Handler: mw.Wrap(mux)}
package instrument
