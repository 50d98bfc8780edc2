// Command autoscaler measures spike-to-capacity: the time from a traffic
// spike on the inventory demo service to the first new instance serving a
// request, with `kplane dev` as a user runs it (process driver, scrape
// source, the demo policy, the dev tick) unless flags say otherwise.
// Results go in docs/benchmarks.md.
//
//	go run ./bench/autoscaler [-runs 5] [-base 20] [-peak 400] [-interval 2s]
//
// It builds kplane, starts `kplane dev` on free loopback ports in a temp
// dir, and sends a background load plus, each run, a spike through the
// registry client (the load generator's loopback-only transport
// underneath), recording which instance answered each request. Between
// runs inventory is scaled back to 2 through the API and the policy's
// scale-up cooldown is waited out. It exits non-zero when the p50 misses
// the goal (10 s) or a request fails. Bounded: about 30 s per run.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/kplane/kplane/bench/internal/devproc"
	"github.com/kplane/kplane/examples/ticketing/loadgen"
	"github.com/kplane/kplane/registry"
)

// goal is the bound on the p50 (Kubernetes' HPA takes 15–45 s
// just to notice a CPU spike).
const goal = 10 * time.Second

const token = "bench-admin-token-0123456789"

func main() {
	runs := flag.Int("runs", 5, "spikes measured")
	base := flag.Float64("base", 20, "background requests per second, throughout")
	peak := flag.Float64("peak", 400, "requests per second during a spike, background included")
	interval := flag.String("interval", "", "autoscaler interval (KPLANE_AUTOSCALER_INTERVAL); empty keeps kplane dev's default")
	kplane := flag.String("kplane", "", "kplane binary to run; empty builds ./cmd/kplane")
	flag.Parse()
	if err := run(*runs, *base, *peak, *interval, *kplane); err != nil {
		fmt.Fprintln(os.Stderr, "bench/autoscaler:", err)
		os.Exit(1)
	}
}

// sample is one spike's timeline, each from the spike's start.
type sample struct {
	decided    time.Duration // the scale-up decision's evaluation
	registered time.Duration // the first new instance in the registry
	served     time.Duration // its first answered request
	to         int           // instances the decision asked for
}

