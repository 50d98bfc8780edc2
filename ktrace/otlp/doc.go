// Package otlp decodes OTLP/HTTP trace export requests (protobuf and JSON)
// into ktrace spans and encodes the export response.
//
// Decoding uses the OpenTelemetry Collector's pdata, whose JSON decoder
// reads trace and span IDs as hex as OTLP/JSON requires (a generic
// protobuf JSON decoder reads them as base64 and corrupts them).
//
// Before pdata sees a request, Decode checks its wire structure (or its
// JSON syntax) without allocating: a request with more than MaxSpans spans
// or MaxElements elements fails with ErrTooLarge, and one whose attribute
// values nest deeper than MaxValueDepth with ktrace.ErrInvalid. pdata
// allocates a struct for every message, however empty, and decodes nested
// values by recursion, so without the check a 20 MiB body could take
// gigabytes or overflow the stack. See limits.go.
//
// A request that cannot be parsed fails as a whole with ktrace.ErrInvalid
// naming the problem. Spans that parse but cannot be stored (a zero trace
// or span ID, no start time or one past 2262) are left out and counted, and EncodeResponse
// reports them to the client as an OTLP partial success.
//
// The package does not speak HTTP (web does) and does not write spans
// (ktrace.Ingester does).
package otlp
