package web

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kplane/kplane/auth"
	"github.com/kplane/kplane/hawaii"
	"github.com/kplane/kplane/internal/browsertest"
)

// newNoPipelineEnv stores one inventory build with 120 alpha test cases,
// one failing, and serves it without a pipeline.
func newNoPipelineEnv(t *testing.T) (*env, hawaii.Build) {
	t.Helper()
	store := hawaii.NewMemoryStore(nil)
	b, _, err := store.Report(t.Context(), hawaii.Build{Service: "inventory", Version: "3.0.0", Image: "shop/inventory:3.0.0",
		SCMRevision: "abc1234", Committer: "erin", Timestamp: time.Now().UTC(), GUID: "np-1"})
	if err != nil {
		t.Fatal(err)
	}
	var cases []hawaii.TestCase
	for i := range 120 {
		c := hawaii.TestCase{BuildID: b.ID, Stage: hawaii.StageAlpha, Class: "api", Name: fmt.Sprintf("Test%03d", i), Status: hawaii.TestPassed}
		if i == 117 {
			c.Status, c.Message = hawaii.TestFailed, "oversold by one"
		}
		cases = append(cases, c)
	}
	if _, err := store.AddResults(t.Context(), b.ID, hawaii.StageAlpha, cases); err != nil {
		t.Fatal(err)
	}
	return newEnv(t, func(c *Config) { c.Builds = BuildAPI{Store: store} }), b
}

// TestBrowserBuildTestsPaged: the build page opens on the failure,
// expanded, and its page control walks the passing cases.
func TestBrowserBuildTestsPaged(t *testing.T) {
	e, b := newNoPipelineEnv(t)
	ctx := browsertest.New(t)
	var first, second, pager string
	err := chromedp.Run(ctx,
		chromedp.Navigate(fmt.Sprintf("%s/builds/%d", e.ts.URL, b.ID)),
		chromedp.WaitVisible("#token", chromedp.ByID),
		chromedp.SendKeys("#token", e.tokens[auth.Viewer], chromedp.ByID),
		chromedp.Click("#token-form button", chromedp.ByQuery),
		chromedp.WaitVisible(`.hw-case-fail details[open] .hw-msg`, chromedp.ByQuery),
		chromedp.Text(`.hw-cases li:first-child`, &first, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("opening the build page: %v", err)
	}
	browsertest.Screenshot(t, ctx, "hawaii-build-tests.png")
	err = chromedp.Run(ctx,
		chromedp.Click(`[data-testid="tests-next"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`[data-case="Test049"]`, chromedp.ByQuery),
		chromedp.Text(`.hw-cases li:first-child`, &second, chromedp.ByQuery),
		chromedp.Text(`[data-testid="test-pager"]`, &pager, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("next page of tests: %v", err)
	}
	if !strings.Contains(first, "Test117") || !strings.Contains(first, "oversold by one") ||
		!strings.Contains(second, "Test049") || !strings.Contains(pager, "51–100 of 120") {
		t.Fatalf("first case %q, second page starts %q, pager %q", first, second, pager)
	}
}

// TestBuildPagesWithoutPipeline: kplane server with no pipeline still
// lists and shows the builds CI reports, paged test results included;
// reviewing and promoting say the pipeline is not configured.
func TestBuildPagesWithoutPipeline(t *testing.T) {
	e, b := newNoPipelineEnv(t)
	dev := e.signIn(e.tokens[auth.Developer])
	for name, tc := range map[string]struct {
		path   string
		status int
		want   []string
		not    []string
	}{
		"list":        {"/builds", http.StatusOK, []string{"3.0.0", "No pipeline is configured"}, []string{"/review"}},
		"build":       {fmt.Sprintf("/builds/%d", b.ID), http.StatusOK, []string{"Test117", "oversold by one", "1–50 of 120", "page 1 of 3", `href="?page=2#tests"`, "1 failing"}, []string{"Review for prod", "Test050"}},
		"second page": {fmt.Sprintf("/builds/%d?page=2", b.ID), http.StatusOK, []string{"Test049", "51–100 of 120", "← Previous"}, []string{"Test117"}},
		"stage tab":   {fmt.Sprintf("/builds/%d?tests=qa", b.ID), http.StatusOK, []string{"No test results in qa yet"}, nil},
		"bad page":    {fmt.Sprintf("/builds/%d?page=0", b.ID), http.StatusBadRequest, nil, nil},
		"review":      {fmt.Sprintf("/builds/%d/review", b.ID), http.StatusNotFound, []string{"The pipeline is not configured"}, nil},
	} {
		t.Run(name, func(t *testing.T) {
			r := e.do(dev, "GET", tc.path, "", nil)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d:\n%s", r.status, tc.status, r.body)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.body, w) {
					t.Errorf("page lacks %q:\n%s", w, r.body)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(r.body, w) {
					t.Errorf("page has %q", w)
				}
			}
		})
	}
	review := e.do(dev, "GET", fmt.Sprintf("/builds/%d", b.ID), "", nil)
	r := e.postForm(dev, fmt.Sprintf("/builds/%d/promote", b.ID), url.Values{"csrf": {formCSRF(t, review.body)}})
	if r.status != http.StatusNotFound || !strings.Contains(r.body, "The pipeline is not configured") {
		t.Fatalf("promote without a pipeline = %d:\n%s", r.status, r.body)
	}
}
