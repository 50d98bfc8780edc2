package sdk

import (
	"fmt"
	"sync"
	"time"
)

// Kind is the role of a span in a call, as OpenTelemetry defines it.
type Kind int8

const (
	KindInternal Kind = iota // the zero value: work inside one process
	KindServer
	KindClient
	KindProducer
	KindConsumer
)

// StatusCode is a span's outcome.
type StatusCode int8

const (
	StatusUnset StatusCode = iota
	StatusOK
	StatusError
)

type attribute struct {
	key   string
	value any
}

type event struct {
	name  string
	time  time.Time
	attrs []attribute
}

// Span is one unit of work. A span of an unsampled trace records nothing
// (its methods return at once) but still has IDs to propagate and log.
// Every method is safe for concurrent use and on a nil *Span; after End,
// changes are ignored.
type Span struct {
	tracer       *Tracer
	sc           SpanContext
	parent       SpanID
	parentRemote bool
	recording    bool

	mu        sync.Mutex
	ended     bool
	name      string
	kind      Kind
	start     time.Time
	end       time.Time
	attrs     []attribute
	events    []event
	status    StatusCode
	statusMsg string
}

// SpanContext returns the span's IDs and sampling decision, to log or to
// propagate.
func (s *Span) SpanContext() SpanContext {
	if s == nil {
		return SpanContext{}
	}
	return s.sc
}

// TraceID is the ID of the span's trace; the zero ID on a nil span.
func (s *Span) TraceID() TraceID { return s.SpanContext().TraceID }

// IsRecording reports whether the span will be exported. Callers can skip
// building expensive tags when it is false.
func (s *Span) IsRecording() bool { return s != nil && s.recording }

// SetName renames the span, for names only known at the end (a route
// pattern is matched after the middleware starts the span).
func (s *Span) SetName(name string) {
	if !s.IsRecording() {
		return
	}
	s.mu.Lock()
	if !s.ended {
		s.name = name
	}
	s.mu.Unlock()
}

// SetTag sets an attribute. Strings, bools, integers and floats keep their
// type in OTLP; anything else is formatted with fmt.Sprint. Setting a key
// again replaces its value.
func (s *Span) SetTag(key string, value any) {
	if !s.IsRecording() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return
	}
	for i := range s.attrs {
		if s.attrs[i].key == key {
			s.attrs[i].value = value
			return
		}
	}
	s.attrs = append(s.attrs, attribute{key, value})
}

// AddEvent records a timestamped event with attributes given as
// alternating keys and values, like log/slog: AddEvent("retry", "attempt", 2).
func (s *Span) AddEvent(name string, keyvals ...any) {
	if !s.IsRecording() {
		return
	}
	ev := event{name: name, time: time.Now(), attrs: pairs(keyvals)}
	s.mu.Lock()
	if !s.ended {
		s.events = append(s.events, ev)
	}
	s.mu.Unlock()
}

// SetError marks the span failed with err's message and records it as an
// "exception" event, as OpenTelemetry does. A nil err changes nothing.
func (s *Span) SetError(err error) {
	if err == nil || !s.IsRecording() {
		return
	}
	msg := err.Error()
	s.AddEvent("exception", "exception.type", fmt.Sprintf("%T", err), "exception.message", msg)
	s.SetStatus(StatusError, msg)
}

// SetStatus sets the span's outcome; msg matters only with StatusError.
func (s *Span) SetStatus(code StatusCode, msg string) {
	if !s.IsRecording() {
		return
	}
	s.mu.Lock()
	if !s.ended {
		s.status, s.statusMsg = code, msg
		if code != StatusError {
			s.statusMsg = ""
		}
	}
	s.mu.Unlock()
}

// End finishes the span and hands it to the reporter without waiting.
// Only the first call counts.
func (s *Span) End() {
	if !s.IsRecording() {
		return
	}
	s.mu.Lock()
	if s.ended {
		s.mu.Unlock()
		return
	}
	s.ended, s.end = true, time.Now()
	s.mu.Unlock()
	s.tracer.rep.enqueue(s)
}

// pairs turns alternating keys and values into attributes; a key that is
// not a string, or a missing value, is kept under "!BADKEY" as slog does.
func pairs(kv []any) []attribute {
	if len(kv) == 0 {
		return nil
	}
	out := make([]attribute, 0, (len(kv)+1)/2)
	for len(kv) > 0 {
		k, ok := kv[0].(string)
		if !ok || len(kv) == 1 {
			out = append(out, attribute{"!BADKEY", kv[0]})
			kv = kv[1:]
			continue
		}
		out = append(out, attribute{k, kv[1]})
		kv = kv[2:]
	}
	return out
}
