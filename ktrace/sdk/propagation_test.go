package sdk

import (
	"net/http"
	"testing"
)

const (
	tid128 = "4bf92f3577b34da6a3ce929d0e0e4736"
	tid64  = "a3ce929d0e0e4736"
	sid    = "00f067aa0ba902b7"
)

func TestExtract(t *testing.T) {
	type want struct {
		ok       bool
		trace    string // "" when the context carries only a decision
		span     string
		sampled  bool
		deferred bool
		state    string
	}
	tests := []struct {
		name   string
		header http.Header
		want   want
	}{
		{"w3c sampled", http.Header{"Traceparent": {"00-" + tid128 + "-" + sid + "-01"}},
			want{ok: true, trace: tid128, span: sid, sampled: true}},
		{"w3c not sampled", http.Header{"Traceparent": {"00-" + tid128 + "-" + sid + "-00"}},
			want{ok: true, trace: tid128, span: sid}},
		{"w3c other flags keep sampled bit", http.Header{"Traceparent": {"00-" + tid128 + "-" + sid + "-03"}},
			want{ok: true, trace: tid128, span: sid, sampled: true}},
		{"w3c tracestate passed through", http.Header{"Traceparent": {"00-" + tid128 + "-" + sid + "-01"}, "Tracestate": {"rojo=00f067aa0ba902b7", "congo=t61rcWkgMzE"}},
			want{ok: true, trace: tid128, span: sid, sampled: true, state: "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"}},
		{"w3c future version with extra field", http.Header{"Traceparent": {"01-" + tid128 + "-" + sid + "-01-what-the-future-holds"}},
			want{ok: true, trace: tid128, span: sid, sampled: true}},
		{"w3c wins over b3", http.Header{"Traceparent": {"00-" + tid128 + "-" + sid + "-00"}, "B3": {tid64 + "-" + sid + "-1"}},
			want{ok: true, trace: tid128, span: sid}},
		{"b3 single 128-bit", http.Header{"B3": {tid128 + "-" + sid + "-1"}},
			want{ok: true, trace: tid128, span: sid, sampled: true}},
		{"b3 single 64-bit is padded", http.Header{"B3": {tid64 + "-" + sid + "-0"}},
			want{ok: true, trace: "0000000000000000" + tid64, span: sid}},
		{"b3 single with parent", http.Header{"B3": {tid128 + "-" + sid + "-1-05e3ac9a4f6e3b90"}},
			want{ok: true, trace: tid128, span: sid, sampled: true}},
		{"b3 single debug", http.Header{"B3": {tid128 + "-" + sid + "-d"}},
			want{ok: true, trace: tid128, span: sid, sampled: true}},
		{"b3 single deferred", http.Header{"B3": {tid128 + "-" + sid}},
			want{ok: true, trace: tid128, span: sid, deferred: true}},
		{"b3 single deny only", http.Header{"B3": {"0"}}, want{ok: true}},
		{"b3 single accept only", http.Header{"B3": {"1"}}, want{ok: true, sampled: true}},
		{"b3 single wins over multi", http.Header{"B3": {tid128 + "-" + sid + "-1"}, "X-B3-Traceid": {tid64}, "X-B3-Spanid": {sid}},
			want{ok: true, trace: tid128, span: sid, sampled: true}},
		{"b3 multi", http.Header{"X-B3-Traceid": {tid128}, "X-B3-Spanid": {sid}, "X-B3-Sampled": {"1"}},
			want{ok: true, trace: tid128, span: sid, sampled: true}},
		{"b3 multi 64-bit upper case", http.Header{"X-B3-Traceid": {"A3CE929D0E0E4736"}, "X-B3-Spanid": {sid}, "X-B3-Sampled": {"0"}},
			want{ok: true, trace: "0000000000000000" + tid64, span: sid}},
		{"b3 multi legacy true", http.Header{"X-B3-Traceid": {tid128}, "X-B3-Spanid": {sid}, "X-B3-Sampled": {"true"}},
			want{ok: true, trace: tid128, span: sid, sampled: true}},
		{"b3 multi debug flag", http.Header{"X-B3-Traceid": {tid128}, "X-B3-Spanid": {sid}, "X-B3-Flags": {"1"}},
			want{ok: true, trace: tid128, span: sid, sampled: true}},
		{"b3 multi deferred", http.Header{"X-B3-Traceid": {tid128}, "X-B3-Spanid": {sid}},
			want{ok: true, trace: tid128, span: sid, deferred: true}},
		{"b3 multi sampled only", http.Header{"X-B3-Sampled": {"0"}}, want{ok: true}},
		{"malformed traceparent falls back to b3", http.Header{"Traceparent": {"00-xyz-" + sid + "-01"}, "B3": {tid128 + "-" + sid + "-1"}},
			want{ok: true, trace: tid128, span: sid, sampled: true}},

		// Malformed: ignored as if absent, never a panic.
		{"nothing", http.Header{}, want{}},
		{"w3c upper case hex", http.Header{"Traceparent": {"00-" + "4BF92F3577B34DA6A3CE929D0E0E4736" + "-" + sid + "-01"}}, want{}},
		{"w3c zero trace id", http.Header{"Traceparent": {"00-00000000000000000000000000000000-" + sid + "-01"}}, want{}},
		{"w3c zero span id", http.Header{"Traceparent": {"00-" + tid128 + "-0000000000000000-01"}}, want{}},
		{"w3c version ff", http.Header{"Traceparent": {"ff-" + tid128 + "-" + sid + "-01"}}, want{}},
		{"w3c version 00 with extra field", http.Header{"Traceparent": {"00-" + tid128 + "-" + sid + "-01-x"}}, want{}},
		{"w3c short", http.Header{"Traceparent": {"00-" + tid128 + "-" + sid}}, want{}},
		{"w3c bad flags", http.Header{"Traceparent": {"00-" + tid128 + "-" + sid + "-zz"}}, want{}},
		{"w3c bad separators", http.Header{"Traceparent": {"00_" + tid128 + "_" + sid + "_01"}}, want{}},
		{"w3c future version glued field", http.Header{"Traceparent": {"01-" + tid128 + "-" + sid + "-01x"}}, want{}},
		{"b3 single bad trace id length", http.Header{"B3": {"abc-" + sid + "-1"}}, want{}},
		{"b3 single bad sampling", http.Header{"B3": {tid128 + "-" + sid + "-x"}}, want{}},
		{"b3 single bad parent", http.Header{"B3": {tid128 + "-" + sid + "-1-xyz"}}, want{}},
		{"b3 single too many fields", http.Header{"B3": {tid128 + "-" + sid + "-1-" + sid + "-1"}}, want{}},
		{"b3 single lone garbage", http.Header{"B3": {"maybe"}}, want{}},
		{"b3 multi zero ids", http.Header{"X-B3-Traceid": {"0000000000000000"}, "X-B3-Spanid": {"0000000000000000"}, "X-B3-Sampled": {"1"}}, want{}},
		{"b3 multi non-hex span", http.Header{"X-B3-Traceid": {tid128}, "X-B3-Spanid": {"zzzzzzzzzzzzzzzz"}}, want{}},
		{"b3 multi span only", http.Header{"X-B3-Spanid": {sid}}, want{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc, ok := Extract(tt.header)
			got := want{ok: ok, sampled: sc.Sampled, deferred: sc.Deferred, state: sc.TraceState}
			if !sc.TraceID.IsZero() {
				got.trace = sc.TraceID.String()
			}
			if !sc.SpanID.IsZero() {
				got.span = sc.SpanID.String()
			}
			if got != tt.want {
				t.Errorf("Extract = %+v, want %+v", got, tt.want)
			}
			if ok && !sc.Remote {
				t.Error("extracted context is not marked remote")
			}
		})
	}
}

