// Command hawaii measures HAWAII's build list and build page, API and
// HTML, and the review page, with a full store: by default 100,000 builds
// and 5 million test cases (50 per build, a failure in every tenth build)
// in SQLite. The goal is p99 ≤ 100 ms. Results go in docs/benchmarks.md.
//
//	go run ./bench/hawaii [-builds 100000] [-cases 50] [-services 20] [-requests 500] [-db path]
//
// It loads the store through hawaii.SQLStore.Import (the bulk path, 1,000
// builds per transaction), then serves the real web.Server over loopback
// and times sequential GETs with a viewer token: the newest page of one
// service, a deep page (before= the middle of that service's builds), and
// the build page of random builds (build, stages and the first page of
// test cases, failures first); then the same as a signed-in browser gets
// them as HTML, and the review page of a candidate against the build in
// prod (a pipeline whose deployer never deploys: the review only reads). It
// writes only to a temp dir unless -db names a file to keep, and a file
// that already holds builds is reused without loading.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/kplane/kplane/auth"
	"github.com/kplane/kplane/hawaii"
	"github.com/kplane/kplane/internal/sqldb"
	"github.com/kplane/kplane/signalman"
	"github.com/kplane/kplane/web"
)

func main() {
	builds := flag.Int("builds", 100_000, "builds to store")
	cases := flag.Int("cases", 50, "test cases per build")
	services := flag.Int("services", 20, "services the builds belong to")
	requests := flag.Int("requests", 500, "requests per measured route")
	dbPath := flag.String("db", "", "SQLite file to load or reuse (default: a temp dir, removed afterwards)")
	only := flag.String("only", "", "time only the routes whose name contains this")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the timed requests to this file")
	flag.Parse()
	routeFilter, profilePath = *only, *cpuProfile
	if err := run(context.Background(), *builds, *cases, *services, *requests, *dbPath); err != nil {
		fmt.Fprintln(os.Stderr, "bench/hawaii:", err)
		os.Exit(1)
	}
}

var routeFilter, profilePath string

