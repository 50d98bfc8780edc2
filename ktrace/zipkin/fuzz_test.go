package zipkin

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/kplane/kplane/ktrace"
)

// FuzzDecode checks that no input makes Decode panic and that whatever it
// accepts is storable, with unique (trace ID, span ID) pairs for the
// halves it split. Seeds are in testdata/fuzz/FuzzDecode; run with
//
//	go test ./ktrace/zipkin -run '^$' -fuzz FuzzDecode -fuzztime 30s
func FuzzDecode(f *testing.F) {
	for _, name := range []string{"shared.json", "v1.json"} {
		data, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		spans, err := Decode(data)
		if err != nil {
			// web maps these two to 400 and 413; anything else would be a 500.
			if !errors.Is(err, ktrace.ErrInvalid) && !errors.Is(err, ktrace.ErrTooLarge) {
				t.Fatalf("error is neither ktrace.ErrInvalid nor ktrace.ErrTooLarge: %v", err)
			}
			return
		}
		if len(spans) > 2*MaxSpans {
			t.Fatalf("decoded %d spans from at most %d", len(spans), MaxSpans)
		}
		for _, s := range spans {
			if s.TraceID.IsZero() || s.SpanID.IsZero() || s.Start.IsZero() || s.Duration < 0 || s.Service == "" {
				t.Fatalf("decoded an unstorable span: %+v", s)
			}
			// Stores keep nanoseconds in an int64.
			for _, at := range append([]time.Time{s.Start, s.End()}, annotationTimes(s)...) {
				if !time.Unix(0, at.UnixNano()).Equal(at) {
					t.Fatalf("span %s: time %v does not fit in int64 nanoseconds", s.SpanID, at)
				}
			}
			if s.SpanID == s.ParentSpanID {
				t.Fatalf("span %s is its own parent", s.SpanID)
			}
		}
	})
}

func annotationTimes(s ktrace.Span) []time.Time {
	var ts []time.Time
	for _, a := range s.Annotations {
		ts = append(ts, a.Time)
	}
	return ts
}
