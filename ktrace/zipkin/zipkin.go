package zipkin

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/kplane/kplane/internal/jsonlimit"
	"hash/fnv"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kplane/kplane/ktrace"
)

// unknownService is Zipkin's own name for a span without an endpoint.
const unknownService = "unknown"

// The Dapper annotations.
const (
	clientSend = "cs"
	clientRecv = "cr"
	serverRecv = "sr"
	serverSend = "ss"
)

type endpoint struct {
	ServiceName string `json:"serviceName"`
	IPv4        string `json:"ipv4"`
	IPv6        string `json:"ipv6"`
	Port        int    `json:"port"`
}

type annotation struct {
	Timestamp int64  `json:"timestamp"`
	Value     string `json:"value"`
	// Endpoint is Zipkin v1's per-annotation endpoint: a v1-style span
	// names its services there rather than in localEndpoint.
	Endpoint *endpoint `json:"endpoint"`
}

// binaryAnnotation is Zipkin v1's tag.
type binaryAnnotation struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

type span struct {
	TraceID           string             `json:"traceId"`
	ParentID          string             `json:"parentId"`
	ID                string             `json:"id"`
	Kind              string             `json:"kind"`
	Name              string             `json:"name"`
	Timestamp         int64              `json:"timestamp"` // µs since the epoch
	Duration          int64              `json:"duration"`  // µs
	Shared            bool               `json:"shared"`
	LocalEndpoint     *endpoint          `json:"localEndpoint"`
	RemoteEndpoint    *endpoint          `json:"remoteEndpoint"`
	Annotations       []annotation       `json:"annotations"`
	Tags              map[string]string  `json:"tags"`
	BinaryAnnotations []binaryAnnotation `json:"binaryAnnotations"`
}

// Limits of one request. A Zipkin span is a handful of elements (the span,
// its endpoints, each annotation); MaxElements allows 20 MiB of real spans
// (about 8 elements per 600 bytes)
// and bounds what a hostile request makes kplane allocate.
const (
	MaxSpans    = 100_000
	MaxElements = 600_000
	// maxDepth is [ span { endpoint or annotations [ annotation { , with
	// room for a stray wrapper; nothing in Zipkin v2 nests deeper.
	maxDepth = 6
)

// Decode parses a JSON array of Zipkin v2 spans. Errors wrap
// ktrace.ErrInvalid and name the offending span.
func Decode(data []byte) ([]ktrace.Span, error) {
	// Bound the cost before decoding: [{},{},...] would otherwise become a
	// struct per three bytes, gigabytes from a 20 MiB body.
	if err := jsonlimit.Check(data, MaxElements, maxDepth); err != nil {
		var ee *jsonlimit.ElementsError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("Zipkin request holds more than %d elements (spans, annotations, endpoints); send smaller batches: %w", MaxElements, ktrace.ErrTooLarge)
		}
		return nil, fmt.Errorf("%w: Zipkin JSON: %v (spans nest %d levels at most)", ktrace.ErrInvalid, err, maxDepth)
	}
	var in []span
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("%w: Zipkin JSON: %s", ktrace.ErrInvalid, jsonProblem(err))
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: Zipkin JSON: data after the span list", ktrace.ErrInvalid)
	}
	if len(in) > MaxSpans {
		return nil, fmt.Errorf("Zipkin request holds %d spans, more than %d; send smaller batches: %w", len(in), MaxSpans, ktrace.ErrTooLarge)
	}
	out := make([]ktrace.Span, 0, len(in))
	for i := range in {
		var err error
		if out, err = appendSpan(out, &in[i]); err != nil {
			return nil, fmt.Errorf("%w: Zipkin span %d (%q): %v", ktrace.ErrInvalid, i, in[i].Name, err)
		}
	}
	splitShared(out, in)
	return out, nil
}

// jsonProblem turns encoding/json's errors into a sentence about the
// payload rather than about Go types.
func jsonProblem(err error) string {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "JSON ends early (empty or truncated body)"
	}
	switch e := err.(type) {
	case *json.SyntaxError:
		return fmt.Sprintf("syntax error at byte %d: %v", e.Offset, e)
	case *json.UnmarshalTypeError:
		if e.Field == "" {
			return fmt.Sprintf("want a JSON array of spans, got %s", e.Value)
		}
		return fmt.Sprintf("field %q at byte %d: got %s, want %s", e.Field, e.Offset, e.Value, jsonType(e.Type.Kind().String()))
	}
	return err.Error()
}

