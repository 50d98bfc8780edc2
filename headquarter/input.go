package headquarter

import "time"

// Sample is one metric value with the time it was measured. A sample is
// missing when Missing holds a reason or At is zero: a value that could not
// be read is never zero.
type Sample struct {
	Value float64 `json:"value"`
	// At is when the value was measured (the end of its rate window), not
	// when it was fetched.
	At time.Time `json:"at"`
	// Missing is why there is no value ("query failed", "no series", ...).
	Missing string `json:"missing,omitempty"`
}

// Value returns a present sample measured at at.
func Value(v float64, at time.Time) Sample { return Sample{Value: v, At: at} }

// MissingSample returns a missing sample with its reason.
func MissingSample(reason string) Sample { return Sample{Missing: reason} }

// Input is what headquarter knows about one service at one evaluation.
type Input struct {
	Service string `json:"service"`
	// Missing, when set, says why the service could not be observed at
	// all: its instance count is unknown, so it is held, never scaled.
	Missing string `json:"missing,omitempty"`
	// Instances counts registered instances: capacity that serves.
	Instances int `json:"instances"`
	// Starting counts instances started but not registered yet. They are
	// not capacity, but a scale-up that they already cover is not repeated.
	Starting int `json:"starting,omitempty"`
	// QPS is the service's TOTAL requests per second; Evaluate divides it
	// by Instances. CPU and Memory are means over instances, as fractions
	// of each instance's limit.
	QPS    Sample `json:"qps"`
	CPU    Sample `json:"cpu"`
	Memory Sample `json:"memory"`
	// Busy reports that a Scale of this service is still in flight. The
	// Loop sets it; observers leave it false.
	Busy bool `json:"busy,omitempty"`
}

// Sample returns the input's sample of metric m.
func (in Input) Sample(m Metric) Sample {
	switch m {
	case QPS:
		return in.QPS
	case CPU:
		return in.CPU
	case Memory:
		return in.Memory
	}
	return MissingSample("unknown metric")
}
