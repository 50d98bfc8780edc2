package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kplane/kplane/internal/browsertest"
)

// TestConsoleShowsDemoLive is the quick start as a person does it: run
// kplane dev, open the console, paste the printed token, see the demo
// services; then an instance dies and the page changes without a reload.
func TestConsoleShowsDemoLive(t *testing.T) {
	dataDir := t.TempDir()
	p := startDev(t, dataDir)
	ctx := browsertest.New(t)

	var body string
	err := chromedp.Run(ctx,
		chromedp.Navigate(p.url),
		chromedp.WaitVisible("#token", chromedp.ByID),
		chromedp.SendKeys("#token", p.token, chromedp.ByID),
		chromedp.Click("#token-form button", chromedp.ByQuery),
		chromedp.WaitVisible(`[data-service="checkpoint"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#live[data-state="live"]`, chromedp.ByQuery),
		chromedp.Text("body", &body, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("signing in and opening the services page: %v", err)
	}
	for _, want := range []string{"inventory-dev-1", "inventory-dev-2", "checkpoint-dev-1", "checkpoint-dev-2", "1.0.0"} {
		if !strings.Contains(body, want) {
			t.Errorf("services page lacks %q", want)
		}
	}
	browsertest.Screenshot(t, ctx, "e2e-services.png")

	// Stop one checkpoint instance behind kplane's back (SIGTERM: it
	// deregisters at once). The page must drop it live; signalman then
	// restarts it, and it must come back on the page.
	pid := demoPID(t, p.etcd, "checkpoint-dev-2")
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = chromedp.Run(ctx,
		chromedp.WaitNotPresent(`[data-instance="checkpoint-dev-2"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`[data-instance="checkpoint-dev-2"]`, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("the page did not follow the instance going and coming back: %v", err)
	}
}

// demoPID finds the process of a demo instance by its --id argument among
// the children of the kplane dev whose etcd listens on etcdAddr.
func demoPID(t *testing.T, etcdAddr, id string) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, p := range procs {
			b, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			args := strings.Split(string(b), "\x00")
			if !strings.Contains(string(b), etcdAddr) {
				continue
			}
			for i, a := range args {
				if a == "--id" && i+1 < len(args) && args[i+1] == id {
					pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
					return pid
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no process for instance %s", id)
	return 0
}