func jsonType(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "int64", "int":
		return "an integer"
	case "bool":
		return "a boolean"
	case "map", "struct":
		return "an object"
	case "slice":
		return "an array"
	}
	return goKind
}

// appendSpan converts one Zipkin span, appending one ktrace span (two for
// a v1-style span carrying both the client and the server half).
func appendSpan(out []ktrace.Span, z *span) ([]ktrace.Span, error) {
	traceID, err := parseTraceID(z.TraceID)
	if err != nil {
		return out, err
	}
	id, err := parseSpanID("id", z.ID)
	if err != nil {
		return out, err
	}
	if id.IsZero() {
		return out, fmt.Errorf("id is missing or all zeros")
	}
	var parent ktrace.SpanID
	if z.ParentID != "" {
		if parent, err = parseSpanID("parentId", z.ParentID); err != nil {
			return out, err
		}
	}
	if parent == id {
		// A span cannot be its own parent (a cycle no tree survives);
		// Zipkin's server drops such a parent ID too.
		parent = ktrace.SpanID{}
	}
	kind, err := parseKind(z.Kind)
	if err != nil {
		return out, err
	}
	if z.Timestamp < 0 || z.Duration < 0 {
		return out, fmt.Errorf("negative timestamp or duration")
	}
	// Spans are stored with nanosecond times in an int64, which ends in
	// 2262 (and starts in 1678, for annotations).
	if z.Timestamp > maxMicros {
		return out, fmt.Errorf("timestamp %d is after the year 2262", z.Timestamp)
	}
	for _, a := range z.Annotations {
		if a.Timestamp == 0 {
			// Zipkin's own server refuses one too.
			return out, fmt.Errorf("annotation %q has no timestamp", a.Value)
		}
		if a.Timestamp > maxMicros || a.Timestamp < -maxMicros {
			return out, fmt.Errorf("annotation %q: timestamp %d is not between the years 1678 and 2262", a.Value, a.Timestamp)
		}
	}

	dapper := map[string]annotation{}
	anns := make([]ktrace.Annotation, 0, len(z.Annotations))
	for _, a := range z.Annotations {
		switch a.Value {
		case clientSend, clientRecv, serverRecv, serverSend:
			if _, dup := dapper[a.Value]; !dup {
				dapper[a.Value] = a
			}
		}
		anns = append(anns, ktrace.Annotation{Time: micros(a.Timestamp), Value: a.Value})
	}
	slices.SortStableFunc(anns, func(a, b ktrace.Annotation) int { return a.Time.Compare(b.Time) })

	base := ktrace.Span{
		TraceID:      traceID,
		SpanID:       id,
		ParentSpanID: parent,
		Name:         z.Name,
		Tags:         tags(z),
	}
	if v, ok := base.Tags["error"]; ok {
		// Zipkin's convention: the error tag marks a failed span and its
		// value (possibly empty) is the message.
		base.Status, base.StatusMessage = ktrace.StatusError, v
	}

	_, hasCS := dapper[clientSend]
	_, hasSR := dapper[serverRecv]
	if kind == ktrace.KindUnspecified && hasCS && hasSR {
		// Zipkin v1: one span holds both halves of an RPC.
		client := half(base, z, ktrace.KindClient, dapper, anns, true)
		server := half(base, z, ktrace.KindServer, dapper, anns, true)
		server.ParentSpanID = client.SpanID
		server.SpanID = serverSpanID(traceID, id)
		if client.Start.IsZero() || server.Start.IsZero() {
			return out, fmt.Errorf("no start time: set timestamp or the cs and sr annotations")
		}
		return append(out, client, server), nil
	}
	if kind == ktrace.KindUnspecified {
		switch {
		case hasCS || dapper[clientRecv].Value != "":
			kind = ktrace.KindClient
		case hasSR || dapper[serverSend].Value != "":
			kind = ktrace.KindServer
		}
	}
	s := half(base, z, kind, dapper, anns, false)
	if s.Start.IsZero() {
		return out, fmt.Errorf("no start time: set timestamp (or a cs or sr annotation)")
	}
	return append(out, s), nil
}

