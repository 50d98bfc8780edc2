package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// Report is the outcome of a run.
//
// Every request sent ends in exactly one of OK (2xx and 3xx), Rejected
// (4xx: the service answered and said no, as a sold-out event does),
// Failed (5xx, or no answer) or Canceled (cut short because the run's
// context ended).
type Report struct {
	Target   string
	Profile  Profile
	Sent     int
	OK       int
	Rejected int
	Failed   int
	Canceled int
	// ByStatus counts answers by status code ("200", "409") and failures
	// without an answer by class ("error: connection refused").
	ByStatus map[string]int
	// Latency of the requests that got an answer, whatever its status.
	Latency Latency
	Elapsed time.Duration
	// Rate is requests completed (answered or failed) per second.
	Rate float64
}

// Latency percentiles (nearest rank).
type Latency struct {
	P50, P90, P99, Max time.Duration
}

// MarshalJSON writes durations as milliseconds, the unit people read.
func (r Report) MarshalJSON() ([]byte, error) {
	ms := func(d time.Duration) float64 { return math.Round(float64(d.Microseconds())) / 1000 }
	return json.Marshal(struct {
		Target     string         `json:"target"`
		Profile    Profile        `json:"profile"`
		Sent       int            `json:"sent"`
		OK         int            `json:"ok"`
		Rejected   int            `json:"rejected"`
		Failed     int            `json:"failed"`
		Canceled   int            `json:"canceled"`
		ByStatus   map[string]int `json:"by_status"`
		P50        float64        `json:"latency_p50_ms"`
		P90        float64        `json:"latency_p90_ms"`
		P99        float64        `json:"latency_p99_ms"`
		Max        float64        `json:"latency_max_ms"`
		ElapsedSec float64        `json:"elapsed_seconds"`
		Rate       float64        `json:"rate_per_second"`
	}{
		r.Target, r.Profile, r.Sent, r.OK, r.Rejected, r.Failed, r.Canceled, r.ByStatus,
		ms(r.Latency.P50), ms(r.Latency.P90), ms(r.Latency.P99), ms(r.Latency.Max),
		math.Round(r.Elapsed.Seconds()*1000) / 1000, math.Round(r.Rate*10) / 10,
	})
}

// String is the readable summary printed at the end of a run.
func (r Report) String() string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "target\t%s (%s)\n", r.Target, r.Profile)
	fmt.Fprintf(w, "duration\t%s\n", r.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "requests\t%d sent, %.1f/s\n", r.Sent, r.Rate)
	fmt.Fprintf(w, "outcome\t%d ok, %d rejected (4xx), %d failed, %d canceled\n", r.OK, r.Rejected, r.Failed, r.Canceled)
	keys := make([]string, 0, len(r.ByStatus))
	for k := range r.ByStatus {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  %s\t%d\n", k, r.ByStatus[k])
	}
	fmt.Fprintf(w, "latency\tp50 %s  p90 %s  p99 %s  max %s\n",
		roundLatency(r.Latency.P50), roundLatency(r.Latency.P90), roundLatency(r.Latency.P99), roundLatency(r.Latency.Max))
	w.Flush()
	return b.String()
}

// WriteText writes String to w.
func (r Report) WriteText(w io.Writer) error {
	_, err := io.WriteString(w, r.String())
	return err
}

func roundLatency(d time.Duration) time.Duration {
	if d >= 10*time.Millisecond {
		return d.Round(100 * time.Microsecond)
	}
	return d.Round(time.Microsecond)
}

// recorder collects outcomes from every worker.
type recorder struct {
	sent atomic.Int64 // dispatched, counted by the dispatcher

	mu        sync.Mutex
	ok        int
	rejected  int
	failed    int
	canceled  int
	byStatus  map[string]int
	latencies []time.Duration
}

func newRecorder() *recorder {
	return &recorder{byStatus: map[string]int{}}
}

// record counts one outcome and returns its error.
func (r *recorder) record(o outcome) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case o.canceled:
		r.canceled++
	case o.err != nil:
		r.failed++
		r.byStatus[errorClass(o.err)]++
	default:
		r.byStatus[statusKey(o.status)]++
		r.latencies = append(r.latencies, o.latency)
		switch {
		case o.status < 400:
			r.ok++
		case o.status < 500:
			r.rejected++
		default:
			r.failed++
		}
	}
	return o.err
}

func (r *recorder) progress() Progress {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Progress{Sent: int(r.sent.Load()), OK: r.ok, Rejected: r.rejected, Failed: r.failed}
}

func (r *recorder) report(cfg Config, elapsed time.Duration) Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	lat := slices.Clone(r.latencies)
	slices.Sort(lat)
	rep := Report{
		Target: cfg.Target, Profile: cfg.Profile,
		Sent: int(r.sent.Load()), OK: r.ok, Rejected: r.rejected, Failed: r.failed, Canceled: r.canceled,
		ByStatus: maps.Clone(r.byStatus),
		Latency:  Latency{P50: rank(lat, 0.50), P90: rank(lat, 0.90), P99: rank(lat, 0.99)},
		Elapsed:  elapsed,
	}
	if n := len(lat); n > 0 {
		rep.Latency.Max = lat[n-1]
	}
	if elapsed > 0 {
		rep.Rate = float64(r.ok+r.rejected+r.failed) / elapsed.Seconds()
	}
	return rep
}

// rank is the nearest-rank percentile q of sorted.
func rank(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}
