package otlp

import (
	"errors"
	"fmt"
	"github.com/kplane/kplane/internal/jsonlimit"
	"strconv"

	"github.com/kplane/kplane/ktrace"
)

// Limits on one request. pdata allocates a struct for every message on the
// wire and an empty message takes two bytes (three in JSON), so a 20 MiB
// body of empty spans, 20 KiB gzipped, would decode to over 4 GB; and it
// decodes nested attribute values by recursion, so a value nested a million
// levels deep would overflow the goroutine stack, a fatal error that no
// recover catches. Decode checks the request against these limits before
// pdata allocates anything.
const (
	// MaxSpans is the most spans one request may hold. OpenTelemetry SDKs
	// send at most 512 per batch by default, the Collector's batch
	// processor 8192.
	MaxSpans = 100_000
	// MaxElements bounds everything pdata allocates one by one: resources,
	// scopes, spans, their attributes and attribute values (two per
	// attribute), events, links and statuses. A span from an instrumented
	// HTTP server is about 22 of them in 430 bytes, so a 20 MiB request of
	// such spans is 1.1 million and decodes in about 140 MB; the costliest
	// request within the limits allocates about 600 MB (370 MB at peak).
	MaxElements = 2_000_000
	// MaxValueDepth bounds how deeply attribute values nest: an array or a
	// map inside a value is one level.
	MaxValueDepth = 32
)

// maxJSONDepth is how deeply the JSON encoding of a request nests at
// MaxValueDepth: 12 levels down to a span event's attribute value
// ({"resourceSpans":[{"scopeSpans":[{"spans":[{"events":[{"attributes":
// [{"value":{), then 4 more per level ("kvlistValue":{"values":[{"value":{).
const maxJSONDepth = 12 + 4*MaxValueDepth

// check bounds the cost of decoding data; it fails with ErrTooLarge or
// ktrace.ErrInvalid.
func check(data []byte, enc Encoding) error {
	var err error
	if enc == JSON {
		err = checkJSON(data)
	} else {
		err = checkProto(data)
	}
	var le *limitError
	if errors.As(err, &le) {
		return fmt.Errorf("%s request holds more than %d %s; send smaller batches: %w", enc, le.limit, le.what, ErrTooLarge)
	}
	if err != nil {
		return fmt.Errorf("%w: %s request: %v", ktrace.ErrInvalid, enc, err)
	}
	return nil
}

type limitError struct {
	limit int
	what  string
}

func (e *limitError) Error() string { return fmt.Sprintf("more than %d %s", e.limit, e.what) }

var (
	errTooManySpans    = &limitError{MaxSpans, "spans"}
	errTooManyElements = &limitError{MaxElements, "elements (spans, attributes, events, links, resources)"}
)

// counter counts what a request would make pdata allocate.
type counter struct {
	spans, elements int
}

func (c *counter) element() error {
	c.elements++
	if c.elements > MaxElements {
		return errTooManyElements
	}
	return nil
}

// The protobuf check walks the wire format of an ExportTraceServiceRequest
// without allocating, counting every message pdata would allocate and
// every value it would append to a slice. It follows pdata's decoder
// (go.opentelemetry.io/collector/pdata/internal/generated_proto_*.go):
// what pdata accepts it accepts, and fields it does not know it skips as
// pdata does.

// message is an OTLP message type that holds other messages.
type message uint8

const (
	msgRequest message = iota
	msgResourceSpans
	msgResource
	msgEntityRef
	msgScopeSpans
	msgScope
	msgSpan
	msgEvent
	msgLink
	msgStatus
	msgKeyValue
	msgAnyValue
	msgArrayValue
	msgKeyValueList
)

// field is what pdata decodes from one field of a message.
type field struct {
	name string // the proto field name, for error messages
	// child is the message type the field holds; strings marks a
	// repeated string instead.
	child   message
	strings bool
	// slot numbers a message's repeated fields (0 for singular ones), for
	// the index in error messages.
	slot     int
	repeated bool
}

