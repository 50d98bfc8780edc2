package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kplane/kplane/registry"
)

// Defaults and bounds of Config.
const (
	DefaultRate        = 10
	DefaultDuration    = 10 * time.Second
	DefaultMaxRequests = 100_000
	DefaultConcurrency = 64
	DefaultTimeout     = 10 * time.Second

	MaxDuration    = time.Hour
	MaxMaxRequests = 10_000_000
	MaxConcurrency = 10_000
)

// tick is how often the dispatcher releases the requests that fell due:
// finer than a timer per request, which cannot keep up at high rates.
const tick = 5 * time.Millisecond

// Config configures a run. Zero values mean the documented defaults.
type Config struct {
	// Target is the base URL requests go to: http://127.0.0.1:PORT, or
	// http://inventory with a registry Client.
	Target string
	// Client sends the requests. nil means one on NewTransport (loopback
	// only) with Timeout per request.
	Client *http.Client
	// Timeout of one request with the default client; 0 means
	// DefaultTimeout.
	Timeout time.Duration
	// Profile shapes the rate; "" means Steady.
	Profile Profile
	// Rate is the base rate in requests per second; 0 means DefaultRate.
	Rate float64
	// Peak is the highest rate of Ramp and Spike; 0 means 10 × Rate.
	Peak float64
	// Duration bounds the run in time; 0 means DefaultDuration.
	Duration time.Duration
	// MaxRequests bounds the run in requests sent; 0 means
	// DefaultMaxRequests.
	MaxRequests int
	// Concurrency bounds requests in flight; 0 means DefaultConcurrency.
	// When all are busy, the rate falls behind the profile rather than
	// queueing without bound (the report shows the achieved rate).
	Concurrency int
	// Mix is what to send; empty means NamedMix(DefaultMix).
	Mix Mix
	// Progress, if set, is called every ProgressInterval from a goroutine
	// of Run, and must return quickly.
	Progress         func(Progress)
	ProgressInterval time.Duration // 0 means one second
}

// Progress is the state of a run in progress.
type Progress struct {
	Elapsed    time.Duration
	Sent       int
	OK         int
	Rejected   int
	Failed     int
	Rate       float64 // requests completed per second since the last Progress
	TargetRate float64 // what the profile asks for now
}

