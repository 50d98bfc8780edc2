package web

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kplane/kplane/auth"
	"github.com/kplane/kplane/hawaii"
	"github.com/kplane/kplane/internal/browsertest"
	"github.com/kplane/kplane/signalman"
)

// steppedDeployer is instantDeployer whose deploys record a rolling
// update's steps, so the review page has steps to stream.
type steppedDeployer struct{ *instantDeployer }

func (f steppedDeployer) Deploy(_ context.Context, r signalman.DeployRequest) (signalman.Deploy, error) {
	return f.Begin(r)
}

func (f steppedDeployer) Begin(r signalman.DeployRequest) (signalman.Deploy, error) {
	d, err := f.instantDeployer.Begin(r)
	if err != nil {
		return d, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	d.Steps = []signalman.Step{
		{Time: now, Action: "start", Instance: r.Target.Service + "-new1", Version: r.Version, Outcome: "healthy"},
		{Time: now, Action: "stop", Instance: r.Target.Service + "-old1", Outcome: "drained"},
	}
	f.d[d.ID] = d
	return d, nil
}

// newReviewEnv stores three inventory builds: 1.0.0 in prod (one failing
// test), 1.1.0 green in alpha and QA with that test fixed, and 1.2.0
// failing alpha.
func newReviewEnv(t *testing.T) (e *env, green, red int64) {
	t.Helper()
	ctx := t.Context()
	store := hawaii.NewMemoryStore(nil)
	dep := steppedDeployer{&instantDeployer{d: map[string]signalman.Deploy{}}}
	p, err := hawaii.NewPipeline(hawaii.PipelineConfig{Store: store, Deployer: dep,
		Pipelines: []hawaii.ServicePipeline{{Service: "inventory"}}})
	if err != nil {
		t.Fatal(err)
	}
	rep := func(version, committer string, st hawaii.Status, failing bool, log ...hawaii.Commit) int64 {
		b, _, err := store.Report(ctx, hawaii.Build{Service: "inventory", Version: version, Image: "registry.local/inventory:" + version,
			SCMRevision: "rev" + version, Committer: committer, Timestamp: time.Now().UTC(), GUID: "ci-" + version, Changelog: log})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []hawaii.Stage{hawaii.StageAlpha, hawaii.StageQA} {
			steps := []hawaii.Step{{Name: "deploy", Status: hawaii.StatusPassed, Started: time.Now(), Finished: time.Now().Add(1200 * time.Millisecond)},
				{Name: "api-tests", Status: st, Started: time.Now(), Finished: time.Now().Add(3 * time.Second)}}
			if _, err := store.SetStage(ctx, hawaii.StageRecord{BuildID: b.ID, Stage: s, Status: st, Steps: steps}); err != nil {
				t.Fatal(err)
			}
		}
		reserve := hawaii.TestCase{BuildID: b.ID, Stage: hawaii.StageAlpha, Suite: "api", Class: "Inventory", Name: "TestReserve", Status: hawaii.TestPassed}
		if failing {
			reserve.Status, reserve.Message = hawaii.TestFailed, "reserve 2 seats: got 409, want 201"
		}
		cases := []hawaii.TestCase{reserve, {BuildID: b.ID, Stage: hawaii.StageAlpha, Suite: "api", Class: "Inventory", Name: "TestList", Status: hawaii.TestPassed}}
		if _, err := store.AddResults(ctx, b.ID, hawaii.StageAlpha, cases); err != nil {
			t.Fatal(err)
		}
		return b.ID
	}
	prod := rep("1.0.0", "dana", hawaii.StatusPassed, true)
	green = rep("1.1.0", "dana", hawaii.StatusPassed, false, hawaii.Commit{ID: "a1b2c3d", Author: "dana", Message: "fix double booking on reserve"})
	red = rep("1.2.0", "dana", hawaii.StatusFailed, true)
	if _, err := p.Promote(ctx, prod, auth.Identity{User: "admin", Role: auth.Admin}, false); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := store.Build(ctx, prod)
		if err != nil {
			t.Fatal(err)
		}
		if v.Stage(hawaii.StageProd).Status == hawaii.StatusPassed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("seeding prod: prod stage %s", v.Stage(hawaii.StageProd).Status)
		}
		time.Sleep(10 * time.Millisecond)
	}
	e = newEnv(t, func(c *Config) {
		c.Now = nil
		c.Pipeline = p
		c.Deploys = dep
		c.Builds = BuildAPI{Store: store}
	})
	return e, green, red
}

