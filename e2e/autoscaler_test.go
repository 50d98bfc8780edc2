package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/kplane/kplane/internal/promtest"
	"github.com/kplane/kplane/scout"
	scoutprom "github.com/kplane/kplane/scout/prometheus"
)

// The "end to end, for real": kplane dev scales the inventory demo
// service on a load generator's spike and back, through the registry,
// without a failed request, with scout reading a real Prometheus or the
// instances' /metrics itself; and a Prometheus outage never reads as a
// reason to scale down.
//
// Prometheus finds the demo instances through file-based discovery: the
// test rewrites the target file from GET /api/v1/services whenever the
// registered set changes (promtest.SetTargets). That is how an operator
// would feed Prometheus from a registry it has no native discovery for;
// Prometheus 2.42 applies discovery changes within about 5 s, so a new
// instance's traffic shows up in its queries a few seconds late, which the
// policies below tolerate.
//
// Windows are shortened through the policy API and the tick through
// KPLANE_AUTOSCALER_INTERVAL, so the three tests take about five minutes,
// most of it the two-minute Prometheus outage.

const (
	// tick is the autoscaler interval of these tests (dev's default is 2s).
	tick = "500ms"
	// burstRate and burstFor are the spike: a sale opening.
	burstRate = 400
	burstFor  = 12 * time.Second
	// backgroundRate runs from the spike's start until the service is back
	// at min, so the scale-down's drains happen under traffic.
	backgroundRate = 8
	// qpsHigh is the policy's high threshold per instance (2 instances
	// answer 2×qpsHigh before they need help).
	qpsHigh = 20
	// capacityGoal is the bound from the spike being visible in
	// the metrics to the first new instance serving.
	capacityGoal = 10 * time.Second
)

// spikePolicy is the inventory policy the tests PUT: the demo's rule (QPS
// per instance alone decides) with a short stabilization window and
// cooldowns.
func spikePolicy(window time.Duration) string {
	return fmt.Sprintf(`{"min": 2, "max": 8,
		"qps": {"high": %d, "low": 10, "target": 12},
		"cpu": {"disabled": true}, "memory": {"disabled": true},
		"votes": 1, "cooldownUp": "3s", "cooldownDown": "3s",
		"stabilizationWindow": %q, "maxMetricAge": "10s"}`, qpsHigh, window)
}

// TestAutoscalerSpikeWithPrometheus: kplane dev with scout reading a real
// Prometheus that scrapes the demo instances.
func TestAutoscalerSpikeWithPrometheus(t *testing.T) {
	prom := promtest.Start(t, promtest.Config{ScrapeInterval: time.Second})
	t.Setenv("KPLANE_AUTOSCALER_SOURCE", "prometheus")
	t.Setenv("KPLANE_PROMETHEUS_URL", prom.URL)
	t.Setenv("KPLANE_AUTOSCALER_INTERVAL", tick)
	p := startDev(t, t.TempDir())
	if !strings.Contains(p.output(), "source=prometheus") {
		t.Fatalf("kplane dev did not log the prometheus source:\n%s", p.output())
	}
	runSpike(t, p, prom, 8*time.Second)
}

// TestAutoscalerSpikeWithScrape: the same scenario with dev's default
// source, scout reading each instance's /metrics.
func TestAutoscalerSpikeWithScrape(t *testing.T) {
	t.Setenv("KPLANE_AUTOSCALER_INTERVAL", tick)
	p := startDev(t, t.TempDir())
	if !strings.Contains(p.output(), "source=scrape") {
		t.Fatalf("kplane dev did not log the scrape source:\n%s", p.output())
	}
	runSpike(t, p, nil, 6*time.Second)
}

