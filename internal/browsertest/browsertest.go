// Package browsertest starts a headless Chromium for tests that drive
// kplane's console the way a person does (chromedp, classic API).
//
// A test calls New to get a browser context and runs chromedp actions on
// it; the browser and its profile are removed when the test ends. Without
// Chromium in PATH the test skips locally and fails in CI
// (testenv.Missing). The package only launches and captures; assertions
// belong to the test.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kplane/kplane/internal/testenv"
)

// Timeout bounds a whole browser session, so that a hung page fails the
// test instead of hanging the run.
const Timeout = 90 * time.Second

// binaries are the names Chromium goes by, Debian's first.
var binaries = []string{"chromium", "chromium-browser"}

// New starts a headless Chromium with a fresh profile in t.TempDir and
// returns a chromedp context for it. The browser is closed at the end of
// the test.
func New(t testing.TB) context.Context {
	t.Helper()
	var path string
	for _, name := range binaries {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		testenv.Missing(t, "chromium not in PATH (apt-get install -y chromium)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true), // tests run as root in containers
		chromedp.Flag("disable-gpu", true),
		// Without these Chromium keeps calling home, which floods a closed
		// network and slows every test.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 900),
	}
	// Not t.Context(): it is cancelled before cleanups run, which would kill
	// Chromium while it still writes into the profile directory that
	// t.TempDir is about to remove. The cleanup below closes it in order.
	timeoutCtx, cancelTimeout := context.WithTimeout(context.WithoutCancel(t.Context()), Timeout)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(timeoutCtx, opts...)
	ctx, cancelBrowser := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		_ = chromedp.Cancel(ctx) // closes the browser gracefully and waits for it
		cancelBrowser()
		cancelAlloc()
		cancelTimeout()
	})
	// Start the browser now, so a broken Chromium fails here with a clear
	// message rather than inside the first action.
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("start chromium %s: %v", path, err)
	}
	return ctx
}

// Screenshot saves a full-page PNG of the current page to path, for a
// developer to look at. With KPLANE_SCREENSHOT_DIR set, a relative path is
// placed there instead of the test's temp dir, so it survives the run.
func Screenshot(t testing.TB, ctx context.Context, path string) string {
	t.Helper()
	if !filepath.IsAbs(path) {
		dir := os.Getenv("KPLANE_SCREENSHOT_DIR")
		if dir == "" {
			dir = t.TempDir()
		}
		path = filepath.Join(dir, path)
	}
	var png []byte
	// Quality 100 makes chromedp capture PNG instead of JPEG.
	if err := chromedp.Run(ctx, chromedp.FullScreenshot(&png, 100)); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	t.Logf("screenshot: %s", path)
	return path
}
