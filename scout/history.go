package scout

import "time"

// history keeps each service's recent samples compactly: a flat row per
// tick instead of a map, so an hour of 1000 services stays in tens of MB.
type history struct {
	window    time.Duration // <0: keep nothing
	metrics   []Metric
	index     map[Metric]int
	byService map[string]*serviceHistory
}

// serviceHistory holds ticks oldest first; slices are trimmed from the
// front, and append reallocates (copying only live rows) when full, so
// memory stays within about twice the window.
type serviceHistory struct {
	ticks     []int64 // tick time, UnixNano
	instances []int32
	samples   []point // len(ticks) × len(metrics), row-major
}

// point is a Sample without its Missing flag: a non-empty reason means
// missing.
type point struct {
	value  float64
	time   int64
	reason string
}

func newHistory(window time.Duration, metrics []Metric) *history {
	h := &history{window: window, metrics: metrics, index: map[Metric]int{}, byService: map[string]*serviceHistory{}}
	for i, m := range metrics {
		h.index[m] = i
	}
	return h
}

func (h *history) add(snap Snapshot) {
	if h.window < 0 {
		return
	}
	t := snap.Time.UnixNano()
	for name, ss := range snap.Services {
		sh := h.byService[name]
		if sh == nil {
			sh = &serviceHistory{}
			h.byService[name] = sh
		}
		sh.ticks = append(sh.ticks, t)
		sh.instances = append(sh.instances, int32(ss.Instances))
		for _, m := range h.metrics {
			s := ss.Metrics[m]
			p := point{value: s.Value, time: s.Time.UnixNano(), reason: s.Reason}
			if s.Missing && p.reason == "" {
				p.reason = "missing"
			} else if !s.Missing {
				p.reason = ""
			}
			sh.samples = append(sh.samples, p)
		}
	}
	// Services that left the registry keep their history until it ages
	// out: the UI can still show why a service went away.
	cutoff := snap.Time.Add(-h.window).UnixNano()
	for name, sh := range h.byService {
		n := 0
		for n < len(sh.ticks) && sh.ticks[n] < cutoff {
			n++
		}
		if n == len(sh.ticks) {
			delete(h.byService, name)
			continue
		}
		sh.ticks = sh.ticks[n:]
		sh.instances = sh.instances[n:]
		sh.samples = sh.samples[n*len(h.metrics):]
	}
}

// from returns the first row at or after since.
func (sh *serviceHistory) from(since time.Time) int {
	t := since.UnixNano()
	lo, hi := 0, len(sh.ticks)
	for lo < hi {
		mid := (lo + hi) / 2
		if sh.ticks[mid] < t {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

func (p point) sample() Sample {
	s := Sample{Value: p.value, Time: time.Unix(0, p.time), Reason: p.reason}
	s.Missing = p.reason != ""
	return s
}

func (h *history) snapshots(service string, since time.Time) []ServiceSnapshot {
	sh := h.byService[service]
	if sh == nil {
		return nil
	}
	nm := len(h.metrics)
	var out []ServiceSnapshot
	for i := sh.from(since); i < len(sh.ticks); i++ {
		ss := ServiceSnapshot{Service: service, Time: time.Unix(0, sh.ticks[i]), Instances: int(sh.instances[i]), Metrics: make(map[Metric]Sample, nm)}
		for j, m := range h.metrics {
			ss.Metrics[m] = sh.samples[i*nm+j].sample()
		}
		out = append(out, ss)
	}
	return out
}

func (h *history) series(service string, m Metric, since time.Time) []Sample {
	sh := h.byService[service]
	j, ok := h.index[m]
	if sh == nil || !ok {
		return nil
	}
	nm := len(h.metrics)
	var out []Sample
	for i := sh.from(since); i < len(sh.ticks); i++ {
		out = append(out, sh.samples[i*nm+j].sample())
	}
	return out
}
