package main

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kplane/kplane/hawaii"
	"github.com/kplane/kplane/headquarter"
	"github.com/kplane/kplane/registry"
	"github.com/kplane/kplane/web"
)

// PipelineConfig configures HAWAII's pipeline: per service, the test jobs
// of alpha and qa (prod is only entered by a person).
//
//	pipeline:
//	  env_timeout: 15m
//	  services:
//	    - service: inventory
//	      dependencies: [checkpoint@1.0.0]
//	      alpha: [{name: smoke, command: [kplane, smoke, --etcd, "http://etcd:2379"]}]
//	      qa:    [{name: smoke, command: [kplane, smoke, --etcd, "http://etcd:2379"]}]
type PipelineConfig struct {
	Services []hawaii.ServicePipeline `yaml:"services"`
	// EnvTimeout is how long an alpha environment may live before the
	// cleaner destroys it, a Go duration; "" means 15m.
	EnvTimeout string `yaml:"env_timeout" env:"KPLANE_PIPELINE_ENV_TIMEOUT"`
}

func (c PipelineConfig) envTimeout() time.Duration {
	d, _ := time.ParseDuration(c.EnvTimeout)
	return d
}

func (c PipelineConfig) validate() error {
	if c.EnvTimeout != "" {
		if d, err := time.ParseDuration(c.EnvTimeout); err != nil || d <= 0 {
			return fmt.Errorf("pipeline.env_timeout %q: want a positive duration, e.g. 15m", c.EnvTimeout)
		}
	}
	seen := map[string]bool{}
	for i, sp := range c.Services {
		if sp.Service == "" {
			return fmt.Errorf("pipeline.services entry %d: service is empty", i+1)
		}
		if seen[sp.Service] {
			return fmt.Errorf("pipeline.services: %s is configured twice", sp.Service)
		}
		seen[sp.Service] = true
		for stage, jobs := range map[string][]hawaii.Job{"alpha": sp.Alpha, "qa": sp.QA} {
			for j, job := range jobs {
				if job.Name == "" || len(job.Command) == 0 {
					return fmt.Errorf("pipeline.services %s: %s job %d needs a name and a command", sp.Service, stage, j+1)
				}
				if job.Timeout < 0 {
					return fmt.Errorf("pipeline.services %s: %s job %s: timeout %s is negative; leave it out for 5m", sp.Service, stage, job.Name, job.Timeout)
				}
			}
		}
	}
	return nil
}

// demoPipeline is kplane dev's pipeline for inventory: alpha and qa run
// `kplane smoke` against the environment's registered instances.
func demoPipeline(exe string, endpoints []string) hawaii.ServicePipeline {
	job := hawaii.Job{Name: "smoke", Timeout: time.Minute,
		Command: []string{exe, "smoke", "--etcd", strings.Join(endpoints, ",")}}
	return hawaii.ServicePipeline{Service: "inventory", Alpha: []hawaii.Job{job}, QA: []hawaii.Job{job}}
}

// pipeline is HAWAII's pipeline as serve runs it: the API on every
// replica, alpha, qa and the cleaner only on the elected leader.
type pipeline struct {
	p      *hawaii.Pipeline
	leader *headquarter.Leader
}

// newPipeline builds the pipeline from cfg; owner is this replica's name
// (replicaName), the runner of the promotions it starts. With the demo on the process
// driver and no pipeline configured for inventory, it adds demoPipeline
// and, in dev, reports the demo builds when there are none.
func newPipeline(ctx context.Context, cfg Config, dev bool, cli *clientv3.Client, store hawaii.Store,
	dep hawaii.Deployer, endpoints []string, owner string, log *slog.Logger) (*pipeline, error) {
	services := slices.Clone(cfg.Pipeline.Services)
	demo := cfg.Demo.Enabled && cfg.Driver != "docker" &&
		!slices.ContainsFunc(services, func(sp hawaii.ServicePipeline) bool { return sp.Service == "inventory" })
	if demo {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("pipeline: locate kplane binary: %w", err)
		}
		services = append(services, demoPipeline(exe, endpoints))
		log.Info("pipeline: demo pipeline for inventory", "alpha", "kplane smoke", "qa", "kplane smoke")
	}
	if len(services) == 0 {
		return nil, nil
	}
	leader, err := headquarter.NewLeader(headquarter.LeaderConfig{Client: cli, Prefix: "/kplane/hawaii/leader",
		Logger: log.With("component", "leader", "election", "hawaii")})
	if err != nil {
		return nil, err
	}
	p, err := hawaii.NewPipeline(hawaii.PipelineConfig{
		Store: store, Deployer: dep, Pipelines: services,
		Logger: log.With("component", "hawaii"), EnvTimeout: cfg.Pipeline.envTimeout(),
		Owner: owner, Fence: pipelineFence(leader),
	})
	if err != nil {
		return nil, err
	}
	if demo && dev {
		if err := seedDemoBuilds(ctx, store, time.Now()); err != nil {
			return nil, fmt.Errorf("demo builds: %w", err)
		}
	}
	return &pipeline{p: p, leader: leader}, nil
}