// half fills in the timing, service and annotations of one side of a span.
// split means the Zipkin span holds both sides, so its timestamp and
// duration (which cover the client side) do not apply to the server side.
func half(s ktrace.Span, z *span, kind ktrace.Kind, dapper map[string]annotation, anns []ktrace.Annotation, split bool) ktrace.Span {
	s.Kind = kind
	var begin, end string
	switch kind {
	case ktrace.KindClient:
		begin, end = clientSend, clientRecv
	case ktrace.KindServer:
		begin, end = serverRecv, serverSend
	}
	useZ := !split || kind == ktrace.KindClient
	b, okB := dapper[begin]
	e, okE := dapper[end]
	switch {
	case useZ && z.Timestamp != 0:
		s.Start = micros(z.Timestamp)
	case okB && b.Timestamp > 0:
		s.Start = micros(b.Timestamp)
	case !split && len(anns) > 0 && anns[0].Time.UnixMicro() > 0:
		s.Start = anns[0].Time
	}
	switch {
	case useZ && z.Duration != 0:
		s.Duration = duration(z.Duration)
	case okB && okE && e.Timestamp > b.Timestamp:
		s.Duration = duration(e.Timestamp - b.Timestamp)
	}
	if !s.Start.IsZero() && s.Start.UnixMicro() > maxMicros-s.Duration.Microseconds() {
		s.Duration = 0 // an end past 2262, as for OTLP
	}

	s.Service = unknownService
	switch {
	case !split && z.LocalEndpoint != nil && z.LocalEndpoint.ServiceName != "":
		s.Service = z.LocalEndpoint.ServiceName
		s.Process = endpointProcess(z.LocalEndpoint)
	case okB && b.Endpoint != nil && b.Endpoint.ServiceName != "":
		s.Service = b.Endpoint.ServiceName
		s.Process = endpointProcess(b.Endpoint)
	case okE && e.Endpoint != nil && e.Endpoint.ServiceName != "":
		s.Service = e.Endpoint.ServiceName
		s.Process = endpointProcess(e.Endpoint)
	case z.LocalEndpoint != nil && z.LocalEndpoint.ServiceName != "":
		s.Service = z.LocalEndpoint.ServiceName
		s.Process = endpointProcess(z.LocalEndpoint)
	}

	if !split {
		s.Annotations = anns
		return s
	}
	// Each half keeps its own Dapper pair and shares the free-text
	// annotations; the halves must not share one slice.
	own := make([]ktrace.Annotation, 0, len(anns))
	for _, a := range anns {
		switch a.Value {
		case clientSend, clientRecv:
			if kind != ktrace.KindClient {
				continue
			}
		case serverRecv, serverSend:
			if kind != ktrace.KindServer {
				continue
			}
		}
		own = append(own, a)
	}
	s.Annotations = own
	if s.Tags != nil {
		s.Tags = maps(s.Tags)
	}
	return s
}