// fields[m][num] describes field num of message type m, for the fields
// below 16 that hold messages; the others have no name.
var fields = [...][16]field{
	msgRequest: {
		1: {name: "resource_spans", child: msgResourceSpans, repeated: true},
	},
	msgResourceSpans: {
		1: {name: "resource", child: msgResource},
		2: {name: "scope_spans", child: msgScopeSpans, repeated: true},
	},
	msgResource: {
		1: {name: "attributes", child: msgKeyValue, repeated: true},
		3: {name: "entity_refs", child: msgEntityRef, slot: 1, repeated: true},
	},
	msgEntityRef: {
		3: {name: "id_keys", strings: true, repeated: true},
		4: {name: "description_keys", strings: true, slot: 1, repeated: true},
	},
	msgScopeSpans: {
		1: {name: "scope", child: msgScope},
		2: {name: "spans", child: msgSpan, repeated: true},
	},
	msgScope: {
		3: {name: "attributes", child: msgKeyValue, repeated: true},
	},
	msgSpan: {
		9:  {name: "attributes", child: msgKeyValue, repeated: true},
		11: {name: "events", child: msgEvent, slot: 1, repeated: true},
		13: {name: "links", child: msgLink, slot: 2, repeated: true},
		15: {name: "status", child: msgStatus},
	},
	msgEvent: {
		3: {name: "attributes", child: msgKeyValue, repeated: true},
	},
	msgLink: {
		4: {name: "attributes", child: msgKeyValue, repeated: true},
	},
	msgStatus: {},
	msgKeyValue: {
		2: {name: "value", child: msgAnyValue},
	},
	msgAnyValue: {
		5: {name: "array_value", child: msgArrayValue},
		6: {name: "kvlist_value", child: msgKeyValueList},
	},
	msgArrayValue: {
		1: {name: "values", child: msgAnyValue, repeated: true},
	},
	msgKeyValueList: {
		1: {name: "values", child: msgKeyValue, repeated: true},
	},
}

// instrumentationLibrarySpans is ResourceSpans field 1000, from OTLP
// before 0.15; pdata still decodes it.
var instrumentationLibrarySpans = field{name: "instrumentation_library_spans", child: msgScopeSpans, slot: 1, repeated: true}

// fieldOf describes field num of a message of type m, or is nil for a
// field that holds no message (pdata decodes it in place or skips it).
func fieldOf(m message, num int32) *field {
	if num < 16 {
		if f := &fields[m][num]; f.name != "" {
			return f
		}
		return nil
	}
	if m == msgResourceSpans && num == 1000 {
		return &instrumentationLibrarySpans
	}
	return nil
}

// wireError is a malformed request; path says where.
type wireError struct {
	path string
	msg  string
	// deep marks a value nested too deeply: its path ends at the
	// outermost value rather than running 32 levels into it.
	deep bool
}

func (e *wireError) Error() string {
	if e.path == "" {
		return e.msg
	}
	return e.path + ": " + e.msg
}

// in prefixes the path of err with the field it was found in.
func in(err error, f *field, index int) error {
	we, ok := err.(*wireError)
	if !ok {
		return err
	}
	step := f.name
	if f.repeated {
		step += "[" + strconv.Itoa(index) + "]"
	}
	if we.deep && f.name == "value" {
		we.path = ""
	}
	if we.path == "" {
		we.path = step
	} else {
		we.path = step + "." + we.path
	}
	return we
}

func checkProto(data []byte) error {
	var c counter
	return c.message(data, msgRequest, 0)
}

// message walks one message of type m; depth is how deeply attribute values
// nest around it.
func (c *counter) message(buf []byte, m message, depth int) error {
	var seen [3]int // per repeated field (field.slot)
	for pos := 0; pos < len(buf); {
		var num int32
		var wt int
		var err error
		if b := buf[pos]; b < 0x80 && b >= 8 { // a one-byte tag (most are)
			num, wt = int32(b>>3), int(b&7)
			pos++
		} else if num, wt, pos, err = consumeTag(buf, pos); err != nil {
			return err
		}
		f := fieldOf(m, num)
		if f == nil {
			if pos, err = skipField(buf, pos, wt); err != nil {
				return &wireError{msg: fmt.Sprintf("field %d: %v", num, err)}
			}
			continue
		}
		index := seen[f.slot]
		if f.repeated {
			seen[f.slot]++
		}
		if wt != wireBytes {
			return in(&wireError{msg: fmt.Sprintf("wire type %d, want 2 (length-delimited)", wt)}, f, index)
		}
		var body int
		if body, pos, err = consumeLen(buf, pos); err != nil {
			return in(err, f, index)
		}
		if err := c.element(); err != nil {
			return err
		}
		if f.strings {
			continue
		}
		d := depth
		switch f.child {
		case msgSpan:
			if c.spans++; c.spans > MaxSpans {
				return errTooManySpans
			}
		case msgArrayValue, msgKeyValueList:
			if d++; d > MaxValueDepth {
				return in(&wireError{msg: fmt.Sprintf("nests more than %d levels deep", MaxValueDepth), deep: true}, f, index)
			}
		}
		if err := c.message(buf[body:pos], f.child, d); err != nil {
			return in(err, f, index)
		}
	}
	return nil
}