// runSpike sends a burst of burstRate requests per second to inventory for
// burstFor, from idle, plus a background rate that lasts until inventory
// is back at min; both go through the registry (kplane loadgen --service).
// It checks that inventory goes from 2 to at least 4 instances, the first
// new one serving within capacityGoal of the spike being visible in the
// metrics, that it returns to 2 after the stabilization window, and that
// no request failed. prom is nil for the scrape source: the spike is then
// visible to scout at its start (it reads the counters themselves).
func runSpike(t *testing.T, p *devProcess, prom *promtest.Server, window time.Duration) {
	p.putPolicy(t, "inventory", spikePolicy(window))
	targets := newTargetSync(prom)
	initial := p.instances(t)["inventory"]
	if len(initial) != 2 {
		t.Fatalf("inventory has %d instances before the spike, want 2", len(initial))
	}
	waitObserved(t, p, targets, "inventory")

	t0 := time.Now()
	background := startLoadgen(t, p, "--rate", strconv.Itoa(backgroundRate), "--duration", "4m")
	burst := startLoadgen(t, p, "--rate", strconv.Itoa(burstRate), "--duration", burstFor.String())
	t.Logf("spike: %d req/s for %s from idle, and %d req/s in the background", burstRate, burstFor, backgroundRate)

	old := map[string]bool{}
	for _, in := range initial {
		old[in.ID] = true
	}
	var (
		visible, crossed, firstServing, burstEnd, backAtMin time.Time
		firstNew                                            string
		peak, count                                         = 2, 2
		burstRep                                            loadgenReport
	)
	if prom == nil {
		visible = t0
	}
	deadline := t0.Add(150 * time.Second)
	for ; time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		all := p.instances(t)
		targets.sync(t, all)
		inv := all["inventory"]
		now := time.Now()
		if prom != nil && crossed.IsZero() {
			if qps, ok := promQPS(t, prom, "inventory"); ok && qps > 0 {
				if visible.IsZero() {
					visible = now
					t.Logf("spike visible in Prometheus after %s (%.1f req/s)", now.Sub(t0).Round(time.Millisecond), qps)
				}
				if qps > 2*qpsHigh {
					crossed = now
					t.Logf("Prometheus QPS above the high threshold after %s (%.1f req/s for 2 instances)", now.Sub(t0).Round(time.Millisecond), qps)
				}
			}
		}
		if len(inv) != count {
			t.Logf("+%s inventory: %d instances", now.Sub(t0).Round(100*time.Millisecond), len(inv))
			count = len(inv)
		}
		peak = max(peak, len(inv))
		if firstServing.IsZero() {
			for _, in := range inv {
				if !old[in.ID] && served(in.Addr) {
					firstServing, firstNew = now, in.ID
					t.Logf("first new instance %s serving %s after the spike started (%d registered)", in.ID, now.Sub(t0).Round(time.Millisecond), len(inv))
					break
				}
			}
		}
		if burstEnd.IsZero() && burst.exited() {
			burstEnd = now
			burstRep = burst.report(t)
			t.Logf("spike over after %s at %d instances: %s", now.Sub(t0).Round(time.Millisecond), len(inv), burstRep)
		}
		if !burstEnd.IsZero() && peak >= 4 && len(inv) == 2 {
			backAtMin = now
			break
		}
	}
	bgRep := background.stop(t)
	t.Logf("background load: %s", bgRep)
	if burstEnd.IsZero() {
		burstRep = burst.report(t)
	}

	switch {
	case peak < 4:
		t.Errorf("inventory peaked at %d instances, want at least 4", peak)
	case firstServing.IsZero():
		t.Errorf("no new inventory instance served a request")
	case visible.IsZero():
		t.Errorf("the spike never showed in Prometheus")
	default:
		took := firstServing.Sub(visible)
		t.Logf("spike start → first new instance serving: %s; visible in the metrics → serving: %s (goal %s)",
			firstServing.Sub(t0).Round(time.Millisecond), took.Round(time.Millisecond), capacityGoal)
		if took > capacityGoal {
			t.Errorf("first new instance (%s) served %s after the spike was visible in the metrics, want within %s (load average %s)",
				firstNew, took.Round(time.Millisecond), capacityGoal, loadAverage())
		}
	}
	if backAtMin.IsZero() {
		t.Errorf("inventory not back at 2 instances %s after the spike started", deadline.Sub(t0))
	} else {
		t.Logf("back at min %s after the spike ended (peak %d instances)", backAtMin.Sub(burstEnd).Round(time.Millisecond), peak)
	}
	for name, rep := range map[string]loadgenReport{"spike": burstRep, "background": bgRep} {
		if rep.Failed != 0 || rep.OK == 0 {
			t.Errorf("%s load: %d failed, %d ok (%v), want 0 failed (load average %s)", name, rep.Failed, rep.OK, rep.ByStatus, loadAverage())
		}
	}

	// The decision log explains both changes: a scale-up, and a scale-down
	// only after the stabilization window held.
	up := p.waitDecision(t, "inventory", func(d decision) bool { return d.Action == "up" && d.Outcome == "done" && d.Time.After(t0) })
	down := p.waitDecision(t, "inventory", func(d decision) bool { return d.Action == "down" && d.Outcome == "done" && d.Time.After(t0) })
	ds := p.decisions(t, "inventory")
	switch {
	case up == nil:
		t.Errorf("no executed scale-up decision since the spike:\n%s", formatDecisions(ds))
	case down == nil:
		t.Errorf("no executed scale-down decision since the spike:\n%s", formatDecisions(ds))
	default:
		for _, d := range slices.Backward(ds) {
			if d.Outcome != "" && d.Time.After(t0) {
				t.Logf("executed: %s", &d)
			}
		}
		first := findDecision(ds, func(d decision) bool {
			return d.Action == "down" && d.Guard == "stabilization" && d.Time.After(up.Time) && !d.Time.After(down.Time)
		})
		if first == nil || down.Time.Sub(first.Time) < window {
			t.Errorf("the scale-down was not held for the %s stabilization window first:\n%s", window, formatDecisions(ds))
		}
	}
	waitDemoProcesses(t, p, "inventory", 2)
}

