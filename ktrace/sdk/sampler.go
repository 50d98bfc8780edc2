package sdk

import (
	"encoding/binary"
	"math"
	"time"

	"golang.org/x/time/rate"
)

// Sampler makes the head sampling decision for a new trace. It is asked
// only for root spans and for callers that deferred the decision (B3
// without a sampling state): a span with a parent follows its parent's
// decision, so that every service of a trace agrees. Implementations must
// be safe for concurrent use.
type Sampler interface {
	Sample(p SamplingParams) bool
}

// SamplingParams is what a Sampler may base its decision on.
type SamplingParams struct {
	TraceID TraceID
	// Name is the name of the root span.
	Name string
	// Now is the span's start time; rate-limiting samplers count against
	// it rather than reading the clock.
	Now time.Time
}

// SamplerFunc adapts a function to Sampler.
type SamplerFunc func(SamplingParams) bool

// Sample implements Sampler.
func (f SamplerFunc) Sample(p SamplingParams) bool { return f(p) }

// AlwaysSample samples every trace. It is the default.
func AlwaysSample() Sampler { return SamplerFunc(func(SamplingParams) bool { return true }) }

// NeverSample samples no trace; IDs are still made and propagated.
func NeverSample() Sampler { return SamplerFunc(func(SamplingParams) bool { return false }) }

// RatioSampler samples a fraction of traces (0 none, 1 all). The decision
// is a function of the trace ID alone, so services that each decide for
// the same trace (callers that defer) agree. It reads the low 8 bytes of
// the ID, the random part of 64-bit B3 IDs too.
func RatioSampler(ratio float64) Sampler {
	switch {
	case ratio >= 1:
		return AlwaysSample()
	case ratio <= 0 || math.IsNaN(ratio):
		return NeverSample()
	}
	// Compare 63 bits, as OpenTelemetry's TraceIDRatioBased does, so that
	// the bound fits an int64-exact float conversion.
	bound := uint64(ratio * (1 << 63))
	return SamplerFunc(func(p SamplingParams) bool {
		return binary.BigEndian.Uint64(p.TraceID[8:])>>1 < bound
	})
}

// RateLimitSampler samples at most perSecond new traces per second, with
// bursts of up to one second's worth, as SkyWalking's agent limits
// segments per 3 s. Every span of a sampled trace is then recorded, so the
// limit is on traces, not spans.
func RateLimitSampler(perSecond float64) Sampler {
	if perSecond <= 0 {
		return NeverSample()
	}
	burst := int(math.Ceil(perSecond))
	lim := rate.NewLimiter(rate.Limit(perSecond), burst)
	return SamplerFunc(func(p SamplingParams) bool {
		now := p.Now
		if now.IsZero() {
			now = time.Now()
		}
		return lim.AllowN(now, 1)
	})
}
