package e2e

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestSecretsNeverLogged drives a real `kplane dev` through everything
// that handles a secret — creating a user with a password and a token,
// a build report signed with a webhook secret, signing in through the
// form — with debug logging on, then looks for each secret in everything
// kplane wrote: its stdout and stderr, the logs of its instances, and
// every file in its data dir (where the password and token must be
// stored only as hashes). It also reads back every API that describes
// those objects and checks none echoes a secret.
func TestSecretsNeverLogged(t *testing.T) {
	const webhookSecret = "e2e-webhook-secret-do-not-log-0123456789"
	t.Setenv("KPLANE_BUILDS_WEBHOOK_SECRETS", "ci:"+webhookSecret)
	t.Setenv("KPLANE_LOG_LEVEL", "debug")
	dataDir := t.TempDir()
	p := startDev(t, dataDir)

	// A user with a password, and a token for it, through the admin API.
	const password = "e2e-password-do-not-log-4f9a"
	if status, body := p.send(t, "POST", "/api/v1/users", `{"name":"erin","password":"`+password+`","role":"developer"}`); status != http.StatusCreated {
		t.Fatalf("create user: %d %s", status, body)
	}
	status, body := p.send(t, "POST", "/api/v1/tokens", `{"user":"erin","description":"e2e"}`)
	var created struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(body, &created); err != nil || status != http.StatusCreated || len(created.Token) < 20 {
		t.Fatalf("create token: %d %s", status, body)
	}
	token := created.Token

	// The token works, and a build report signed with the webhook secret
	// is accepted.
	report := fmt.Sprintf(`{"service":"inventory","version":"9.9.9","image":"inventory:9.9.9","scmRevision":"abc123","committer":"erin","timestamp":%q,"guid":"e2e-secrets-1"}`,
		time.Now().UTC().Format(time.RFC3339))
	mac := hmac.New(sha256.New, []byte(webhookSecret))
	mac.Write([]byte(report))
	req, _ := http.NewRequest("POST", p.url+"/api/v1/builds", strings.NewReader(report))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	req.Header.Set("X-GitHub-Delivery", "e2e-delivery-1")
	resp := roundTrip(t, req)
	if resp.status != http.StatusCreated {
		t.Fatalf("signed build report: %d %s", resp.status, resp.body)
	}
	req, _ = http.NewRequest("GET", p.url+"/api/v1/builds?service=inventory", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if r := roundTrip(t, req); r.status != http.StatusOK {
		t.Fatalf("GET builds with the new token: %d %s", r.status, r.body)
	}

	// Sign in through the form with the password, and fail once with a
	// wrong one (a failed sign-in must not log what was typed either).
	session := formLogin(t, p.url, "erin", password)
	if session == "" {
		t.Fatal("signing in with the password gave no session")
	}
	if formLogin(t, p.url, "erin", password+"-wrong") != "" {
		t.Fatal("a wrong password gave a session")
	}

	// Nothing that describes these objects echoes a secret.
	secrets := map[string]string{"password": password, "API token": token, "webhook secret": webhookSecret, "session id": session}
	for _, path := range []string{"/api/v1/users", "/api/v1/builds?service=inventory", "/api/v1/audit", "/api/v1/services", "/metrics", "/readyz", "/healthz"} {
		status, body := p.send(t, "GET", path, "")
		if status != http.StatusOK {
			t.Errorf("GET %s: %d", path, status)
		}
		for what, s := range secrets {
			if bytes.Contains(body, []byte(s)) {
				t.Errorf("GET %s shows the %s", path, what)
			}
		}
	}

	p.stop(t)

	// kplane's own output: the dev admin token is printed in the banner by
	// design (like vault server -dev), and nowhere else.
	out := p.output()
	for what, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("kplane's output shows the %s:\n%s", what, linesWith(out, s))
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, p.token) && !regexp.MustCompile(`^\s+(Token|Try):`).MatchString(line) {
			t.Errorf("the dev admin token appears outside the banner: %s", line)
		}
	}
	if !strings.Contains(out, "level=DEBUG") {
		t.Errorf("no debug lines in the output: the test did not see kplane's most verbose logging")
	}

	// Every file kplane wrote: instance logs, the SQLite stores (with their
	// WALs), etcd's data. Passwords and tokens are stored hashed, the
	// webhook secret only lives in memory.
	var files int
	err := filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		for what, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds the %s in plain text", strings.TrimPrefix(path, dataDir), what)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 3 {
		t.Fatalf("only %d files in the data dir: the store and logs were not where expected", files)
	}
}

type httpResult struct {
	status int
	body   string
}

func roundTrip(t *testing.T, req *http.Request) httpResult {
	t.Helper()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return httpResult{resp.StatusCode, string(b)}
}

// formLogin signs in through the login form as a browser does and returns
// the session cookie's value ("" when the sign-in failed).
func formLogin(t *testing.T, base, user, password string) string {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(base + "/login")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF field on the login page")
	}
	resp, err = c.PostForm(base+"/login", url.Values{"csrf": {string(m[1])}, "username": {user}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, ck := range resp.Cookies() {
		if ck.Name == "kplane_session" && ck.Value != "" {
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("sign-in answered %d with a session", resp.StatusCode)
			}
			return ck.Value
		}
	}
	return ""
}

func linesWith(out, s string) string {
	var b strings.Builder
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, s) {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
