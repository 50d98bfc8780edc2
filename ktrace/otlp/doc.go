// Package otlp decodes OTLP/HTTP trace export requests (protobuf and JSON)
// into ktrace spans and encodes the export response.
//
// Decoding uses the OpenTelemetry Collector's pdata, whose JSON decoder
// reads trace and span IDs as hex as OTLP/JSON requires (a generic
// protobuf JSON decoder reads them as base64 and corrupts them).
//
// A request that cannot be parsed fails as a whole with ktrace.ErrInvalid
// naming the problem. Spans that parse but cannot be stored (a zero trace
// or span ID, no start time) are left out and counted, and EncodeResponse
// reports them to the client as an OTLP partial success.
//
// The package does not speak HTTP (web does) and does not write spans
// (ktrace.Ingester does).
package otlp