// TestAutoscalerPrometheusOutage is issue 7's "stop Prometheus for 2
// minutes under load": inventory runs 4 instances under a steady load that
// sits inside its thresholds, and Prometheus is killed for outageFor. A
// missing metric must never read as zero traffic: nothing may scale down
// while Prometheus is gone, and the stored decisions must say why. At the
// end of the outage the load stops and a Prometheus answers again: scaling
// resumes, inventory scales down to min, after a whole stabilization
// window of fresh evidence.
//
// The new Prometheus is a fresh process (empty TSDB, as after a restart
// without persistent storage) on a port promtest chooses, so kplane is
// pointed at a TCP forwarder in front of it: a stable address, like the
// service address or load balancer Prometheus sits behind in production.
// While no Prometheus runs, the forwarder closes every connection at once.
func TestAutoscalerPrometheusOutage(t *testing.T) {
	const (
		// window is well beyond the QPS rate's ramp: Prometheus's rate over
		// 1m reads above low (0.5/instance) about 6 s after the load
		// starts, and reaches the load after a minute.
		window    = 20 * time.Second
		outageFor = 2 * time.Minute
		// loadRate is 10 req/s per instance at 4 instances: well inside
		// [low 0.5, high 30], also while Prometheus scrapes only some.
		loadRate = 40
	)
	prom := promtest.Start(t, promtest.Config{ScrapeInterval: time.Second})
	fwd := newForwarder(t, strings.TrimPrefix(prom.URL, "http://"))
	t.Setenv("KPLANE_AUTOSCALER_SOURCE", "prometheus")
	t.Setenv("KPLANE_PROMETHEUS_URL", "http://"+fwd.addr())
	t.Setenv("KPLANE_AUTOSCALER_INTERVAL", tick)
	p := startDev(t, t.TempDir())
	p.putPolicy(t, "inventory", fmt.Sprintf(`{"min": 2, "max": 8,
		"qps": {"high": 30, "low": 0.5, "target": 10},
		"cpu": {"disabled": true}, "memory": {"disabled": true},
		"votes": 1, "cooldownUp": "3s", "cooldownDown": "3s",
		"stabilizationWindow": %q, "maxMetricAge": "10s"}`, window))

	// Four instances under load: kplane must see them answering the load
	// through Prometheus before the outage, so that a missing QPS read as
	// 0 would be a reason to scale down.
	t0 := time.Now()
	p.scale(t, "inventory", 4)
	load := startLoadgen(t, p, "--rate", strconv.Itoa(loadRate), "--duration", "5m")
	targets := newTargetSync(prom)
	waitObserved(t, p, targets, "inventory")
	for deadline := t0.Add(45 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		all := p.instances(t)
		targets.sync(t, all)
		qps, ok := promQPS(t, prom, "inventory")
		if len(all["inventory"]) == 4 && ok && qps > 10 {
			t.Logf("4 instances under %d req/s: Prometheus reads %.1f req/s %s after the load started", loadRate, qps, time.Since(t0).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("inventory not at 4 instances serving > 10 req/s as seen by Prometheus after 45 s (%d instances, %.1f req/s):\n%s",
				len(all["inventory"]), qps, formatDecisions(p.decisions(t, "inventory")))
		}
	}

	stopped := time.Now()
	prom.Stop(t)
	t.Logf("Prometheus stopped under %d req/s; watching for %s", loadRate, outageFor)
	for end := stopped.Add(outageFor); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		if n := len(p.instances(t)["inventory"]); n < 4 {
			t.Fatalf("inventory went to %d instances %s into the Prometheus outage:\n%s",
				n, time.Since(stopped).Round(time.Millisecond), formatDecisions(p.decisions(t, "inventory")))
		}
	}
	ds := p.decisions(t, "inventory")
	var guarded []decision
	for _, d := range ds {
		if !d.Time.After(stopped) {
			continue
		}
		if d.Action == "down" && d.Outcome != "" {
			t.Errorf("a scale-down was carried out during the outage: %s", &d)
		}
		if d.Guard == "missing_data" && d.From == 4 && strings.Contains(d.Reason, "qps missing") && strings.Contains(d.Reason, "prometheus") {
			guarded = append(guarded, d)
		}
	}
	if len(guarded) == 0 {
		t.Fatalf("no missing-data decision naming Prometheus during the outage:\n%s", formatDecisions(ds))
	}
	// The first held decision after the stop says how fast kplane noticed.
	first := guarded[len(guarded)-1]
	t.Logf("%d missing-data decisions in the %s outage, the first %s after the stop; the latest: %s",
		len(guarded), outageFor, first.Time.Sub(stopped).Round(time.Millisecond), &guarded[0])
	// What an operator types during the outage: one row per decision.
	out, err := exec.Command(kplaneBin, "decisions", "--service", "inventory", "--limit", "3", "--addr", p.url, "--token", p.token).CombinedOutput()
	if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); err != nil || len(lines) != 4 || !strings.Contains(lines[1], "missing data") {
		t.Errorf("kplane decisions during the outage: %v, want a header and 3 one-line rows, the newest held by missing data:\n%s", err, out)
	}
	if code, b := p.get(t, "/metrics", false); code != http.StatusOK ||
		!bytes.Contains(b, []byte(`kplane_headquarter_decisions_total{action="hold",guard="missing_data",service="inventory"}`)) {
		t.Errorf("kplane's /metrics does not count the missing-data holds (status %d)", code)
	}

	// The load stops, then a Prometheus answers again: it sees no traffic
	// (rates need two scrapes), and the scale-down waits out a whole
	// window of fresh evidence.
	rep := load.stop(t)
	t.Logf("load, the outage included: %s", rep)
	prom2 := promtest.Start(t, promtest.Config{ScrapeInterval: time.Second})
	targets = newTargetSync(prom2)
	targets.sync(t, p.instances(t))
	fwd.setUpstream(strings.TrimPrefix(prom2.URL, "http://"))
	resumed := time.Now()
	for deadline := resumed.Add(60 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		all := p.instances(t)
		targets.sync(t, all)
		if len(all["inventory"]) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("inventory still at %d instances %s after Prometheus returned:\n%s",
				len(all["inventory"]), time.Since(resumed).Round(time.Second), formatDecisions(p.decisions(t, "inventory")))
		}
	}
	back := time.Now()
	down := p.waitDecision(t, "inventory", func(d decision) bool {
		return d.Time.After(resumed) && d.Action == "down" && d.Outcome == "done"
	})
	if down == nil {
		t.Fatalf("inventory back at 2 without a scale-down decision since Prometheus returned:\n%s", formatDecisions(p.decisions(t, "inventory")))
	}
	t.Logf("Prometheus back, load stopped: scaled down to 2 %s later: %s", back.Sub(resumed).Round(time.Millisecond), down)
	if down.Time.Sub(resumed) < window {
		t.Errorf("scaled down %s after Prometheus returned, before a whole %s window of new data", down.Time.Sub(resumed), window)
	}
	waitDemoProcesses(t, p, "inventory", 2)
}

