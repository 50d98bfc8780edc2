package web

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kplane/kplane/internal/browsertest"
	"github.com/kplane/kplane/registry"
)

// TestBrowserSignInAndLiveServices is what an operator does after
// `kplane dev`: open the console, paste the printed token, see the demo
// services, and watch a new instance appear without reloading.
func TestBrowserSignInAndLiveServices(t *testing.T) {
	now := time.Now()
	e := newEnv(t, func(c *Config) { c.Now = nil })
	e.source.Set(
		registry.Service{Name: "inventory", Instances: []registry.Instance{
			{ID: "inventory-7f3a", Name: "inventory", Addr: "127.0.0.1:41001", Version: "1.4.2", Env: "dev", Tags: []string{"demo", "ticketing"}, Started: now.Add(-3*time.Minute - 12*time.Second)},
			{ID: "inventory-91c2", Name: "inventory", Addr: "127.0.0.1:41002", Version: "1.4.2", Env: "dev", Tags: []string{"demo", "ticketing"}, Started: now.Add(-2*time.Hour - 5*time.Minute)},
		}},
		registry.Service{Name: "checkpoint", Instances: []registry.Instance{
			{ID: "checkpoint-0b44", Name: "checkpoint", Addr: "127.0.0.1:42001", Version: "0.9.0", Env: "dev", Tags: []string{"demo"}, Started: now.Add(-47 * time.Second)},
		}},
	)
	token, err := e.auth.EnsureAdmin(t.Context(), "admin", "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := browsertest.New(t)

	var body string
	err = chromedp.Run(ctx,
		// Going to a console page first must land on the login form.
		chromedp.Navigate(e.ts.URL+"/services"),
		chromedp.WaitVisible("#token", chromedp.ByID),
	)
	if err != nil {
		t.Fatal(err)
	}
	browsertest.Screenshot(t, ctx, "login.png")
	err = chromedp.Run(ctx,
		chromedp.SendKeys("#token", token, chromedp.ByID),
		chromedp.Click("#token-form button", chromedp.ByQuery),
		chromedp.WaitVisible(`[data-service="checkpoint"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#live[data-state="live"]`, chromedp.ByQuery),
		chromedp.Text("body", &body, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"inventory", "checkpoint", "inventory-7f3a", "inventory-91c2", "checkpoint-0b44", "127.0.0.1:42001", "admin", "Live"} {
		if !strings.Contains(body, want) {
			t.Errorf("services page lacks %q", want)
		}
	}
	browsertest.Screenshot(t, ctx, "services.png")

	// Mark the page: a reload would lose the mark.
	var marked bool
	if err := chromedp.Run(ctx, chromedp.Evaluate(`window.kplaneNoReload = true`, &marked)); err != nil {
		t.Fatal(err)
	}
	svcs := e.source.Services()
	svcs = append(append([]registry.Service(nil), svcs...), registry.Service{Name: "payments", Instances: []registry.Instance{
		{ID: "payments-1d9e", Name: "payments", Addr: "127.0.0.1:43001", Version: "2.0.0-rc1", Env: "qa", Started: now},
	}})
	e.source.Set(svcs...)

	var count string
	var stillMarked bool
	err = chromedp.Run(ctx,
		chromedp.WaitVisible(`tr[data-instance="payments-1d9e"]`, chromedp.ByQuery),
		chromedp.Text(`[data-testid="service-count"]`, &count, chromedp.ByQuery),
		chromedp.Evaluate(`window.kplaneNoReload === true`, &stillMarked),
	)
	if err != nil {
		t.Fatal(err)
	}
	if count != "3" || !stillMarked {
		t.Fatalf("after the live update: service count %q, page kept (no reload) %v; want 3 and true", count, stillMarked)
	}
	browsertest.Screenshot(t, ctx, "services-live.png")

	// The navigation reaches the pages of features still to come, which say so.
	var coming string
	err = chromedp.Run(ctx,
		chromedp.Click(`nav a[href="/builds"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`.coming`, chromedp.ByQuery),
		chromedp.Text(`.coming h2`, &coming, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(coming, "Build promotion (HAWAII) arrives with its own issue") {
		t.Fatalf("builds page says %q", coming)
	}
	browsertest.Screenshot(t, ctx, "builds.png")

	// Sign out through the sidebar button.
	err = chromedp.Run(ctx,
		chromedp.Click(`.account button[type="submit"]`, chromedp.ByQuery),
		chromedp.WaitVisible("#token", chromedp.ByID),
	)
	if err != nil {
		t.Fatal(err)
	}
}
