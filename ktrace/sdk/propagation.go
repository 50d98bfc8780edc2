package sdk

import (
	"encoding/hex"
	"net/http"
	"strings"
)

// Header names of the propagation formats.
const (
	TraceparentHeader  = "Traceparent"
	TracestateHeader   = "Tracestate"
	B3Header           = "B3"
	B3TraceIDHeader    = "X-B3-Traceid"
	B3SpanIDHeader     = "X-B3-Spanid"
	B3ParentSpanHeader = "X-B3-Parentspanid"
	B3SampledHeader    = "X-B3-Sampled"
	B3FlagsHeader      = "X-B3-Flags"
)

// maxTracestate bounds the tracestate passed through; W3C lets a vendor
// drop it rather than forward an oversized one.
const maxTracestate = 512

// Format selects the headers Inject writes.
type Format uint8

const (
	// FormatW3C is traceparent (and tracestate when there is one).
	FormatW3C Format = 1 << iota
	// FormatB3Single is the single "b3" header.
	FormatB3Single
	// FormatB3Multi is X-B3-TraceId, X-B3-SpanId and X-B3-Sampled.
	FormatB3Multi
)

// DefaultFormats is what Inject writes when Config.Inject is zero: W3C for
// OpenTelemetry-instrumented peers, single-header B3 for Zipkin ones.
const DefaultFormats = FormatW3C | FormatB3Single

// Extract reads the caller's span context from h, preferring traceparent,
// then b3, then X-B3-*. A malformed header is ignored as if absent, so a
// bad client can never fail a request. ok is false when nothing usable was
// sent. A B3 header carrying only a sampling decision yields ok with zero
// IDs: the decision applies to the new trace this service starts.
func Extract(h http.Header) (sc SpanContext, ok bool) {
	if sc, ok = extractW3C(h); ok {
		return sc, true
	}
	if v := h.Get(B3Header); v != "" {
		if sc, ok = parseB3Single(v); ok {
			return sc, true
		}
	}
	return extractB3Multi(h)
}

// Inject writes sc into h in the given formats (0 means DefaultFormats).
// An invalid sc writes nothing.
func Inject(sc SpanContext, h http.Header, formats Format) {
	if !sc.IsValid() {
		return
	}
	if formats == 0 {
		formats = DefaultFormats
	}
	tid, sid := sc.TraceID.String(), sc.SpanID.String()
	sampled := "0"
	if sc.Sampled {
		sampled = "1"
	}
	if formats&FormatW3C != 0 {
		h.Set(TraceparentHeader, "00-"+tid+"-"+sid+"-0"+sampled)
		if sc.TraceState != "" {
			h.Set(TracestateHeader, sc.TraceState)
		} else {
			h.Del(TracestateHeader)
		}
	}
	if formats&FormatB3Single != 0 {
		h.Set(B3Header, tid+"-"+sid+"-"+sampled)
	}
	if formats&FormatB3Multi != 0 {
		h.Set(B3TraceIDHeader, tid)
		h.Set(B3SpanIDHeader, sid)
		h.Set(B3SampledHeader, sampled)
		h.Del(B3ParentSpanHeader) // a stale one would name the wrong parent
		h.Del(B3FlagsHeader)
	}
}

// extractW3C parses "version-traceid-parentid-flags". Versions above 00
// may append fields, so only their prefix is read.
func extractW3C(h http.Header) (SpanContext, bool) {
	v := strings.TrimSpace(h.Get(TraceparentHeader))
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return SpanContext{}, false
	}
	version := v[:2]
	if !isLowerHex(version) || version == "ff" {
		return SpanContext{}, false
	}
	if version == "00" && len(v) != 55 {
		return SpanContext{}, false
	}
	if len(v) > 55 && v[55] != '-' {
		return SpanContext{}, false
	}
	var sc SpanContext
	if !isLowerHex(v[3:35]) || !isLowerHex(v[36:52]) || !isLowerHex(v[53:55]) {
		return SpanContext{}, false
	}
	_, _ = hex.Decode(sc.TraceID[:], []byte(v[3:35]))
	_, _ = hex.Decode(sc.SpanID[:], []byte(v[36:52]))
	var flags [1]byte
	_, _ = hex.Decode(flags[:], []byte(v[53:55]))
	if !sc.IsValid() {
		return SpanContext{}, false
	}
	sc.Sampled = flags[0]&1 == 1
	sc.Remote = true
	if ts := strings.Join(h.Values(TracestateHeader), ","); len(ts) <= maxTracestate {
		sc.TraceState = ts
	}
	return sc, true
}

// parseB3Single parses "traceid-spanid[-sampling[-parentspanid]]" or a
// lone sampling state ("0", "1", "d").
func parseB3Single(v string) (SpanContext, bool) {
	parts := strings.Split(strings.TrimSpace(v), "-")
	if len(parts) == 1 {
		sampled, ok := parseB3Sampling(parts[0])
		return SpanContext{Sampled: sampled, Remote: true}, ok
	}
	if len(parts) > 4 {
		return SpanContext{}, false
	}
	sc, ok := parseB3IDs(parts[0], parts[1])
	if !ok {
		return SpanContext{}, false
	}
	sc.Deferred = true
	if len(parts) >= 3 {
		if sc.Sampled, ok = parseB3Sampling(parts[2]); !ok {
			return SpanContext{}, false
		}
		sc.Deferred = false
	}
	if len(parts) == 4 {
		var parent SpanID
		if !decodeID(parent[:], parts[3]) {
			return SpanContext{}, false
		}
	}
	return sc, true
}

func extractB3Multi(h http.Header) (SpanContext, bool) {
	tid, sid := h.Get(B3TraceIDHeader), h.Get(B3SpanIDHeader)
	sampled, decided := parseB3Sampled(h.Get(B3SampledHeader))
	if h.Get(B3FlagsHeader) == "1" { // debug implies sampled
		sampled, decided = true, true
	}
	if tid == "" && sid == "" {
		if !decided {
			return SpanContext{}, false
		}
		return SpanContext{Sampled: sampled, Remote: true}, true
	}
	sc, ok := parseB3IDs(tid, sid)
	if !ok {
		return SpanContext{}, false
	}
	sc.Sampled, sc.Deferred = sampled, !decided
	return sc, true
}

// parseB3IDs accepts a 128- or 64-bit trace ID (the latter zero-padded on
// the left, as Zipkin stores it) and a 64-bit span ID.
func parseB3IDs(tid, sid string) (SpanContext, bool) {
	var sc SpanContext
	switch len(tid) {
	case 32:
		if !decodeID(sc.TraceID[:], tid) {
			return SpanContext{}, false
		}
	case 16:
		if !decodeID(sc.TraceID[8:], tid) {
			return SpanContext{}, false
		}
	default:
		return SpanContext{}, false
	}
	if !decodeID(sc.SpanID[:], sid) || !sc.IsValid() {
		return SpanContext{}, false
	}
	sc.Remote = true
	return sc, true
}

func parseB3Sampling(s string) (sampled, ok bool) {
	switch s {
	case "1", "d":
		return true, true
	case "0":
		return false, true
	}
	return false, false
}

// parseB3Sampled also takes "true" and "false", which old B3 clients send.
func parseB3Sampled(s string) (sampled, decided bool) {
	switch strings.ToLower(s) {
	case "1", "true":
		return true, true
	case "0", "false":
		return false, true
	}
	return false, false
}

// decodeID decodes exactly len(dst) bytes of hex, either case.
func decodeID(dst []byte, s string) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	_, err := hex.Decode(dst, []byte(s))
	return err == nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