// The API.

type instance struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
	Env  string `json:"env"`
}

// instances lists the registered instances of env dev by service.
func (p *devProcess) instances(t *testing.T) map[string][]instance {
	t.Helper()
	code, b := p.get(t, "/api/v1/services", true)
	if code != http.StatusOK {
		t.Fatalf("GET /api/v1/services: %d %s", code, b)
	}
	var body struct {
		Services []struct {
			Name      string     `json:"name"`
			Instances []instance `json:"instances"`
		} `json:"services"`
	}
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("services JSON: %v: %s", err, b)
	}
	// Only the demo's dev environment, which the autoscaler scales: HAWAII
	// also runs inventory in qa and prod (and throwaway alpha ones).
	out := map[string][]instance{}
	for _, s := range body.Services {
		for _, in := range s.Instances {
			if in.Env == "dev" {
				out[s.Name] = append(out[s.Name], in)
			}
		}
	}
	return out
}

func (p *devProcess) send(t *testing.T, method, path, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, p.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+p.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (p *devProcess) putPolicy(t *testing.T, service, policy string) {
	t.Helper()
	if code, b := p.send(t, http.MethodPut, "/api/v1/policies/"+service, policy); code != http.StatusOK {
		t.Fatalf("PUT policy of %s: %d %s", service, code, b)
	}
}

func (p *devProcess) scale(t *testing.T, service string, n int) {
	t.Helper()
	code, b := p.send(t, http.MethodPost, "/api/v1/services/"+service+"/scale", fmt.Sprintf(`{"instances": %d}`, n))
	if code != http.StatusOK {
		t.Fatalf("scale %s to %d: %d %s", service, n, code, b)
	}
}

type decision struct {
	Time     time.Time `json:"time"`
	Action   string    `json:"action"`
	Guard    string    `json:"guard"`
	Reason   string    `json:"reason"`
	From     int       `json:"from"`
	To       int       `json:"to"`
	Outcome  string    `json:"outcome"`
	Finished time.Time `json:"finished"`
	Votes    []struct {
		Metric string `json:"metric"`
		Vote   string `json:"vote"`
	} `json:"votes"`
}

func (d *decision) String() string {
	s := fmt.Sprintf("%s %s %d→%d", d.Time.Format("15:04:05.000"), d.Action, d.From, d.To)
	if d.Guard != "" {
		s += " [" + d.Guard + "]"
	}
	if d.Outcome != "" {
		s += " " + d.Outcome
	}
	return s + ": " + d.Reason
}

// decisions returns the service's latest decisions, newest first.
func (p *devProcess) decisions(t *testing.T, service string) []decision {
	t.Helper()
	code, b := p.get(t, "/api/v1/decisions?limit=1000&service="+url.QueryEscape(service), true)
	if code != http.StatusOK {
		t.Fatalf("GET /api/v1/decisions: %d %s", code, b)
	}
	var body struct {
		Decisions []decision `json:"decisions"`
	}
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("decisions JSON: %v: %s", err, b)
	}
	return body.Decisions
}

