package scout

import (
	"fmt"
	"math"
	"time"
)

// Metric names one measured quantity of a service.
type Metric string

// The metrics of a snapshot.
const (
	// QPS is the requests per second the service's instances serve
	// together, health checks and metric scrapes excluded.
	QPS Metric = "qps"
	// CPU is the average CPU use of the service's instances as a fraction
	// of one instance's CPU limit (1 means every instance is at its limit).
	CPU Metric = "cpu"
	// Memory is the average resident memory of the service's instances as
	// a fraction of one instance's memory limit.
	Memory Metric = "memory"
)

// Metrics lists every Metric, in display order.
var Metrics = []Metric{QPS, CPU, Memory}

// Sample is one value of one metric of one service.
//
// A Missing sample has no Value (it is 0 and must not be read) and a
// Reason saying why: the source failed, returned nothing for the service,
// or returned a value older than the maximum age.
type Sample struct {
	Value float64
	// Time is when the value was measured (for a rate, the end of its
	// window); for a missing sample, when scout last tried.
	Time    time.Time
	Missing bool
	Reason  string
}

// Value returns a present sample measured at t.
func Value(v float64, t time.Time) Sample {
	return Sample{Value: v, Time: t}
}

// Missingf returns a missing sample at t whose reason is formatted like
// fmt.Sprintf.
func Missingf(t time.Time, format string, args ...any) Sample {
	return Sample{Time: t, Missing: true, Reason: fmt.Sprintf(format, args...)}
}

// String formats the sample for logs: the value, or "missing (reason)".
func (s Sample) String() string {
	if s.Missing {
		return "missing (" + s.Reason + ")"
	}
	return fmt.Sprintf("%.4g", s.Value)
}

// ServiceSnapshot is what scout saw of one service at one tick.
type ServiceSnapshot struct {
	Service string
	// Time is the tick the snapshot belongs to.
	Time time.Time
	// Instances is the number of instances registered when the tick
	// started. Starting instances that have not registered are not counted.
	Instances int
	// Metrics holds one Sample per Metric of the scout's config, always
	// all of them; absent data is a Missing sample.
	Metrics map[Metric]Sample
}

// Snapshot is what scout saw of every registered service at one tick.
// A published Snapshot is never modified: readers may share it but must
// not modify it either.
type Snapshot struct {
	Time     time.Time
	Services map[string]ServiceSnapshot
}

// check turns a sample a source returned into what a snapshot may hold:
// no NaN or infinities, no value older than maxAge at now.
func check(s Sample, now time.Time, maxAge time.Duration) Sample {
	if s.Time.IsZero() {
		s.Time = now
	}
	switch {
	case s.Missing:
		if s.Reason == "" {
			s.Reason = "no reason given"
		}
		s.Value = 0
	case math.IsNaN(s.Value) || math.IsInf(s.Value, 0):
		return Missingf(now, "not a number (%v)", s.Value)
	case maxAge > 0 && now.Sub(s.Time) > maxAge:
		return Missingf(s.Time, "stale: measured %s ago, max age %s", now.Sub(s.Time).Round(time.Millisecond), maxAge)
	}
	return s
}