func TestInject(t *testing.T) {
	var sc SpanContext
	copy(sc.TraceID[:], mustHex(t, tid128))
	copy(sc.SpanID[:], mustHex(t, sid))
	sc.TraceState = "rojo=1"
	tests := []struct {
		name    string
		formats Format
		sampled bool
		want    http.Header
	}{
		{"default sampled", 0, true, http.Header{
			"Traceparent": {"00-" + tid128 + "-" + sid + "-01"}, "Tracestate": {"rojo=1"}, "B3": {tid128 + "-" + sid + "-1"}}},
		{"default unsampled", 0, false, http.Header{
			"Traceparent": {"00-" + tid128 + "-" + sid + "-00"}, "Tracestate": {"rojo=1"}, "B3": {tid128 + "-" + sid + "-0"}}},
		{"b3 multi only", FormatB3Multi, true, http.Header{
			"X-B3-Traceid": {tid128}, "X-B3-Spanid": {sid}, "X-B3-Sampled": {"1"}}},
		{"w3c only", FormatW3C, false, http.Header{
			"Traceparent": {"00-" + tid128 + "-" + sid + "-00"}, "Tracestate": {"rojo=1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := sc
			sc.Sampled = tt.sampled
			h := http.Header{"X-B3-Parentspanid": {"stale"}}
			if tt.formats&FormatB3Multi == 0 {
				h = http.Header{}
			}
			Inject(sc, h, tt.formats)
			if len(h) != len(tt.want) {
				t.Errorf("headers = %v, want %v", h, tt.want)
			}
			for k, v := range tt.want {
				if h.Get(k) != v[0] {
					t.Errorf("%s = %q, want %q", k, h.Get(k), v[0])
				}
			}
			// What goes out comes back in.
			back, ok := Extract(h)
			if !ok || back.TraceID != sc.TraceID || back.SpanID != sc.SpanID || back.Sampled != tt.sampled {
				t.Errorf("round trip = %+v, %v; want %+v", back, ok, sc)
			}
		})
	}
	h := http.Header{}
	Inject(SpanContext{}, h, 0)
	if len(h) != 0 {
		t.Errorf("invalid context injected %v", h)
	}
}

func FuzzExtract(f *testing.F) {
	f.Add("00-"+tid128+"-"+sid+"-01", tid128+"-"+sid+"-1", tid64, sid)
	f.Add("", "0", "", "")
	f.Fuzz(func(t *testing.T, tp, b3, b3tid, b3sid string) {
		h := http.Header{"Traceparent": {tp}, "B3": {b3}, "X-B3-Traceid": {b3tid}, "X-B3-Spanid": {b3sid}}
		sc, ok := Extract(h)
		if ok && !sc.TraceID.IsZero() && !sc.IsValid() {
			t.Errorf("Extract returned half a context: %+v", sc)
		}
	})
}