// findDecision returns the oldest decision of ds (newest first) that
// matches, or nil.
func findDecision(ds []decision, match func(decision) bool) *decision {
	for i := len(ds) - 1; i >= 0; i-- {
		if match(ds[i]) {
			return &ds[i]
		}
	}
	return nil
}

// waitDecision waits a few seconds for a decision that matches: an
// executed decision is stored once the orchestrator has finished, a moment
// after the registry shows the result.
func (p *devProcess) waitDecision(t *testing.T, service string, match func(decision) bool) *decision {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if d := findDecision(p.decisions(t, service), match); d != nil || time.Now().After(deadline) {
			return d
		}
	}
}

func formatDecisions(ds []decision) string {
	var b strings.Builder
	for i := len(ds) - 1; i >= 0; i-- {
		fmt.Fprintln(&b, ds[i].String())
	}
	return b.String()
}

// waitObserved waits until kplane has evaluated the service on a measured
// QPS (not a missing one), keeping Prometheus's targets current meanwhile.
func waitObserved(t *testing.T, p *devProcess, targets *targetSync, service string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		targets.sync(t, p.instances(t))
		ds := p.decisions(t, service)
		if findDecision(ds, func(d decision) bool {
			return len(d.Votes) > 0 && d.Votes[0].Metric == "qps" && d.Votes[0].Vote != "missing"
		}) != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("kplane has not measured %s's QPS after 30 s:\n%s", service, formatDecisions(ds))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitDemoProcesses waits until exactly n processes of the service run
// under p: drained instances must exit, not linger.
func waitDemoProcesses(t *testing.T, p *devProcess, service string, n int) {
	t.Helper()
	var procs []string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		procs = procs[:0]
		for _, c := range demoChildren(t, p.etcd) {
			// The demo's dev environment only: HAWAII's qa and prod
			// instances run beside it.
			if strings.Contains(c, " ticketing "+service+" ") && strings.Contains(c, " --env dev ") {
				procs = append(procs, c)
			}
		}
		if len(procs) == n {
			return
		}
	}
	t.Errorf("%d %s processes running, want %d:\n%s", len(procs), service, n, strings.Join(procs, "\n"))
}

