package zipkin

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kplane/kplane/ktrace"
)

func decodeFile(t *testing.T, name string) []ktrace.Span {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	spans, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	return spans
}

func byName(t *testing.T, spans []ktrace.Span, name string, kind ktrace.Kind) ktrace.Span {
	t.Helper()
	for _, s := range spans {
		if s.Name == name && s.Kind == kind {
			return s
		}
	}
	t.Fatalf("no %s span %q in %+v", kind, name, spans)
	return ktrace.Span{}
}

func TestSharedSpansKeepTheTree(t *testing.T) {
	spans := decodeFile(t, "shared.json")
	if len(spans) != 3 {
		t.Fatalf("got %d spans, want 3", len(spans))
	}
	client := byName(t, spans, "get /stock", ktrace.KindClient)
	server := byName(t, spans, "get /stock", ktrace.KindServer)
	child := byName(t, spans, "select stock", ktrace.KindUnspecified)

	if got := client.TraceID.String(); got != "0000000000000000463ac35c9f6413ad" {
		t.Errorf("64-bit trace ID padded to %s", got)
	}
	if client.SpanID.String() != "00000000000000a1" || client.ParentSpanID.String() != "0000000000000001" {
		t.Errorf("client %s parent %s", client.SpanID, client.ParentSpanID)
	}
	if server.SpanID == client.SpanID || server.SpanID.IsZero() {
		t.Fatalf("server half kept the shared ID %s", server.SpanID)
	}
	if server.ParentSpanID != client.SpanID {
		t.Errorf("server parent %s, want the client half %s", server.ParentSpanID, client.SpanID)
	}
	if child.ParentSpanID != server.SpanID {
		t.Errorf("server-side child parent %s, want the server half %s", child.ParentSpanID, server.SpanID)
	}
	if server.Service != "inventory" || client.Service != "checkpoint" {
		t.Errorf("services %q %q", client.Service, server.Service)
	}
	if !client.Start.Equal(time.UnixMicro(1700000000000000)) || client.Duration != 5*time.Millisecond || server.Duration != 3*time.Millisecond {
		t.Errorf("client %v+%v server +%v", client.Start, client.Duration, server.Duration)
	}
	if client.Status != ktrace.StatusError || client.StatusMessage != "stock service failed" || server.Status != ktrace.StatusUnset {
		t.Errorf("status client %q %q server %q", client.Status, client.StatusMessage, server.Status)
	}
	if client.Tags["peer.service"] != "inventory" || client.Tags["peer.port"] != "8081" || client.Tags["http.path"] != "/stock" {
		t.Errorf("client tags %v", client.Tags)
	}
	if server.Process["ipv4"] != "127.0.0.2" || server.Process["port"] != "8081" {
		t.Errorf("server process %v", server.Process)
	}
	if len(child.Annotations) != 1 || child.Annotations[0].Value != "query sent" {
		t.Errorf("child annotations %+v", child.Annotations)
	}

	// A retry of the server's own batch, without the client half, gives
	// the server half the same ID, so the store deduplicates it.
	data, _ := os.ReadFile("testdata/shared.json")
	alone := strings.Replace(string(data), `"kind": "CLIENT"`, `"kind": "PRODUCER"`, 1)
	again, err := Decode([]byte(alone))
	if err != nil {
		t.Fatal(err)
	}
	if s := byName(t, again, "get /stock", ktrace.KindServer); s.SpanID != server.SpanID || s.ParentSpanID != client.SpanID {
		t.Errorf("server half decoded again as %s parent %s, want %s parent %s", s.SpanID, s.ParentSpanID, server.SpanID, client.SpanID)
	}
}

func TestServerSpanWithClientIDIsSplitWithoutSharedFlag(t *testing.T) {
	data, _ := os.ReadFile("testdata/shared.json")
	noFlag := strings.Replace(string(data), `"shared": true,`, ``, 1)
	spans, err := Decode([]byte(noFlag))
	if err != nil {
		t.Fatal(err)
	}
	client := byName(t, spans, "get /stock", ktrace.KindClient)
	server := byName(t, spans, "get /stock", ktrace.KindServer)
	if server.SpanID == client.SpanID || server.ParentSpanID != client.SpanID {
		t.Errorf("server %s parent %s; client %s", server.SpanID, server.ParentSpanID, client.SpanID)
	}
}