func maps(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func endpointProcess(e *endpoint) map[string]string {
	p := map[string]string{}
	if e.IPv4 != "" {
		p["ipv4"] = e.IPv4
	}
	if e.IPv6 != "" {
		p["ipv6"] = e.IPv6
	}
	if e.Port != 0 {
		p["port"] = strconv.Itoa(e.Port)
	}
	if len(p) == 0 {
		return nil
	}
	return p
}

// tags merges v2 tags, v1 binary annotations and the remote endpoint
// (under the peer.* names Zipkin's own UI and Jaeger use).
func tags(z *span) map[string]string {
	n := len(z.Tags) + len(z.BinaryAnnotations)
	if z.RemoteEndpoint != nil {
		n += 3
	}
	if n == 0 {
		return nil
	}
	t := make(map[string]string, n)
	for _, b := range z.BinaryAnnotations {
		if b.Key == "" {
			continue
		}
		var s string
		if json.Unmarshal(b.Value, &s) == nil {
			t[b.Key] = s
		} else {
			t[b.Key] = string(bytes.TrimSpace(b.Value))
		}
	}
	for k, v := range z.Tags {
		t[k] = v
	}
	if r := z.RemoteEndpoint; r != nil {
		if r.ServiceName != "" {
			t["peer.service"] = r.ServiceName
		}
		if r.IPv4 != "" {
			t["peer.ipv4"] = r.IPv4
		}
		if r.IPv6 != "" {
			t["peer.ipv6"] = r.IPv6
		}
		if r.Port != 0 {
			t["peer.port"] = strconv.Itoa(r.Port)
		}
	}
	if len(t) == 0 {
		return nil
	}
	return t
}

// splitShared gives the server half of every shared span its own ID. in
// is the decoded input, for the shared flags; out[i] need not be in[i]
// (v1 spans were already split), so flags are looked up by ID.
func splitShared(out []ktrace.Span, in []span) {
	type key struct {
		trace ktrace.TraceID
		span  ktrace.SpanID
	}
	clients := map[key]bool{}
	shared := map[key]bool{}
	for i := range in {
		if in[i].Shared {
			// IDs were validated by appendSpan.
			t, _ := parseTraceID(in[i].TraceID)
			s, _ := parseSpanID("id", in[i].ID)
			shared[key{t, s}] = true
		}
	}
	for i := range out {
		if out[i].Kind == ktrace.KindClient {
			clients[key{out[i].TraceID, out[i].SpanID}] = true
		}
	}
	type moved struct {
		key
		service string
	}
	renamed := map[moved]ktrace.SpanID{}
	for i := range out {
		s := &out[i]
		k := key{s.TraceID, s.SpanID}
		if s.Kind != ktrace.KindServer || !(shared[k] || clients[k]) {
			continue
		}
		s.ParentSpanID = s.SpanID
		s.SpanID = serverSpanID(s.TraceID, s.SpanID)
		renamed[moved{k, s.Service}] = s.SpanID
	}
	if len(renamed) == 0 {
		return
	}
	for i := range out {
		s := &out[i]
		if id, ok := renamed[moved{key{s.TraceID, s.ParentSpanID}, s.Service}]; ok && id != s.SpanID {
			s.ParentSpanID = id
		}
	}
}

// serverSpanID derives the server half's span ID from the shared one:
// deterministic, so a retried batch maps to the same ID and deduplicates.
func serverSpanID(t ktrace.TraceID, s ktrace.SpanID) ktrace.SpanID {
	h := fnv.New64a()
	h.Write(t[:])
	h.Write(s[:])
	h.Write([]byte("server"))
	var id ktrace.SpanID
	binary.BigEndian.PutUint64(id[:], h.Sum64())
	if id.IsZero() || id == s {
		id[7] ^= 1
	}
	return id
}

// parseTraceID accepts 1 to 32 hex digits, zero-padded on the left as
// Zipkin's own server does.
func parseTraceID(s string) (ktrace.TraceID, error) {
	var id ktrace.TraceID
	if s == "" {
		return id, fmt.Errorf("traceId is missing")
	}
	if len(s) > 32 {
		return id, fmt.Errorf("traceId %q: more than 32 hex digits", clip(s))
	}
	if err := decodeHexRight(id[:], s); err != nil {
		return id, fmt.Errorf("traceId %q: not hex", clip(s))
	}
	if id.IsZero() {
		return id, fmt.Errorf("traceId is all zeros")
	}
	return id, nil
}

func parseSpanID(field, s string) (ktrace.SpanID, error) {
	var id ktrace.SpanID
	if s == "" {
		return id, fmt.Errorf("%s is missing", field)
	}
	if len(s) > 16 {
		return id, fmt.Errorf("%s %q: more than 16 hex digits", field, clip(s))
	}
	if err := decodeHexRight(id[:], s); err != nil {
		return id, fmt.Errorf("%s %q: not hex", field, clip(s))
	}
	return id, nil
}

// decodeHexRight decodes s into the right end of dst, padding an odd
// number of digits with a leading zero.
func decodeHexRight(dst []byte, s string) error {
	if len(s)%2 == 1 {
		s = "0" + s
	}
	_, err := hex.Decode(dst[len(dst)-len(s)/2:], []byte(s))
	return err
}

// clip keeps an echoed bad value short.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

func parseKind(k string) (ktrace.Kind, error) {
	switch strings.ToUpper(k) {
	case "":
		return ktrace.KindUnspecified, nil
	case "CLIENT":
		return ktrace.KindClient, nil
	case "SERVER":
		return ktrace.KindServer, nil
	case "PRODUCER":
		return ktrace.KindProducer, nil
	case "CONSUMER":
		return ktrace.KindConsumer, nil
	}
	return ktrace.KindUnspecified, fmt.Errorf("kind %q: want CLIENT, SERVER, PRODUCER or CONSUMER", clip(k))
}

// maxMicros is the last microsecond whose nanoseconds fit in an int64.
const maxMicros = math.MaxInt64 / int64(time.Microsecond/time.Nanosecond)

// duration converts microseconds. One longer than time.Duration holds (292
// years, from a broken clock) is zero, as in OTLP, rather than the negative
// or wrapped value the multiplication would give.
func duration(us int64) time.Duration {
	if us > maxMicros {
		return 0
	}
	return time.Duration(us) * time.Microsecond
}

func micros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}
