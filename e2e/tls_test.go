package e2e

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
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
	p := startDevTLS(t, dataDir, "--config", cfg)
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

	// The demo registered: its addresses, read through the API over TLS.
	addrs := map[string]string{}
	deadline := time.Now().Add(20 * time.Second)
	for addrs["inventory"] == "" || addrs["checkpoint"] == "" {
		if time.Now().After(deadline) {
			t.Fatalf("no inventory and checkpoint instances registered after 20 s: %v", addrs)
		}
		code, b := get("/api/v1/services")
		var body servicesBody
		if code == http.StatusOK && json.Unmarshal(b, &body) == nil {
			for _, s := range body.Services {
				if len(s.Instances) > 0 && s.Instances[0].Addr != "" {
					addrs[s.Name] = s.Instances[0].Addr
				}
			}
		}
		if addrs["inventory"] == "" || addrs["checkpoint"] == "" {
			time.Sleep(200 * time.Millisecond)
		}
	}

	// A checkout and a check-in at the demo services (plain http: their
	// own listeners), traced by the demo into kplane over https.
	demo := &http.Client{Timeout: 10 * time.Second}
	post := func(url, body string) (*http.Response, []byte) {
		t.Helper()
		resp, err := demo.Post(url, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatalf("POST %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, b := post("http://"+addrs["inventory"]+"/events/flash-sale/orders", `{"quantity":1,"buyer":"e2e-tls"}`)
	var order struct {
		Tickets []string `json:"tickets"`
	}
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(b, &order) != nil || len(order.Tickets) != 1 {
		t.Fatalf("buying a ticket from inventory at %s: %d %s", addrs["inventory"], resp.StatusCode, b)
	}
	resp, b = post("http://"+addrs["checkpoint"]+"/checkins", `{"code":"`+order.Tickets[0]+`"}`)
	id := resp.Header.Get("X-Trace-Id")
	if resp.StatusCode != http.StatusOK || len(id) != 32 {
		t.Fatalf("checking in %s at checkpoint %s: %d, X-Trace-Id %q: %s", order.Tickets[0], addrs["checkpoint"], resp.StatusCode, id, b)
	}

	// The trace, looked up over https with the CA. The demo's exporter
	// batches, so it may take a moment to arrive.
	var tr traceAPI
	deadline = time.Now().Add(20 * time.Second)
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

// startDevTLS is startDev for a listener with tls: set: it waits for the
// banner's https:// console address.
func startDevTLS(t *testing.T, dataDir string, extra ...string) *devProcess {
	t.Helper()
	listen, etcd := freePort(t), freePort(t)
	token := "e2e-admin-token-0123456789"
	args := append([]string{"dev",
		"--listen", listen,
		"--data-dir", dataDir,
		"--dev-token", token,
		"--etcd-listen", etcd,
		"--etcd-peer-listen", freePort(t),
	}, extra...)
	p := &devProcess{cmd: exec.Command(kplaneBin, args...), dataDir: dataDir, etcd: etcd, token: token, exited: make(chan struct{})}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = lockedWriter{p}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	banner := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		var url string
		for sc.Scan() {
			line := sc.Text()
			lockedWriter{p}.Write([]byte(line + "\n"))
			if m := regexp.MustCompile(`Console:\s+(\S+)`).FindStringSubmatch(line); m != nil {
				url = m[1]
			}
			if strings.Contains(line, "Ctrl-C stops everything") {
				banner <- url
			}
		}
	}()
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-p.exited:
			case <-time.After(30 * time.Second):
				p.cmd.Process.Kill()
				<-p.exited
			}
		}
		if t.Failed() {
			t.Logf("kplane dev output:\n%s", p.output())
		}
	})
	select {
	case p.url = <-banner:
	case <-p.exited:
		t.Fatalf("kplane dev exited before printing its banner: %v\n%s", p.waitErr, p.output())
	case <-time.After(45 * time.Second):
		t.Fatalf("no banner after 45 s:\n%s", p.output())
	}
	if p.url != "https://"+listen {
		t.Fatalf("banner URL %s, want https://%s", p.url, listen)
	}
	return p
}
