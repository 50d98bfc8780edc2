// Package sdk is the ktrace Go SDK: it traces the requests of a Go service
// and sends the spans to ktrace (or any OTLP/HTTP collector).
//
// A Tracer starts spans, decides once per trace whether the trace is
// sampled, and hands ended spans to an asynchronous batching reporter that
// exports them as OTLP/HTTP protobuf to Config.Endpoint + "/v1/traces".
// The request path never waits on the collector: the reporter's queue is
// bounded, and when it is full or the collector is down spans are dropped
// and counted in ktrace_sdk_spans_dropped_total{reason}, as SkyWalking's
// agent does. Losing spans is preferred to slowing the service.
//
// Trace context travels in W3C traceparent/tracestate and in B3 (single
// "b3" header and X-B3-* headers): Extract reads whichever the caller
// sent, Inject writes W3C and single-header B3 by default. Unsampled
// requests still carry and propagate IDs, so that every access log line
// has a trace ID, but record nothing.
//
// Middleware (net/http) and GinMiddleware (gin) make one server span per
// request, named by the route pattern; Transport makes one client span per
// outgoing request and injects the headers. The package keeps no global
// state: everything hangs off the Tracer the caller builds and shuts down.
//
//	tr, err := sdk.New(sdk.Config{ServiceName: "inventory", Endpoint: "http://127.0.0.1:8080"})
//	defer tr.Shutdown(ctx)
//	srv := &http.Server{Handler: sdk.Middleware(tr, mux, sdk.HTTPOptions{})}
//	client := &http.Client{Transport: &sdk.Transport{Tracer: tr, Base: base}}
//
// The package does not store or query traces; that is package ktrace.
package sdk