// pipelineFence is the check before each automatic stage write: this
// replica still holds the pipeline election's term, in etcd.
func pipelineFence(leader *headquarter.Leader) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		err := leader.Leading(ctx)
		if errors.Is(err, headquarter.ErrNotLeader) {
			return fmt.Errorf("%w: %w", hawaii.ErrNotLeader, err)
		}
		return err
	}
}

// run drives alpha, qa and the cleaner while this replica leads.
func (p *pipeline) run(ctx context.Context) error { return p.leader.Run(ctx, p.p.Run) }

// configureWeb gives the console the pipeline, and the build API the
// services with a pipeline as known services.
func (p *pipeline) configureWeb(c *web.Config) {
	if p == nil {
		return
	}
	c.Pipeline = p.p
	known := c.Builds.Known
	c.Builds.Known = func(ctx context.Context) ([]string, error) {
		var names []string
		if known != nil {
			n, err := known(ctx)
			if err != nil {
				return nil, err
			}
			names = n
		}
		return append(names, p.p.Services()...), nil
	}
}

// seedDemoBuilds reports three inventory builds, as CI would, when
// inventory has none: the pipeline then runs alpha and qa on them for
// real, and a newcomer can promote one. A fourth, newest build comes with
// a recorded failed alpha run (seedFailedAlpha), so that the review page
// shows from the first minute what a blocked promotion looks like.
func seedDemoBuilds(ctx context.Context, store hawaii.Store, now time.Time) error {
	have, err := store.Builds(ctx, hawaii.BuildQuery{Service: "inventory", Limit: 1})
	if err != nil || len(have) > 0 {
		return err
	}
	type demo struct {
		version, rev, committer string
		commits                 []string
	}
	demos := []demo{
		{"1.1.0", "3f1c2a9", "alice", []string{"inventory: list events by date", "inventory: index orders by event"}},
		{"1.2.0", "8b7d4e1", "bob", []string{"inventory: idempotent order creation", "ticketing: shorter drain on shutdown"}},
		{"1.3.0", "c45e0f7", "carol", []string{"inventory: check-in returns the seat", "inventory: faster event listing"}},
		{"1.4.0", "e91b3d2", "dave", []string{"inventory: rename GET /events to GET /event", "inventory: shorter order IDs"}},
	}
	for i, d := range demos {
		at := now.Add(time.Duration(i-len(demos)) * 10 * time.Minute)
		var log []hawaii.Commit
		for j, msg := range d.commits {
			log = append(log, hawaii.Commit{ID: fmt.Sprintf("%s%d", d.rev, j), Author: d.committer, Message: msg,
				Time: at.Add(time.Duration(j-len(d.commits)) * time.Minute)})
		}
		b := hawaii.Build{Service: "inventory", Version: d.version, Image: "kplane/inventory:" + d.version,
			SCMRevision: d.rev, Committer: d.committer, Timestamp: at, GUID: "demo-inventory-" + d.version,
			Changelog: log, ReportedAt: now, ReportedBy: "demo"}
		stored, created, err := store.Report(ctx, b)
		if err != nil {
			return err
		}
		if !created {
			continue
		}
		if _, err := store.Audit(ctx, hawaii.Event{Actor: "demo", Action: hawaii.ActionBuildReported,
			Service: stored.Service, BuildID: stored.ID,
			Details: hawaii.Details(map[string]string{"version": stored.Version, "image": stored.Image, "guid": stored.GUID, "scmRevision": stored.SCMRevision}),
		}); err != nil {
			return err
		}
		if i == len(demos)-1 {
			if err := seedFailedAlpha(ctx, store, stored, at); err != nil {
				return err
			}
		}
	}
	return nil
}

// seedFailedAlpha records, for the demo's newest build, the alpha run its
// changelog would cause: the smoke job's "list events" check finds GET
// /events gone. The process driver runs every version from this one
// binary, so the demo cannot run that regression itself (the Docker end
// to end test builds and runs it for real); the record says it is one, and
// the pipeline, which only starts builds whose alpha is pending, leaves it
// as it is.
func seedFailedAlpha(ctx context.Context, store hawaii.Store, b hawaii.Build, at time.Time) error {
	env := hawaii.AlphaEnv(b.ID)
	inst := "inventory-" + env + "-1"
	const why = "recorded by kplane dev for the demo, not run: 1 of 3 tests failed"
	step := func(name string, st hawaii.Status, from, took time.Duration, msg string) hawaii.Step {
		return hawaii.Step{Name: name, Status: st, Started: at.Add(from), Finished: at.Add(from + took), Message: msg}
	}
	rec := hawaii.StageRecord{BuildID: b.ID, Stage: hawaii.StageAlpha, Status: hawaii.StatusFailed,
		Started: at, Finished: at.Add(9 * time.Second), Steps: []hawaii.Step{
			step("create environment "+env, hawaii.StatusPassed, 0, 6*time.Second, ""),
			step("test job smoke", hawaii.StatusFailed, 6*time.Second, 300*time.Millisecond, why),
			step("destroy environment "+env, hawaii.StatusPassed, 6300*time.Millisecond, 2700*time.Millisecond, ""),
		}}
	if _, err := store.SetStage(ctx, rec); err != nil {
		return err
	}
	junit := fmt.Sprintf(`<testsuite name="smoke inventory in %[1]s" tests="3" failures="1">
  <testcase classname="smoke.inventory" name="instances registered" time="0.001"/>
  <testcase classname="smoke.inventory" name="healthz %[2]s" time="0.004"/>
  <testcase classname="smoke.inventory" name="list events %[2]s" time="0.003"><failure message="GET http://127.0.0.1:41873/events: 404 Not Found: 404 page not found"/></testcase>
</testsuite>`, env, inst)
	cases, err := hawaii.ParseJUnit(b.ID, hawaii.StageAlpha, []byte(junit))
	if err != nil {
		return err
	}
	if _, err := store.AddResults(ctx, b.ID, hawaii.StageAlpha, cases); err != nil {
		return err
	}
	_, err = store.Audit(ctx, hawaii.Event{Actor: "demo", Action: hawaii.ActionStageChanged, Service: b.Service, BuildID: b.ID,
		Stage: hawaii.StageAlpha, Details: hawaii.Details(map[string]string{"status": string(hawaii.StatusFailed), "reason": why})})
	return err
}