func TestDapperAnnotations(t *testing.T) {
	spans := decodeFile(t, "v1.json")
	if len(spans) != 4 {
		t.Fatalf("got %d spans, want 4 (the v1 span splits in two)", len(spans))
	}
	us := func(n int64) time.Time { return time.UnixMicro(1700000000000000 + n) }

	v1c := byName(t, spans, "post /scan", ktrace.KindClient)
	v1s := byName(t, spans, "post /scan", ktrace.KindServer)
	if v1c.Service != "gate" || !v1c.Start.Equal(us(0)) || v1c.Duration != 3*time.Millisecond {
		t.Errorf("v1 client half: %s %v+%v", v1c.Service, v1c.Start, v1c.Duration)
	}
	if v1s.Service != "checkpoint" || !v1s.Start.Equal(us(400)) || v1s.Duration != 2*time.Millisecond {
		t.Errorf("v1 server half: %s %v+%v", v1s.Service, v1s.Start, v1s.Duration)
	}
	if v1s.ParentSpanID != v1c.SpanID || v1s.SpanID == v1c.SpanID {
		t.Errorf("v1 server half %s parent %s, client %s", v1s.SpanID, v1s.ParentSpanID, v1c.SpanID)
	}
	if len(v1c.Annotations) != 2 || v1c.Annotations[0].Value != "cs" || v1c.Annotations[1].Value != "cr" {
		t.Errorf("v1 client annotations %+v", v1c.Annotations)
	}
	if len(v1s.Annotations) != 2 || v1s.Annotations[0].Value != "sr" || v1s.Annotations[1].Value != "ss" {
		t.Errorf("v1 server annotations %+v", v1s.Annotations)
	}
	if v1c.Tags["http.url"] != "/scan" || v1c.Tags["attempt"] != "2" || v1s.Tags["http.url"] != "/scan" {
		t.Errorf("binary annotations: %v / %v", v1c.Tags, v1s.Tags)
	}

	c := byName(t, spans, "dapper client", ktrace.KindClient)
	if !c.Start.Equal(us(500)) || c.Duration != 400*time.Microsecond {
		t.Errorf("client from cs/cr: %v+%v, want cs and cr − cs", c.Start, c.Duration)
	}
	s := byName(t, spans, "dapper server", ktrace.KindServer)
	if !s.Start.Equal(us(600)) || s.Duration != 200*time.Microsecond {
		t.Errorf("server from sr/ss (kind inferred): %v+%v, want sr and ss − sr", s.Start, s.Duration)
	}
}

