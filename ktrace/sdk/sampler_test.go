package sdk

import (
	"net/http"
	"testing"
	"time"
)

func TestRatioSamplerIsDeterministicOnTraceID(t *testing.T) {
	// Two services with their own samplers must agree on every trace.
	a, b := RatioSampler(0.25), RatioSampler(0.25)
	const n = 20000
	sampled := 0
	for range n {
		id := newTraceID()
		got := a.Sample(SamplingParams{TraceID: id})
		if got != b.Sample(SamplingParams{TraceID: id, Name: "other"}) {
			t.Fatalf("samplers disagree on %s", id)
		}
		if got != a.Sample(SamplingParams{TraceID: id}) {
			t.Fatalf("sampler changed its mind on %s", id)
		}
		if got {
			sampled++
		}
	}
	// 4 standard deviations of a binomial(20000, 0.25) is about 245.
	if sampled < n/4-250 || sampled > n/4+250 {
		t.Errorf("sampled %d of %d at ratio 0.25", sampled, n)
	}
	for _, tt := range []struct {
		ratio float64
		want  bool
	}{{0, false}, {-1, false}, {1, true}, {2, true}} {
		if got := RatioSampler(tt.ratio).Sample(SamplingParams{TraceID: newTraceID()}); got != tt.want {
			t.Errorf("ratio %v sampled %v", tt.ratio, got)
		}
	}
	// The low 8 bytes decide, so a 64-bit B3 ID padded with zeros is
	// sampled as often as a 128-bit one.
	var low TraceID
	copy(low[8:], mustHex(t, "0000000000000001"))
	if !RatioSampler(0.01).Sample(SamplingParams{TraceID: low}) {
		t.Error("smallest ID not sampled at 1%")
	}
}

func TestRateLimitSampler(t *testing.T) {
	s := RateLimitSampler(10)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	count := func(at time.Time, tries int) int {
		n := 0
		for range tries {
			if s.Sample(SamplingParams{TraceID: newTraceID(), Now: at}) {
				n++
			}
		}
		return n
	}
	if got := count(now, 100); got != 10 {
		t.Errorf("burst: %d of 100 sampled, want 10 (one second's worth)", got)
	}
	if got := count(now.Add(500*time.Millisecond), 100); got != 5 {
		t.Errorf("half a second later: %d sampled, want 5", got)
	}
	if got := count(now.Add(10*time.Second), 100); got != 10 {
		t.Errorf("after a long pause: %d sampled, want 10 (the burst does not accumulate)", got)
	}
	if RateLimitSampler(0).Sample(SamplingParams{TraceID: newTraceID(), Now: now}) {
		t.Error("rate 0 sampled")
	}
}

func TestParentBasedSampling(t *testing.T) {
	c := newCollector(t)
	tests := []struct {
		name    string
		sampler Sampler
		header  http.Header
		want    bool
	}{
		{"sampled parent beats a never sampler", NeverSample(), http.Header{"Traceparent": {"00-" + tid128 + "-" + sid + "-01"}}, true},
		{"unsampled parent beats an always sampler", AlwaysSample(), http.Header{"Traceparent": {"00-" + tid128 + "-" + sid + "-00"}}, false},
		{"b3 deny only", AlwaysSample(), http.Header{"B3": {"0"}}, false},
		{"b3 accept only", NeverSample(), http.Header{"B3": {"1"}}, true},
		{"deferred asks the sampler (yes)", AlwaysSample(), http.Header{"B3": {tid128 + "-" + sid}}, true},
		{"deferred asks the sampler (no)", NeverSample(), http.Header{"X-B3-Traceid": {tid128}, "X-B3-Spanid": {sid}}, false},
		{"root asks the sampler (yes)", AlwaysSample(), http.Header{}, true},
		{"root asks the sampler (no)", NeverSample(), http.Header{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr, _ := newTracer(t, Config{Endpoint: c.URL, Sampler: tt.sampler})
			var opts []StartOption
			if p, ok := Extract(tt.header); ok {
				opts = append(opts, WithParent(p))
			}
			ctx, server := tr.Start(t.Context(), "server", opts...)
			_, child := tr.Start(ctx, "child")
			for _, s := range []*Span{server, child} {
				if s.SpanContext().Sampled != tt.want || s.IsRecording() != tt.want {
					t.Errorf("sampled %v, recording %v; want %v", s.SpanContext().Sampled, s.IsRecording(), tt.want)
				}
			}
			if child.TraceID() != server.TraceID() || !child.SpanContext().IsValid() {
				t.Errorf("child %+v not in the trace of %+v", child.SpanContext(), server.SpanContext())
			}
			// Unsampled or not, the IDs go downstream with the decision.
			h := http.Header{}
			tr.Inject(ctx, h)
			if got, ok := Extract(h); !ok || got.Sampled != tt.want || got.TraceID != server.TraceID() || got.SpanID != server.SpanContext().SpanID {
				t.Errorf("propagated %+v, %v", got, ok)
			}
		})
	}
}