func newSmokeCmd() *cobra.Command {
	var etcd string
	cmd := &cobra.Command{
		Use:   "smoke",
		Short: "Smoke-test a service's instances in an environment (a pipeline test job)",
		Long: `Check every instance of $KPLANE_SERVICE registered in $KPLANE_ENV: it
answers /healthz with status ok at $KPLANE_VERSION, and an inventory
instance lists its events. Writes JUnit XML to $KPLANE_JUNIT (or stdout)
and exits non-zero when a check fails.`,
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			service, env := os.Getenv("KPLANE_SERVICE"), os.Getenv("KPLANE_ENV")
			if service == "" || env == "" {
				return errors.New("smoke: KPLANE_SERVICE and KPLANE_ENV must be set")
			}
			cli, err := registry.Connect(registry.ConnectConfig{Endpoints: strings.Split(etcd, ",")})
			if err != nil {
				return err
			}
			defer cli.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			resp, err := cli.Get(ctx, registry.DefaultPrefix+service+"/", clientv3.WithPrefix())
			if err != nil {
				return fmt.Errorf("smoke: list %s: %w", service, err)
			}
			var insts []registry.Instance
			for _, kv := range resp.Kvs {
				var in registry.Instance
				if json.Unmarshal(kv.Value, &in) == nil && in.Env == env {
					insts = append(insts, in)
				}
			}
			hc := &http.Client{Timeout: 5 * time.Second}
			suite := smoke(ctx, hc, service, env, os.Getenv("KPLANE_VERSION"), insts)
			out, err := xml.MarshalIndent(suite, "", "  ")
			if err != nil {
				return err
			}
			if path := os.Getenv("KPLANE_JUNIT"); path != "" {
				err = os.WriteFile(path, append([]byte(xml.Header), out...), 0o600)
			} else {
				_, err = cmd.OutOrStdout().Write(append(out, '\n'))
			}
			if err != nil {
				return err
			}
			if suite.Failures > 0 {
				return fmt.Errorf("smoke: %d of %d checks failed", suite.Failures, suite.Tests)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&etcd, "etcd", "127.0.0.1:2379", "etcd endpoints of the registry, comma-separated")
	return cmd
}

type junitSuite struct {
	XMLName  xml.Name    `xml:"testsuite"`
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
}

// smoke checks the instances and returns the JUnit suite of the checks.
func smoke(ctx context.Context, hc *http.Client, service, env, version string, insts []registry.Instance) junitSuite {
	s := junitSuite{Name: "smoke " + service + " in " + env}
	check := func(name string, fn func() error) {
		start := time.Now()
		c := junitCase{Name: name, Classname: "smoke." + service}
		if err := fn(); err != nil {
			c.Failure = &junitFailure{Message: err.Error()}
			s.Failures++
		}
		c.Time = fmt.Sprintf("%.3f", time.Since(start).Seconds())
		s.Cases = append(s.Cases, c)
		s.Tests++
	}
	check("instances registered", func() error {
		if len(insts) == 0 {
			return fmt.Errorf("no instance of %s is registered in %s", service, env)
		}
		return nil
	})
	for _, in := range insts {
		check("healthz "+in.ID, func() error {
			var h struct{ Status, Version string }
			if err := getJSON(ctx, hc, "http://"+in.Addr+"/healthz", &h); err != nil {
				return err
			}
			if h.Status != "ok" {
				return fmt.Errorf("status %q, want ok", h.Status)
			}
			if version != "" && h.Version != version {
				return fmt.Errorf("runs version %q, want %q", h.Version, version)
			}
			return nil
		})
		if service == "inventory" {
			check("list events "+in.ID, func() error {
				var events any
				return getJSON(ctx, hc, "http://"+in.Addr+"/events", &events)
			})
		}
	}
	return s
}

func getJSON(ctx context.Context, hc *http.Client, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}
