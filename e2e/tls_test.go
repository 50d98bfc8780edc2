package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kplane/kplane/internal/testtls"
)

// TestDevOverTLS is `kplane dev` with tls: on its listener, as
// docs/security.md describes it: the banner shows https://, the API
// answers over TLS to a client trusting the test CA, and the demo's own
// spans reach kplane over https (the demo trusts the listener's
// certificate file): a check-in at the demo's checkpoint is found as one
// trace across checkpoint and inventory by GET /api/v1/traces/{id}.
func TestDevOverTLS(t *testing.T) {
	begin := time.Now()
	certs := testtls.Generate(t)
	dataDir := t.TempDir()
	cfg := filepath.Join(t.TempDir(), "kplane.yaml")
	if err := os.WriteFile(cfg, []byte("tls:\n  cert_file: "+certs.Cert+"\n  key_file: "+certs.Key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startDevScheme(t, "https", dataDir, "--config", cfg)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: certs.ClientConfig(t)}}
	get := func(path string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", p.url+path, nil)
		req.Header.Set("Authorization", "Bearer "+p.token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s over https: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	// Plain HTTP is not served on the TLS listener.
	if resp, err := http.Get("http://" + strings.TrimPrefix(p.url, "https://") + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain http://…/healthz answered 200 on the TLS listener")
		}
	}

	// A checkout and a check-in at the demo services (plain http: their
	// own listeners), traced by the demo into kplane over https.
	p.transport = client.Transport
	id := demoCheckin(t, p)

	// The trace, looked up over https with the CA. The demo's exporter
	// batches, so it may take a moment to arrive.
	var tr traceAPI
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, b := get("/api/v1/traces/" + id)
		if code != http.StatusOK {
			t.Fatalf("GET /api/v1/traces/%s: %d %s", id, code, b)
		}
		tr = traceAPI{}
		if err := json.Unmarshal(b, &tr); err != nil {
			t.Fatalf("trace JSON: %v: %s", err, b)
		}
		if tr.Status == "found" && checkinComplete(tr) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("check-in trace %s after 20 s over TLS: status %q, spans %s; want checkpoint's server span, its 2 calls and inventory's 2 server spans",
				id, tr.Status, spanList(tr))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("check-in trace %s found over https: %s", id, spanList(tr))
	if out := p.output(); strings.Contains(out, "does not name") {
		t.Errorf("kplane warned that the certificate does not name the demo's host:\n%s", out)
	}

	p.stop(t)
	if took := time.Since(begin); took > 60*time.Second {
		t.Errorf("took %s, want under 60 s", took.Round(time.Millisecond))
	}
}