// loadAverage is the machine's 1, 5 and 15 minute load average, for
// failures that a machine shared with other work can cause: on 2 cores a
// load of 15 makes everything several times slower.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

// served reports whether the instance at addr has answered any request
// other than metric scrapes and health checks.
func served(addr string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return false
	}
	mf := mfs["http_requests_total"]
	if mf == nil {
		return false
	}
	for _, m := range mf.GetMetric() {
		route := ""
		for _, l := range m.GetLabel() {
			if l.GetName() == "route" {
				route = l.GetValue()
			}
		}
		if route != "GET /metrics" && route != "GET /healthz" && m.GetCounter().GetValue() > 0 {
			return true
		}
	}
	return false
}

// Prometheus.

// targetSync keeps a Prometheus's file-discovered targets equal to the
// registered instances. A nil server makes it do nothing.
type targetSync struct {
	prom *promtest.Server
	last []string
}

func newTargetSync(prom *promtest.Server) *targetSync { return &targetSync{prom: prom} }

func (s *targetSync) sync(t *testing.T, services map[string][]instance) {
	t.Helper()
	if s.prom == nil {
		return
	}
	var addrs []string
	for _, ins := range services {
		for _, in := range ins {
			addrs = append(addrs, in.Addr)
		}
	}
	slices.Sort(addrs)
	if s.last != nil && slices.Equal(addrs, s.last) {
		return
	}
	s.prom.SetTargets(t, addrs...)
	s.last = addrs
}

// promQPS asks Prometheus the query scout's Prometheus source runs for
// QPS and returns the service's value.
func promQPS(t *testing.T, prom *promtest.Server, service string) (float64, bool) {
	t.Helper()
	q := scoutprom.DefaultQueries(scoutprom.DefaultCPULimit, scoutprom.DefaultMemoryLimit)[scout.QPS]
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(prom.URL + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		t.Logf("querying Prometheus: %v", err)
		return 0, false
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Logf("Prometheus answer: %v", err)
		return 0, false
	}
	for _, r := range body.Data.Result {
		if r.Metric["service"] != service {
			continue
		}
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		return v, err == nil
	}
	return 0, false
}

// forwarder is a TCP forwarder to a Prometheus that may go away and come
// back on another port.
type forwarder struct {
	ln net.Listener
	wg sync.WaitGroup

	mu       sync.Mutex
	upstream string
	conns    map[net.Conn]bool
}

