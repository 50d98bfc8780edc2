package web

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/kplane/kplane/auth"
	"github.com/kplane/kplane/internal/browsertest"
	"github.com/kplane/kplane/signalman"
)

func TestDeployPagesHTTP(t *testing.T) {
	e, m := newDeployEnv(t)
	r := e.do(nil, "POST", "/api/v1/deploys", e.tokens[auth.Developer], strings.NewReader(`{"service":"inventory","env":"qa","version":"2.0"}`))
	var dep signalman.Deploy
	if err := json.Unmarshal([]byte(r.body), &dep); err != nil || r.status != http.StatusAccepted {
		t.Fatalf("deploy = %d %s", r.status, r.body)
	}
	viewer := e.signIn(e.tokens[auth.Viewer])
	for name, tc := range map[string]struct {
		path   string
		status int
		want   []string
	}{
		"list":           {"/deploys", http.StatusOK, []string{`data-deploy="` + dep.ID + `"`, "running", "1.0 →", "2.0", "1 running"}},
		"filtered out":   {"/deploys?env=prod", http.StatusOK, []string{"No deploys in prod yet"}},
		"deploy":         {"/deploys/" + dep.ID, http.StatusOK, []string{`data-events="/api/v1/deploys/` + dep.ID + `/events"`, "deploy-steps", "max surge 1"}},
		"unknown deploy": {"/deploys/d-nope", http.StatusNotFound, nil},
	} {
		t.Run(name, func(t *testing.T) {
			r := e.do(viewer, "GET", tc.path, "", nil)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d:\n%s", r.status, tc.status, r.body)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.body, w) {
					t.Errorf("page lacks %q", w)
				}
			}
		})
	}
	close(m.release)
}

func TestDeployPageWithoutDeployer(t *testing.T) {
	e := newEnv(t)
	r := e.do(e.signIn(e.tokens[auth.Viewer]), "GET", "/deploys", "", nil)
	if r.status != http.StatusOK || !strings.Contains(r.body, "No orchestrator is configured") {
		t.Fatalf("deploys page without a deployer = %d:\n%s", r.status, r.body)
	}
}

// TestBrowserDeployLive: an engineer opens the Deploys page from the
// navigation, picks the running deploy and watches its steps arrive until
// it succeeds, without reloading.
func TestBrowserDeployLive(t *testing.T) {
	e, m := newDeployEnv(t)
	r := e.do(nil, "POST", "/api/v1/deploys", e.tokens[auth.Developer], strings.NewReader(`{"service":"inventory","env":"qa","version":"2.0"}`))
	var dep signalman.Deploy
	if err := json.Unmarshal([]byte(r.body), &dep); err != nil || r.status != http.StatusAccepted {
		t.Fatalf("deploy = %d %s", r.status, r.body)
	}
	ctx := browsertest.New(t)
	var state string
	err := chromedp.Run(ctx,
		chromedp.Navigate(e.ts.URL+"/services"),
		chromedp.WaitVisible("#token", chromedp.ByID),
		chromedp.SendKeys("#token", e.tokens[auth.Viewer], chromedp.ByID),
		chromedp.Click("#token-form button", chromedp.ByQuery),
		chromedp.WaitVisible(`nav a[href="/deploys"]`, chromedp.ByQuery),
		chromedp.Click(`nav a[href="/deploys"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`tr[data-deploy="`+dep.ID+`"][data-state="running"]`, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("opening the deploys page: %v", err)
	}
	browsertest.Screenshot(t, ctx, "deploys.png")
	err = chromedp.Run(ctx,
		chromedp.Click(`tr[data-deploy="`+dep.ID+`"] a`, chromedp.ByQuery),
		chromedp.WaitVisible(`#deploy[data-state="running"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#deploy-steps tr`, chromedp.ByQuery), // the start step
		chromedp.Text("#deploy-state", &state, chromedp.ByID),
	)
	if err != nil || state != "running" {
		t.Fatalf("opening the running deploy: state %q, %v", state, err)
	}
	close(m.release) // the new instance passes its health gate
	var steps, done string
	err = chromedp.Run(ctx,
		chromedp.WaitVisible(`#deploy[data-state="succeeded"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#deploy-done`, chromedp.ByID),
		chromedp.Text("#deploy-steps", &steps, chromedp.ByID),
		chromedp.Text("#deploy-done", &done, chromedp.ByID),
		chromedp.Text("#deploy-state", &state, chromedp.ByID),
	)
	if err != nil {
		t.Fatalf("following the deploy live: %v", err)
	}
	for _, want := range []string{"start", "health", "stop", "inventory-0"} {
		if !strings.Contains(steps, want) {
			t.Errorf("live steps lack %q:\n%s", want, steps)
		}
	}
	if state != "succeeded" || !strings.Contains(done, "Deploy succeeded") {
		t.Errorf("after the deploy: state %q, %q", state, done)
	}
	browsertest.Screenshot(t, ctx, "deploy-live.png")
}