// Protobuf wire types.
const (
	wireVarint     = 0
	wireFixed64    = 1
	wireBytes      = 2
	wireStartGroup = 3
	wireEndGroup   = 4
	wireFixed32    = 5
)

const msgEOF = "unexpected end of data"

// The consume functions accept and reject what pdata's
// (pdata/internal/proto/unmarshal.go) do. They return a new *wireError
// each time, for in to add the path to.

func consumeVarint(buf []byte, pos int) (uint64, int, error) {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		if shift >= 64 {
			return 0, 0, &wireError{msg: "varint overflows 64 bits"}
		}
		if pos >= len(buf) {
			return 0, 0, &wireError{msg: msgEOF}
		}
		b := buf[pos]
		pos++
		v |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return v, pos, nil
		}
	}
}

func consumeTag(buf []byte, pos int) (num int32, wt int, next int, err error) {
	tag, next, err := consumeVarint(buf, pos)
	if err != nil {
		return 0, 0, 0, err
	}
	num = int32(tag >> 3)
	if num <= 0 {
		return 0, 0, 0, &wireError{msg: fmt.Sprintf("invalid field number %d at byte %d", num, pos)}
	}
	return num, int(tag & 7), next, nil
}

// consumeLen reads the length of a length-delimited value, returning where
// the value starts and ends.
func consumeLen(buf []byte, pos int) (start, end int, err error) {
	n, start, err := consumeVarint(buf, pos)
	if err != nil {
		return 0, 0, err
	}
	if int(n) < 0 {
		return 0, 0, &wireError{msg: "negative length"}
	}
	end = start + int(n)
	if end < 0 || end > len(buf) {
		return 0, 0, &wireError{msg: msgEOF}
	}
	return start, end, nil
}

func consumeFixed(buf []byte, pos, size int) (int, error) {
	if pos+size > len(buf) {
		return 0, &wireError{msg: msgEOF}
	}
	return pos + size, nil
}

// skipField skips the value of a field pdata does not decode, exactly as
// pdata's ConsumeUnknown does: a start-group tag is followed by more tags,
// but the first value that is not a group tag ends the skip, whatever the
// group depth; end-group tags are not matched to their start. Groups are
// counted in a loop, not by recursion.
func skipField(buf []byte, pos int, wt int) (int, error) {
	// The common cases first: a short string or bytes, a fixed64 time.
	switch {
	case wt == wireBytes && pos < len(buf) && buf[pos] < 0x80:
		if end := pos + 1 + int(buf[pos]); end <= len(buf) {
			return end, nil
		}
	case wt == wireFixed64 && pos+8 <= len(buf):
		return pos + 8, nil
	}
	depth := 0
	for pos < len(buf) {
		switch wt {
		case wireVarint:
			_, pos, err := consumeVarint(buf, pos)
			return pos, err
		case wireFixed64:
			return consumeFixed(buf, pos, 8)
		case wireBytes:
			_, end, err := consumeLen(buf, pos)
			return end, err
		case wireFixed32:
			return consumeFixed(buf, pos, 4)
		case wireStartGroup:
			depth++
		case wireEndGroup:
			if depth == 0 {
				return 0, &wireError{msg: "unexpected end of group"}
			}
			depth--
		default:
			return 0, &wireError{msg: fmt.Sprintf("invalid wire type %d", wt)}
		}
		if depth == 0 {
			return pos, nil
		}
		var err error
		if _, wt, pos, err = consumeTag(buf, pos); err != nil {
			return 0, err
		}
	}
	return 0, &wireError{msg: msgEOF}
}

// checkJSON bounds a JSON request the same way, by its syntax alone: every
// object, and every item of an array, is at most one element pdata
// allocates. Nesting is bounded by maxJSONDepth.
func checkJSON(data []byte) error {
	err := jsonlimit.Check(data, MaxElements, maxJSONDepth)
	var ee *jsonlimit.ElementsError
	if errors.As(err, &ee) {
		return errTooManyElements
	}
	var de *jsonlimit.DepthError
	if errors.As(err, &de) {
		return fmt.Errorf("nests more than %d levels deep (attribute values may nest %d levels)", maxJSONDepth, MaxValueDepth)
	}
	return err
}