func (cfg Config) withDefaults() (Config, error) {
	if cfg.Profile == "" {
		cfg.Profile = Steady
	}
	if _, err := ParseProfile(string(cfg.Profile)); err != nil {
		return cfg, err
	}
	if cfg.Rate == 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.Peak == 0 {
		cfg.Peak = 10 * cfg.Rate
	}
	if cfg.Duration == 0 {
		cfg.Duration = DefaultDuration
	}
	if cfg.MaxRequests == 0 {
		cfg.MaxRequests = DefaultMaxRequests
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.ProgressInterval <= 0 {
		cfg.ProgressInterval = time.Second
	}
	if len(cfg.Mix) == 0 {
		cfg.Mix, _ = NamedMix(DefaultMix)
	}
	bad := func(format string, args ...any) (Config, error) {
		return cfg, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	switch {
	case cfg.Rate < 0 || cfg.Peak < 0:
		return bad("rate and peak must not be negative")
	case cfg.Duration < 0 || cfg.Duration > MaxDuration:
		return bad("duration %v must be between 0 and %v", cfg.Duration, MaxDuration)
	case cfg.MaxRequests < 0 || cfg.MaxRequests > MaxMaxRequests:
		return bad("max requests %d must be between 0 and %d", cfg.MaxRequests, MaxMaxRequests)
	case cfg.Concurrency < 0 || cfg.Concurrency > MaxConcurrency:
		return bad("concurrency %d must be between 0 and %d", cfg.Concurrency, MaxConcurrency)
	}
	return cfg, cfg.Mix.validate()
}

// targetURL parses and checks the target: an http(s) base URL on this
// machine. A name that only a custom client can resolve (a registry
// service name) is left to that client's dialer.
func targetURL(ctx context.Context, target string, customClient bool) (*url.URL, error) {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: target %q is not an http:// or https:// URL", ErrInvalidConfig, target)
	}
	host := u.Hostname()
	if customClient && !strings.ContainsAny(u.Host, ".:[") && host != "localhost" {
		return u, nil
	}
	if err := CheckLoopback(ctx, nil, host); err != nil {
		return nil, fmt.Errorf("target %s: %w", target, err)
	}
	return u, nil
}

// Run sends load to cfg.Target until cfg.Duration has passed or
// cfg.MaxRequests were sent, waits for the requests in flight, and reports.
// If ctx ends first, in-flight requests are canceled (counted as Canceled)
// and the partial report comes back with ctx's error. A connection refused
// by the loopback rule stops the run with an error wrapping ErrNotLoopback.
func Run(ctx context.Context, cfg Config) (Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Report{}, err
	}
	base, err := targetURL(ctx, cfg.Target, cfg.Client != nil)
	if err != nil {
		return Report{}, err
	}
	client := cfg.Client
	if client == nil {
		tr := NewTransport()
		defer tr.CloseIdleConnections()
		client = &http.Client{Transport: tr, Timeout: cfg.Timeout}
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	rec := newRecorder()
	start := time.Now()
	work := make(chan Op) // unbuffered: a send is a free worker taking it
	var workers sync.WaitGroup
	for range cfg.Concurrency {
		workers.Go(func() {
			for op := range work {
				if err := rec.record(send(ctx, client, base, op)); errors.Is(err, ErrNotLoopback) {
					cancel(err)
				}
			}
		})
	}
	progressDone := make(chan struct{})
	var progress sync.WaitGroup
	if cfg.Progress != nil {
		progress.Go(func() { reportProgress(rec, cfg, start, progressDone) })
	}

	dispatch(ctx, cfg, start, work, &rec.sent)
	close(work)
	workers.Wait()
	close(progressDone)
	progress.Wait()

	rep := rec.report(cfg, time.Since(start))
	if cause := context.Cause(ctx); cause != nil {
		return rep, cause
	}
	return rep, nil
}

// dispatch hands ops to workers at the profile's rate until the run is
// over, counting them in sent.
func dispatch(ctx context.Context, cfg Config, start time.Time, work chan<- Op, sent *atomic.Int64) {
	deadline := time.NewTimer(cfg.Duration)
	defer deadline.Stop()
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	due := 0.0
	last := start
	for sent.Load() < int64(cfg.MaxRequests) {
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			return
		case now := <-ticker.C:
			due += cfg.Profile.RateAt(now.Sub(start), cfg.Duration, cfg.Rate, cfg.Peak) * now.Sub(last).Seconds()
			last = now
			// Behind schedule because every worker was busy: do not burst
			// to catch up by more than one tick's worth per worker.
			due = min(due, float64(cfg.Concurrency))
			for ; due >= 1 && sent.Load() < int64(cfg.MaxRequests); due-- {
				select {
				case work <- cfg.Mix.pick():
					sent.Add(1)
				case <-ctx.Done():
					return
				case <-deadline.C:
					return
				}
			}
		}
	}
}

// outcome is what one request came to.
type outcome struct {
	status   int // 0 when err is set
	err      error
	canceled bool // err came from the run's context ending
	latency  time.Duration
}

func send(ctx context.Context, client *http.Client, base *url.URL, op Op) outcome {
	var body io.Reader
	if op.Body != "" {
		body = strings.NewReader(op.Body)
	}
	req, err := http.NewRequestWithContext(ctx, op.Method, base.JoinPath(op.Path).String(), body)
	if err != nil {
		return outcome{err: err}
	}
	if op.Body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return outcome{err: err, canceled: ctx.Err() != nil}
	}
	// Read the whole answer: the latency a user sees includes it, and the
	// connection can only be reused once it is drained.
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return outcome{err: err, canceled: ctx.Err() != nil}
	}
	return outcome{status: resp.StatusCode, latency: time.Since(start)}
}

func reportProgress(rec *recorder, cfg Config, start time.Time, done <-chan struct{}) {
	t := time.NewTicker(cfg.ProgressInterval)
	defer t.Stop()
	prevDone, prevAt := 0, start
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			p := rec.progress()
			completed := p.OK + p.Rejected + p.Failed
			p.Elapsed = now.Sub(start)
			p.Rate = float64(completed-prevDone) / now.Sub(prevAt).Seconds()
			p.TargetRate = cfg.Profile.RateAt(p.Elapsed, cfg.Duration, cfg.Rate, cfg.Peak)
			prevDone, prevAt = completed, now
			cfg.Progress(p)
		}
	}
}

// errorClass names a transport error in a small fixed vocabulary, so that
// the report groups failures instead of listing every message.
func errorClass(err error) string {
	var netErr net.Error
	switch {
	case errors.Is(err, ErrNotLoopback):
		return "error: not loopback"
	case errors.Is(err, registry.ErrNoInstances):
		return "error: no instances"
	case errors.Is(err, context.Canceled):
		return "error: canceled"
	case errors.Is(err, context.DeadlineExceeded), os.IsTimeout(err), errors.As(err, &netErr) && netErr.Timeout():
		return "error: timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "error: connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "error: connection reset"
	}
	return "error: other"
}

func statusKey(status int) string { return strconv.Itoa(status) }