func run(ctx context.Context, nBuilds, nCases, nServices, nRequests int, dbPath string) error {
	if dbPath == "" {
		dir, err := os.MkdirTemp("", "bench-hawaii-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		dbPath = filepath.Join(dir, "kplane.db")
	}
	db, err := sqldb.Open(ctx, dbPath, nil)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := sqldb.Migrate(ctx, db); err != nil {
		return err
	}
	store := hawaii.NewSQLStore(db, nil)
	var have int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM builds`).Scan(&have); err != nil {
		return err
	}
	if have == 0 {
		if err := load(ctx, store, nBuilds, nCases, nServices); err != nil {
			return err
		}
	} else {
		fmt.Printf("reusing %s with %d builds\n", dbPath, have)
	}
	var nBuildsStored, nCasesStored int
	if err := db.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM builds), (SELECT COUNT(*) FROM test_cases)`).Scan(&nBuildsStored, &nCasesStored); err != nil {
		return err
	}
	if fi, err := os.Stat(dbPath); err == nil {
		fmt.Printf("store: %d builds, %d test cases, %.0f MiB\n", nBuildsStored, nCasesStored, float64(fi.Size())/(1<<20))
	}

	a, err := auth.New(db, auth.Config{BcryptCost: bcrypt.MinCost})
	if err != nil {
		return err
	}
	user := fmt.Sprintf("bench-viewer-%d", time.Now().UnixNano())
	if err := a.CreateUser(ctx, user, "bench-password", auth.Viewer); err != nil {
		return err
	}
	token, err := a.CreateToken(ctx, user, "bench", 0)
	if err != nil {
		return err
	}
	sess, err := a.Login(ctx, user, "bench-password")
	if err != nil {
		return err
	}
	pipe, err := hawaii.NewPipeline(hawaii.PipelineConfig{Store: store, Deployer: idleDeployer{}})
	if err != nil {
		return err
	}
	srv, err := web.New(web.Config{Auth: a, Builds: web.BuildAPI{Store: store}, Pipeline: pipe})
	if err != nil {
		return err
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	client := &http.Client{Timeout: 10 * time.Second}

	// The deep page starts in the middle of service-0's builds.
	var svcCount int
	var middle int64
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM builds WHERE service = 'service-0'`).Scan(&svcCount); err != nil {
		return err
	}
	if err := db.QueryRowContext(ctx, `SELECT id FROM builds WHERE service = 'service-0' ORDER BY id DESC LIMIT 1 OFFSET ?`, svcCount/2).Scan(&middle); err != nil {
		return err
	}
	// service-0 went to prod every 50 builds (the first of each 50); the
	// review compares its newest green build with the last of those.
	var newest int64
	if err := db.QueryRowContext(ctx, `SELECT MAX(id) FROM builds WHERE service = 'service-0'`).Scan(&newest); err != nil {
		return err
	}
	released, err := db.QueryContext(ctx, `SELECT id FROM builds WHERE service = 'service-0' ORDER BY id`)
	if err != nil {
		return err
	}
	var prodIDs []int64
	for i := 0; released.Next(); i++ {
		var id int64
		if err := released.Scan(&id); err != nil {
			released.Close()
			return err
		}
		if i%50 == 0 {
			prodIDs = append(prodIDs, id)
		}
	}
	if err := released.Close(); err != nil {
		return err
	}
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, id := range prodIDs {
		at := base.Add(time.Duration(id) * time.Minute).Add(3 * time.Hour)
		if _, err := store.SetStage(ctx, hawaii.StageRecord{BuildID: id, Stage: hawaii.StageProd, Status: hawaii.StatusPassed,
			Started: at, Finished: at.Add(time.Minute)}); err != nil {
			return err
		}
	}
	reviewed := newest
	for id := newest; id > newest-int64(nServices)*50; id -= int64(nServices) {
		// The newest service-0 build whose alpha passed, if one is near.
		v, err := store.Build(ctx, id)
		if err == nil && v.Service == "service-0" && v.Stage(hawaii.StageAlpha).Status == hawaii.StatusPassed {
			reviewed = id
			break
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	routes := []struct {
		name string
		html bool
		path func() string
	}{
		{"list, newest page (50)", false, func() string { return "/api/v1/builds?service=service-0&limit=50" }},
		{"list, deep page (50)", false, func() string {
			return "/api/v1/builds?service=service-0&limit=50&before=" + strconv.FormatInt(middle, 10)
		}},
		{"list, all services (50)", false, func() string { return "/api/v1/builds?limit=50" }},
		{"build page", false, func() string { return "/api/v1/builds/" + strconv.Itoa(1+rng.IntN(nBuildsStored)) }},
		{"HTML list, newest page", true, func() string { return "/builds?service=service-0" }},
		{"HTML list, deep page", true, func() string { return "/builds?service=service-0&before=" + strconv.FormatInt(middle, 10) }},
		{"HTML build page", true, func() string { return "/builds/" + strconv.Itoa(1+rng.IntN(nBuildsStored)) }},
		{"HTML review page", true, func() string { return "/builds/" + strconv.FormatInt(reviewed, 10) + "/review" }},
	}
	if profilePath != "" {
		f, err := os.Create(profilePath)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Printf("%-26s %9s %9s %9s %9s\n", "route", "p50", "p99", "max", "bytes")
	for _, r := range routes {
		if !strings.Contains(r.name, routeFilter) {
			continue
		}
		// Warm up: the first requests page the index in from disk.
		for range 10 {
			cred := token
			if r.html {
				cred = sess.ID
			}
			if _, err := get(ctx, client, ts.URL+r.path(), cred, r.html); err != nil {
				return err
			}
		}
		lat := make([]time.Duration, 0, nRequests)
		var size int
		for range nRequests {
			start := time.Now()
			cred := token
			if r.html {
				cred = sess.ID
			}
			n, err := get(ctx, client, ts.URL+r.path(), cred, r.html)
			if err != nil {
				return err
			}
			lat = append(lat, time.Since(start))
			size = n
		}
		slices.Sort(lat)
		fmt.Printf("%-26s %9s %9s %9s %9d\n", r.name, pct(lat, 50), pct(lat, 99), lat[len(lat)-1].Round(10*time.Microsecond), size)
	}
	return nil
}

// get fetches url with an API token, or as a browser with a session
// cookie when html is set.
func get(ctx context.Context, c *http.Client, url, cred string, html bool) (int, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return 0, err
	}
	if html {
		req.AddCookie(&http.Cookie{Name: "kplane_session", Value: cred})
	} else {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %d", url, resp.StatusCode)
	}
	return int(n), nil
}

func pct(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100
	return sorted[max(i-1, 0)].Round(10 * time.Microsecond)
}

// load stores nBuilds builds, each with nCases test cases in alpha and qa
// and stage records; every tenth build of each service fails one alpha
// case.
func load(ctx context.Context, store *hawaii.SQLStore, nBuilds, nCases, nServices int) error {
	start := time.Now()
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	const batch = 1000
	for done := 0; done < nBuilds; {
		n := min(batch, nBuilds-done)
		ims := make([]hawaii.Imported, n)
		for i := range ims {
			k := done + i
			at := base.Add(time.Duration(k) * time.Minute)
			svc := "service-" + strconv.Itoa(k%nServices)
			b := hawaii.Build{
				Service: svc, Version: fmt.Sprintf("1.%d.%d", k/1000, k%1000), Image: "registry.local/" + svc + ":" + strconv.Itoa(k),
				SCMRevision: fmt.Sprintf("%040x", k), Committer: "dev" + strconv.Itoa(k%37) + "@example.com",
				Timestamp: at, GUID: "bench-" + strconv.Itoa(k), ReportedAt: at, ReportedBy: "webhook:jenkins",
				Changelog: []hawaii.Commit{{ID: fmt.Sprintf("%040x", k), Author: "dev", Message: "change " + strconv.Itoa(k), Time: at}},
			}
			// Every tenth build of each service fails (k%10 alone would
			// fail every build of services 0 and 10 and none of the rest).
			failing := (k/nServices)%10 == 0
			alpha := hawaii.StatusPassed
			if failing {
				alpha = hawaii.StatusFailed
			}
			steps := []hawaii.Step{
				{Name: "create environment", Status: hawaii.StatusPassed, Started: at, Finished: at.Add(3 * time.Second)},
				{Name: "tests", Status: alpha, Started: at.Add(3 * time.Second), Finished: at.Add(40 * time.Second)},
				{Name: "destroy environment", Status: hawaii.StatusPassed, Started: at.Add(40 * time.Second), Finished: at.Add(42 * time.Second)},
			}
			im := hawaii.Imported{Build: b, Stages: []hawaii.StageRecord{{Stage: hawaii.StageAlpha, Status: alpha, Steps: steps, Started: at, Finished: at.Add(42 * time.Second)}}}
			if alpha == hawaii.StatusPassed {
				im.Stages = append(im.Stages, hawaii.StageRecord{Stage: hawaii.StageQA, Status: hawaii.StatusPassed, Started: at.Add(time.Minute), Finished: at.Add(2 * time.Minute)})
			}
			for c := range nCases {
				st, stage := hawaii.TestPassed, hawaii.StageAlpha
				if c >= nCases*3/5 {
					stage = hawaii.StageQA
				}
				msg := ""
				if failing && c == 0 {
					st, msg = hawaii.TestFailed, "expected stock 0, got -1\nat OrderTest.java:42"
				}
				im.Cases = append(im.Cases, hawaii.TestCase{Stage: stage, Suite: svc + ".suite", Class: svc + ".Class" + strconv.Itoa(c%7),
					Name: "Test" + strconv.Itoa(c), Duration: time.Duration(c) * time.Millisecond, Status: st, Message: msg})
			}
			ims[i] = im
		}
		if _, err := store.Import(ctx, ims); err != nil {
			return err
		}
		done += n
		if done%20_000 == 0 || done == nBuilds {
			fmt.Printf("loaded %d builds (%d test cases) in %s\n", done, done*nCases, time.Since(start).Round(time.Second))
		}
	}
	return nil
}

// idleDeployer is the pipeline's deployer in the benchmark: the review
// page only reads, so nothing is ever deployed.
type idleDeployer struct{}

var errIdle = errors.New("bench: no deploys")

func (idleDeployer) Deploy(context.Context, signalman.DeployRequest) (signalman.Deploy, error) {
	return signalman.Deploy{}, errIdle
}
func (idleDeployer) Begin(signalman.DeployRequest) (signalman.Deploy, error) {
	return signalman.Deploy{}, errIdle
}
func (idleDeployer) Get(context.Context, string) (signalman.Deploy, error) {
	return signalman.Deploy{}, errIdle
}
func (idleDeployer) Subscribe(context.Context, string) (<-chan struct{}, func(), error) {
	return nil, nil, errIdle
}
func (idleDeployer) List(context.Context, signalman.Target, int) ([]signalman.Deploy, error) {
	return nil, nil
}
func (idleDeployer) CreateEnv(context.Context, string, []signalman.EnvService) ([]signalman.Deploy, error) {
	return nil, errIdle
}
func (idleDeployer) DestroyEnv(context.Context, string) error { return errIdle }