// TestBrowserReviewAndPromote is a release: a releaser signs in, opens the
// green build from the list, reviews it (the fixed test, the commit, the
// image change), promotes it and watches the rollout finish; a developer
// sees the button disabled and why.
func TestBrowserReviewAndPromote(t *testing.T) {
	e, green, _ := newReviewEnv(t)
	ctx := browsertest.New(t)
	signIn := func(token string) {
		t.Helper()
		err := chromedp.Run(ctx,
			chromedp.Navigate(e.ts.URL+"/builds"),
			chromedp.WaitVisible("#token", chromedp.ByID),
			chromedp.SendKeys("#token", token, chromedp.ByID),
			chromedp.Click("#token-form button", chromedp.ByQuery),
			chromedp.WaitVisible(`table.hw-builds`, chromedp.ByQuery),
		)
		if err != nil {
			t.Fatal(err)
		}
	}
	signIn(e.tokens[auth.Releaser])

	var list, prodNow string
	err := chromedp.Run(ctx,
		chromedp.Text(`table.hw-builds`, &list, chromedp.ByQuery),
		chromedp.Text(`[data-env="prod"]`, &prodNow, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(prodNow, "1.0.0") || strings.Index(list, "1.2.0") > strings.Index(list, "1.1.0") {
		t.Fatalf("builds page: prod shows %q; list (want newest first):\n%s", prodNow, list)
	}
	browsertest.Screenshot(t, ctx, "hawaii-builds.png")

	var failure string
	err = chromedp.Run(ctx,
		chromedp.Click(fmt.Sprintf(`tr[data-build="%d"] a.hw-version`, green), chromedp.ByQuery),
		chromedp.WaitVisible(`[data-testid="review-link"]`, chromedp.ByQuery),
		chromedp.Navigate(fmt.Sprintf("%s/builds/%d", e.ts.URL, green-1)),
		chromedp.WaitVisible(`.hw-case-fail .hw-msg`, chromedp.ByQuery),
		chromedp.Text(`.hw-case-fail .hw-msg`, &failure, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(failure, "got 409, want 201") {
		t.Fatalf("prod build's failure, expanded: %q", failure)
	}

	var fixed, commits, image, decision string
	err = chromedp.Run(ctx,
		chromedp.Navigate(fmt.Sprintf("%s/builds/%d/review", e.ts.URL, green)),
		chromedp.WaitVisible(`#promote`, chromedp.ByID),
		chromedp.Text(`[data-testid="fixed"]`, &fixed, chromedp.ByQuery),
		chromedp.Text(`[data-testid="commits"]`, &commits, chromedp.ByQuery),
		chromedp.Text(`.hw-image`, &image, chromedp.ByQuery),
		chromedp.Text(`[data-testid="decision"] h2`, &decision, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(fixed, "TestReserve") || !strings.Contains(commits, "fix double booking") ||
		!strings.Contains(image, "inventory:1.0.0") || !strings.Contains(image, "inventory:1.1.0") || decision != "Ready to promote" {
		t.Fatalf("review: decision %q, fixed %q, commits %q, image %q", decision, fixed, commits, image)
	}
	browsertest.Screenshot(t, ctx, "hawaii-review.png")

	var state, steps string
	err = chromedp.Run(ctx,
		chromedp.Click(`#confirm`, chromedp.ByID),
		chromedp.Click(`#promote`, chromedp.ByID),
		chromedp.WaitVisible(`#rollout[data-done="true"]`, chromedp.ByQuery),
		chromedp.Text(`#rollout-state`, &state, chromedp.ByID),
		chromedp.Text(`#rollout-steps`, &steps, chromedp.ByID),
	)
	if err != nil {
		t.Fatal(err)
	}
	if state != string(signalman.DeploySucceeded) || !strings.Contains(steps, "inventory-new1") || !strings.Contains(steps, "drained") {
		t.Fatalf("rollout: state %q, steps %q", state, steps)
	}
	browsertest.Screenshot(t, ctx, "hawaii-rollout.png")

	// A developer sees the review of the next build but may not promote it.
	err = chromedp.Run(ctx, chromedp.Click(`.account button[type="submit"]`, chromedp.ByQuery), chromedp.WaitVisible("#token", chromedp.ByID))
	if err != nil {
		t.Fatal(err)
	}
	signIn(e.tokens[auth.Developer])
	var disabled bool
	var why string
	err = chromedp.Run(ctx,
		chromedp.Navigate(fmt.Sprintf("%s/builds/%d/review", e.ts.URL, green+1)),
		chromedp.WaitVisible(`[data-testid="disabled-reason"]`, chromedp.ByQuery),
		chromedp.Evaluate(`document.getElementById("promote").disabled`, &disabled),
		chromedp.Text(`[data-testid="disabled-reason"]`, &why, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !disabled || !strings.Contains(why, "needs the releaser role") || !strings.Contains(why, "alpha is failed") {
		t.Fatalf("developer: button disabled %v, reason %q", disabled, why)
	}
	browsertest.Screenshot(t, ctx, "hawaii-developer.png")
}