func newForwarder(t *testing.T, upstream string) *forwarder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &forwarder{ln: ln, upstream: upstream, conns: map[net.Conn]bool{}}
	f.wg.Go(f.serve)
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		for c := range f.conns {
			c.Close()
		}
		f.conns = nil // connections accepted from now on are closed at once
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f
}

func (f *forwarder) addr() string { return f.ln.Addr().String() }

func (f *forwarder) setUpstream(addr string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.upstream = addr
}

func (f *forwarder) serve() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.wg.Go(func() { f.forward(c) })
	}
}

// track adds c to the connections the test's end closes, unless it has
// already ended; untrack removes it.
func (f *forwarder) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conns == nil {
		return false
	}
	f.conns[c] = true
	return true
}

func (f *forwarder) untrack(c net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.conns, c)
}

func (f *forwarder) forward(c net.Conn) {
	defer c.Close()
	f.mu.Lock()
	upstream := f.upstream
	f.mu.Unlock()
	u, err := net.DialTimeout("tcp", upstream, time.Second)
	if err != nil {
		return // Prometheus is down: the client sees its connection closed
	}
	defer u.Close()
	defer f.untrack(c)
	defer f.untrack(u)
	if !f.track(c) || !f.track(u) {
		return
	}
	done := make(chan struct{}, 2)
	go func() { io.Copy(u, c); done <- struct{}{} }()
	go func() { io.Copy(c, u); done <- struct{}{} }()
	<-done
	c.Close()
	u.Close()
	<-done
}

// The load generator.

type loadgenReport struct {
	Sent     int            `json:"sent"`
	OK       int            `json:"ok"`
	Rejected int            `json:"rejected"`
	Failed   int            `json:"failed"`
	Canceled int            `json:"canceled"`
	ByStatus map[string]int `json:"by_status"`
	Rate     float64        `json:"rate_per_second"`
}

func (r loadgenReport) String() string {
	return fmt.Sprintf("%d sent, %d ok, %d rejected, %d failed, %d canceled, %.1f req/s %v",
		r.Sent, r.OK, r.Rejected, r.Failed, r.Canceled, r.Rate, r.ByStatus)
}

// loadgenProcess is a `kplane loadgen --service inventory` against p's
// registry.
type loadgenProcess struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr bytes.Buffer
	done   chan struct{}
	err    error
}

func startLoadgen(t *testing.T, p *devProcess, args ...string) *loadgenProcess {
	t.Helper()
	args = append([]string{"loadgen", "--service", "inventory", "--etcd", "http://" + p.etcd, "--json", "--quiet"}, args...)
	l := &loadgenProcess{cmd: exec.Command(kplaneBin, args...), done: make(chan struct{})}
	l.cmd.Stdout, l.cmd.Stderr = &l.stdout, &l.stderr
	if err := l.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { l.err = l.cmd.Wait(); close(l.done) }()
	t.Cleanup(func() {
		if !l.exited() {
			l.cmd.Process.Kill()
			<-l.done
		}
	})
	return l
}

func (l *loadgenProcess) exited() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// report waits for the run to end and returns its summary.
func (l *loadgenProcess) report(t *testing.T) loadgenReport {
	t.Helper()
	select {
	case <-l.done:
	case <-time.After(5 * time.Minute):
		t.Fatalf("kplane loadgen still running")
	}
	var r loadgenReport
	if l.err != nil {
		t.Fatalf("kplane loadgen: %v\n%s%s", l.err, l.stdout.String(), l.stderr.String())
	}
	if err := json.Unmarshal(l.stdout.Bytes(), &r); err != nil {
		t.Fatalf("kplane loadgen summary: %v\n%s%s", err, l.stdout.String(), l.stderr.String())
	}
	return r
}

// stop interrupts the run, as Ctrl-C does, and returns its summary.
func (l *loadgenProcess) stop(t *testing.T) loadgenReport {
	t.Helper()
	if !l.exited() {
		l.cmd.Process.Signal(syscall.SIGINT)
	}
	return l.report(t)
}
