package loadgen

import (
	"fmt"
	"time"
)

// Profile shapes the request rate over a run.
type Profile string

const (
	// Steady sends Rate requests per second throughout.
	Steady Profile = "steady"
	// Ramp rises linearly from Rate to Peak over the run.
	Ramp Profile = "ramp"
	// Spike sends Rate, jumps to Peak at 20% of the run, holds it until
	// 60%, and drops back to Rate: a sale opening, then the crowd
	// thinning, so both scaling up and scaling down show.
	Spike Profile = "spike"
)

// Spike timing, as fractions of the run.
const (
	spikeStart = 0.2
	spikeEnd   = 0.6
)

// ParseProfile accepts the profile names of the command line.
func ParseProfile(s string) (Profile, error) {
	switch p := Profile(s); p {
	case Steady, Ramp, Spike:
		return p, nil
	}
	return "", fmt.Errorf("%w: unknown profile %q: want steady, ramp or spike", ErrInvalidConfig, s)
}

// RateAt is the target request rate (per second) at elapsed into a run of
// length total.
func (p Profile) RateAt(elapsed, total time.Duration, rate, peak float64) float64 {
	if total <= 0 {
		return rate
	}
	f := float64(elapsed) / float64(total)
	switch p {
	case Ramp:
		return rate + (peak-rate)*min(max(f, 0), 1)
	case Spike:
		if f >= spikeStart && f < spikeEnd {
			return peak
		}
	}
	return rate
}