func TestDecodeMalformed(t *testing.T) {
	const ok = `"id":"0000000000000001","timestamp":1700000000000000`
	for _, tc := range []struct {
		name, body, want string
	}{
		{"truncated", `[{`, "JSON ends early"},
		{"not json", `[}`, "syntax error at byte 2"},
		{"empty", ``, "JSON ends early"},
		{"not an array", `{"traceId":"1"}`, "want a JSON array of spans"},
		{"trailing data", `[] []`, "data after the span list"},
		{"missing trace id", `[{` + ok + `}]`, "span 0 (\"\"): traceId is missing"},
		{"trace id not hex", `[{"traceId":"xyz",` + ok + `}]`, `traceId "xyz": not hex`},
		{"trace id too long", `[{"traceId":"` + strings.Repeat("a", 33) + `",` + ok + `}]`, "more than 32 hex digits"},
		{"zero trace id", `[{"traceId":"0000000000000000",` + ok + `}]`, "traceId is all zeros"},
		{"zero span id", `[{"traceId":"1","id":"0","timestamp":1}]`, "id is missing or all zeros"},
		{"bad parent", `[{"traceId":"1",` + ok + `,"parentId":"nope"}]`, `parentId "nope": not hex`},
		{"bad kind", `[{"traceId":"1",` + ok + `,"kind":"SERVANT"}]`, `kind "SERVANT"`},
		{"tag not a string", `[{"traceId":"1",` + ok + `,"tags":{"n":1}}]`, `field "tags" at byte 82: got number, want a string`},
		{"no timestamp", `[{"traceId":"1","id":"2","name":"late"}]`, `span 0 ("late"): no start time`},
		{"negative duration", `[{"traceId":"1",` + ok + `,"duration":-5}]`, "negative"},
		{"timestamp past 2262", `[{"traceId":"1","id":"2","timestamp":9223372036854776}]`, "timestamp 9223372036854776 is after the year 2262"},
		{"annotation without timestamp", `[{"traceId":"1",` + ok + `,"annotations":[{"value":"cr"}]}]`, `annotation "cr" has no timestamp`},
		{"annotation past 2262", `[{"traceId":"1",` + ok + `,"annotations":[{"timestamp":9223372036854776,"value":"cr"}]}]`, `annotation "cr": timestamp 9223372036854776 is not between the years 1678 and 2262`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(tc.body))
			if !errors.Is(err, ktrace.ErrInvalid) {
				t.Fatalf("Decode = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

// TestDurationOverflow: durations longer than time.Duration holds came out
// negative or wrapped.
func TestDurationOverflow(t *testing.T) {
	for _, body := range []string{
		`[{"traceId":"1","id":"2","timestamp":1,"duration":9223372036854776}]`,
		`[{"traceId":"1","id":"2","timestamp":1,"duration":18446744073709552}]`,
		`[{"traceId":"1","id":"2","annotations":[{"timestamp":1,"value":"cs"},{"timestamp":9223372036854775,"value":"cr"}]}]`,
		`[{"traceId":"1","id":"2","timestamp":9223372036854000,"duration":1000}]`, // ends past 2262
	} {
		spans, err := Decode([]byte(body))
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if d := spans[0].Duration; d < 0 || d > 0 && d < time.Hour || spans[0].End().UnixMicro() > maxMicros {
			t.Errorf("%s: duration %v", body, d)
		}
	}
}

func TestShortIDsArePadded(t *testing.T) {
	spans, err := Decode([]byte(`[{"traceId":"abc","id":"1","parentId":"f","timestamp":1700000000000000,"localEndpoint":{}}]`))
	if err != nil {
		t.Fatal(err)
	}
	s := spans[0]
	if s.TraceID.String() != "00000000000000000000000000000abc" || s.SpanID.String() != "0000000000000001" || s.ParentSpanID.String() != "000000000000000f" {
		t.Errorf("ids %s %s %s", s.TraceID, s.SpanID, s.ParentSpanID)
	}
	if s.Service != "unknown" {
		t.Errorf("service %q, want Zipkin's \"unknown\"", s.Service)
	}
}

// A small hostile request must not make kplane allocate gigabytes: 20 MiB
// of [{},{},...] once decoded to 8.5 GB. It is refused before decoding.
func TestDecodeRefusesCostlyRequestsCheaply(t *testing.T) {
	for name, tc := range map[string]struct {
		body []byte
		want error
	}{
		"empty spans":      {[]byte("[" + strings.Repeat("{},", 7_000_000) + "{}]"), ktrace.ErrTooLarge},
		"deeply nested":    {[]byte(`[{"tags":` + strings.Repeat("[", 50) + strings.Repeat("]", 50) + `}]`), ktrace.ErrInvalid},
		"many annotations": {[]byte(`[{"annotations":[` + strings.Repeat(`{"timestamp":1,"value":"x"},`, 700_000) + `{}]}]`), ktrace.ErrTooLarge},
	} {
		t.Run(name, func(t *testing.T) {
			var err error
			allocs := testing.AllocsPerRun(1, func() { _, err = Decode(tc.body) })
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if allocs > 100 {
				t.Fatalf("%v allocations before refusing, want a handful", allocs)
			}
		})
	}
}