func run(runs int, base, peak float64, interval, bin string) error {
	if runs < 1 || base <= 0 || peak <= base {
		return errors.New("want -runs ≥ 1 and -peak > -base > 0")
	}
	dir, err := os.MkdirTemp("", "kplane-bench-autoscaler-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if bin == "" {
		bin = filepath.Join(dir, "kplane")
		build := exec.Command("go", "build", "-o", bin, "./cmd/kplane")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("building kplane (run from the repository root): %w", err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	dev, err := startDev(ctx, bin, filepath.Join(dir, "data"), interval)
	if err != nil {
		return err
	}
	defer dev.Stop()
	cooldown, err := dev.cooldownUp(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("kplane dev at %s (%s); inventory policy cooldownUp %s\n", dev.URL, dev.sourceLine, cooldown)

	etcd, err := registry.Connect(registry.ConnectConfig{Endpoints: []string{"http://" + dev.Etcd}})
	if err != nil {
		return err
	}
	defer etcd.Close()
	watcher := registry.NewWatcher(registry.WatcherConfig{Client: etcd})
	wctx, wcancel := context.WithCancel(ctx)
	var bg sync.WaitGroup
	defer bg.Wait()
	defer wcancel()
	bg.Go(func() { _ = watcher.Run(wctx) })
	select {
	case <-watcher.Ready():
	case <-time.After(10 * time.Second):
		return errors.New("registry not ready after 10 s")
	}

	rec := &recorder{first: map[string]time.Time{}}
	client := &http.Client{
		Transport: registry.NewTransport(registry.TransportConfig{
			Resolver: watcher, Base: rec.wrap(loadgen.NewTransport()),
			// The demo's environment: HAWAII's qa and prod also run inventory.
			Selector: registry.Selector{Env: "dev"},
		}),
		Timeout: loadgen.DefaultTimeout,
	}
	reports := make(chan loadgen.Report, runs+1)
	background, cancelBackground := context.WithCancel(ctx)
	defer cancelBackground()
	bg.Go(func() {
		r, _ := loadgen.Run(background, loadgen.Config{Target: "http://inventory", Client: client, Rate: base, Duration: loadgen.MaxDuration})
		reports <- r
	})

	var samples []sample
	for i := range runs {
		if err := waitInstances(ctx, watcher, 2, 60*time.Second); err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		s, err := spike(ctx, dev, watcher, rec, client, peak-base, reports)
		if err != nil {
			return fmt.Errorf("run %d: %w", i+1, err)
		}
		samples = append(samples, s)
		fmt.Printf("run %d: decision %v, registered %v, serving %v (2 → %d)\n", i+1, ms(s.decided), ms(s.registered), ms(s.served), s.to)
		if err := dev.scale(ctx, 2); err != nil {
			return fmt.Errorf("run %d: back to 2: %w", i+1, err)
		}
		// The next spike must not land in this one's scale-up cooldown.
		time.Sleep(cooldown + time.Second)
	}
	cancelBackground()

	var failed, ok int
	for range runs + 1 {
		r := <-reports
		failed += r.Failed
		ok += r.OK
	}
	served := make([]time.Duration, len(samples))
	for i, s := range samples {
		served[i] = s.served
	}
	slices.Sort(served)
	p50 := served[(len(served)-1)/2]
	fmt.Println()
	fmt.Println("| run | spike → decision | → first new instance registered | → first request served by it | scaled to |")
	fmt.Println("|---|---|---|---|---|")
	for i, s := range samples {
		fmt.Printf("| %d | %v | %v | %v | %d |\n", i+1, ms(s.decided), ms(s.registered), ms(s.served), s.to)
	}
	fmt.Printf("\nspike → first new instance serving: p50 %v, max %v over %d runs; requests %d ok, %d failed\n",
		ms(p50), ms(served[len(served)-1]), len(served), ok, failed)
	switch {
	case failed > 0:
		return fmt.Errorf("%d requests failed", failed)
	case p50 > goal:
		return fmt.Errorf("goal (p50 ≤ %v) missed: %v", goal, ms(p50))
	}
	fmt.Printf("goal (p50 ≤ %v): met\n", goal)
	return nil
}

// spike sends rate more requests per second to inventory until a new
// instance has served one (or 30 s), and returns the timeline.
func spike(ctx context.Context, dev *devProcess, watcher *registry.Watcher, rec *recorder, client *http.Client, rate float64, reports chan<- loadgen.Report) (sample, error) {
	old := map[string]bool{}
	for _, in := range devInventory(watcher) {
		old[in.Addr] = true
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	wg.Go(func() {
		r, _ := loadgen.Run(sctx, loadgen.Config{
			Target: "http://inventory", Client: client, Rate: rate, Duration: 30 * time.Second,
			Concurrency: 512, // buyers do not wait for each other
		})
		reports <- r
	})
	defer wg.Wait()

	var s sample
	for s.served == 0 {
		if sctx.Err() != nil {
			return s, errors.New("no new instance served within 30 s of the spike")
		}
		if s.registered == 0 {
			for _, in := range devInventory(watcher) {
				if !old[in.Addr] {
					s.registered = time.Since(start)
					break
				}
			}
		}
		if at, ok := rec.firstNew(old, start); ok {
			s.served = at.Sub(start)
			if s.registered == 0 || s.registered > s.served {
				s.registered = s.served // registered between two polls
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Let the decision that did it reach the store, then stop the spike.
	time.Sleep(2 * time.Second)
	cancel()
	d, err := dev.firstUp(ctx, start)
	if err != nil {
		return s, err
	}
	s.decided, s.to = d.Time.Sub(start), d.To
	return s, nil
}

// recorder notes when each instance address first answered a request.
type recorder struct {
	mu    sync.Mutex
	first map[string]time.Time
}

type recordingTransport struct {
	base http.RoundTripper
	rec  *recorder
}

func (r *recorder) wrap(base http.RoundTripper) http.RoundTripper {
	return recordingTransport{base: base, rec: r}
}

func (t recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err == nil && resp.StatusCode < 500 {
		now := time.Now()
		t.rec.mu.Lock()
		if _, ok := t.rec.first[req.URL.Host]; !ok {
			t.rec.first[req.URL.Host] = now
		}
		t.rec.mu.Unlock()
	}
	return resp, err
}

// firstNew returns the earliest first answer after since from an address
// not in old.
func (r *recorder) firstNew(old map[string]bool, since time.Time) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var first time.Time
	for addr, at := range r.first {
		if !old[addr] && at.After(since) && (first.IsZero() || at.Before(first)) {
			first = at
		}
	}
	return first, !first.IsZero()
}

func waitInstances(ctx context.Context, w *registry.Watcher, n int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err := w.WaitInstances(ctx, "inventory", func(ins []registry.Instance) bool { return len(devproc.InEnv(ins, "dev")) == n })
	if err != nil {
		return fmt.Errorf("inventory not at %d instances: %w", n, err)
	}
	return nil
}

// devProcess is a running `kplane dev` and the autoscaler settings its log
// says it chose.
type devProcess struct {
	*devproc.Process
	sourceLine string
}

func startDev(ctx context.Context, bin, dataDir, interval string) (*devProcess, error) {
	var env []string
	if interval != "" {
		env = append(env, "KPLANE_AUTOSCALER_INTERVAL="+interval)
	}
	p, err := devproc.Start(ctx, devproc.Config{Bin: bin, DataDir: dataDir, Token: token, Env: env,
		Log: filepath.Join(filepath.Dir(dataDir), "kplane.log"), BannerTimeout: 60 * time.Second})
	if err != nil {
		return nil, err
	}
	log, _ := os.ReadFile(p.Log)
	return &devProcess{Process: p, sourceLine: regexp.MustCompile(`source=\S+.*interval=\S+`).FindString(string(log))}, nil
}

func (p *devProcess) cooldownUp(ctx context.Context) (time.Duration, error) {
	var pol struct {
		CooldownUp string `json:"cooldownUp"`
	}
	if err := p.Call(ctx, http.MethodGet, "/api/v1/policies/inventory", "", &pol); err != nil {
		return 0, err
	}
	return time.ParseDuration(pol.CooldownUp)
}

// scale scales inventory to n through the API, retrying while the
// orchestrator is busy with a scale of the autoscaler's.
func (p *devProcess) scale(ctx context.Context, n int) error {
	var err error
	for range 20 {
		var ans map[string]any
		if err = p.Call(ctx, http.MethodPost, "/api/v1/services/inventory/scale", fmt.Sprintf(`{"instances": %d}`, n), &ans); err == nil {
			return nil
		}
		time.Sleep(time.Second)
	}
	return err
}

type decision struct {
	Time    time.Time `json:"time"`
	Action  string    `json:"action"`
	Outcome string    `json:"outcome"`
	To      int       `json:"to"`
}

// firstUp returns the first executed scale-up of inventory evaluated after
// since.
func (p *devProcess) firstUp(ctx context.Context, since time.Time) (decision, error) {
	var body struct {
		Decisions []decision `json:"decisions"`
	}
	if err := p.Call(ctx, http.MethodGet, "/api/v1/decisions?service=inventory&limit=500", "", &body); err != nil {
		return decision{}, err
	}
	for _, d := range slices.Backward(body.Decisions) {
		if d.Action == "up" && d.Outcome == "done" && d.Time.After(since) {
			return d, nil
		}
	}
	return decision{}, errors.New("no executed scale-up decision since the spike")
}

func ms(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

// devInventory is the demo's inventory: kplane dev also runs inventory in
// HAWAII's alpha, qa and prod environments, which the autoscaler leaves be.
func devInventory(w *registry.Watcher) []registry.Instance {
	return devproc.InEnv(w.Instances("inventory"), "dev")
}
