package e2e

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/kplane/kplane/internal/dockertest"
	"github.com/kplane/kplane/signalman/docker"
)

// TestHawaiiEndToEnd is HAWAII for real, on this machine's Docker engine:
// `kplane dev --driver docker` with a pipeline for inventory whose alpha
// and qa job is `kplane smoke` against the environment's containers. CI
// reports two builds of inventory, each an image built offline FROM
// scratch, one signed GitHub-style and one with Standard Webhooks.
//
//   - 2.0.0 passes alpha (its throwaway environment's container runs while
//     the job runs, the job's JUnit is stored, the environment is gone
//     afterwards) and QA, and a releaser promotes it to prod with
//     `kplane promote`, after which prod runs it.
//   - 2.1.0 is built from a source tree with a real regression (GET
//     /events was renamed to GET /event), so the smoke job's "list events"
//     check fails in alpha; the promote API refuses with the blocked
//     reasons and the review page says why.
func TestHawaiiEndToEnd(t *testing.T) {
	cli := dockertest.Client(t)
	deadline := time.Now().Add(8 * time.Minute)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()

	// The images. The good one is the kplane binary this package built
	// (CGO_ENABLED=0); it is also tagged as the dev demo's own image so
	// that kplane dev does not build it again. The bad one is kplane
	// built with an overlay of inventory's routes: the regression.
	good, err := os.ReadFile(kplaneBin)
	if err != nil {
		t.Fatal(err)
	}
	bad := buildRegression(t)
	sum := sha256.Sum256(good)
	demoTag := "kplane-demo:" + hex.EncodeToString(sum[:6])
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	repo := "kplane-e2e-inventory-" + hex.EncodeToString(suffix)
	buildImage(ctx, t, cli, good, demoTag, repo+":1.0.0", repo+":2.0.0")
	buildImage(ctx, t, cli, bad, repo+":2.1.0")

	envs := []string{"dev", "qa", "prod", "alpha-b1", "alpha-b2"}
	for _, env := range envs {
		if n := len(containers(ctx, t, cli, env)); n > 0 {
			t.Skipf("%d containers of environment %s exist already (another kplane dev --driver docker?)", n, env)
		}
		dockertest.CleanupManaged(t, cli, env)
	}

	dataDir := t.TempDir()
	seen := t.TempDir()
	etcd := freePort(t)
	ghSecret := "github-e2e-secret-" + hex.EncodeToString(suffix)
	swKey := make([]byte, 32)
	_, _ = rand.Read(swKey)
	swSecret := "whsec_" + base64.StdEncoding.EncodeToString(swKey)
	// The job notes which containers of its environment run while it
	// runs, then smoke-tests them.
	job := fmt.Sprintf(`docker ps --filter "label=%s=$KPLANE_ENV" --format '{{.Names}}' > %q/$KPLANE_ENV.txt; exec %q smoke --etcd http://%s`,
		docker.LabelEnv, seen, kplaneBin, etcd)
	cfg := fmt.Sprintf(`
demo:
  inventory: 1
  checkpoint: 1
  images:
    inventory: "%s:{version}"
autoscaler:
  enabled: false
builds:
  webhook_secrets: ["github:%s", "standard:%s"]
pipeline:
  env_timeout: 10m
  services:
    - service: inventory
      alpha: [{name: smoke, timeout: 1m, command: [sh, -c, %q]}]
      qa:    [{name: smoke, timeout: 1m, command: [sh, -c, %q]}]
`, repo, ghSecret, swSecret, job, job)
	cfgPath := filepath.Join(t.TempDir(), "kplane.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startDev(t, dataDir, "--driver", "docker", "--config", cfgPath, "--etcd-listen", etcd)
	if n := len(containers(ctx, t, cli, "dev")); n != 2 {
		t.Fatalf("%d containers in env dev, want the demo's inventory and checkpoint", n)
	}

	// A releaser who is not the committer.
	create := exec.Command(kplaneBin, "user", "create", "--data-dir", dataDir, "--name", "rita", "--role", "releaser", "--password-stdin")
	create.Stdin = strings.NewReader("rita-password-e2e\n")
	if out, err := create.CombinedOutput(); err != nil {
		t.Fatalf("kplane user create: %v\n%s", err, out)
	}
	out, err := exec.Command(kplaneBin, "token", "create", "--data-dir", dataDir, "--user", "rita").Output()
	if err != nil {
		t.Fatalf("kplane token create: %v", err)
	}
	rita := strings.TrimSpace(string(out))

	// CI reports both builds, signed.
	report := func(version, committer string, sign func(req *http.Request, body []byte)) int64 {
		t.Helper()
		body, _ := json.Marshal(map[string]any{
			"service": "inventory", "version": version, "image": repo + ":" + version,
			"scmRevision": "rev-" + version, "committer": committer, "timestamp": time.Now().UTC().Format(time.RFC3339),
			"guid":      "e2e-" + hex.EncodeToString(suffix) + "-" + version,
			"changelog": []map[string]string{{"id": "c" + version, "author": committer, "message": "inventory " + version}},
		})
		req, _ := http.NewRequestWithContext(ctx, "POST", p.url+"/api/v1/builds", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		sign(req, body)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("report %s: %d %s", version, resp.StatusCode, b)
		}
		var v struct{ ID int64 }
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		return v.ID
	}
	green := report("2.0.0", "alice", func(req *http.Request, body []byte) {
		m := hmac.New(sha256.New, []byte(ghSecret))
		m.Write(body)
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(m.Sum(nil)))
	})
	red := report("2.1.0", "bob", func(req *http.Request, body []byte) {
		id, ts := "msg_e2e_"+hex.EncodeToString(suffix), strconv.FormatInt(time.Now().Unix(), 10)
		m := hmac.New(sha256.New, swKey)
		m.Write([]byte(id + "." + ts + "." + string(body)))
		req.Header.Set("webhook-id", id)
		req.Header.Set("webhook-timestamp", ts)
		req.Header.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)))
	})
	if green != 1 || red != 2 {
		t.Fatalf("build IDs %d and %d, want 1 and 2 on a fresh data dir", green, red)
	}

	// 2.0.0 through alpha and QA.
	b := waitStage(t, p, green, "qa", deadline)
	if st := b.stage("alpha"); st.Status != "passed" {
		t.Fatalf("alpha of 2.0.0 %s: %+v", st.Status, st.Steps)
	}
	if st := b.stage("qa"); st.Status != "passed" {
		t.Fatalf("QA of 2.0.0 %s: %+v", st.Status, st.Steps)
	}
	if got := readSeen(t, seen, "alpha-b1"); !slices.Contains(got, "kplane-inventory-alpha-b1-1") {
		t.Errorf("containers of alpha-b1 while its job ran: %v, want kplane-inventory-alpha-b1-1", got)
	}
	if got := readSeen(t, seen, "qa"); !slices.Contains(got, "kplane-inventory-qa-1") {
		t.Errorf("containers of qa while its job ran: %v, want kplane-inventory-qa-1", got)
	}
	checkResults(t, b, "alpha", "passed")
	checkResults(t, b, "qa", "passed")
	if n := len(containers(ctx, t, cli, "alpha-b1")); n != 0 {
		t.Errorf("%d containers of alpha-b1 left after alpha", n)
	}
	if st := b.stage("alpha"); !slices.ContainsFunc(st.Steps, func(s stepJSON) bool {
		return strings.HasPrefix(s.Name, "destroy environment alpha-b1") && s.Status == "passed"
	}) {
		t.Errorf("alpha steps lack a passed destroy of alpha-b1: %+v", st.Steps)
	}

	// 2.1.0 fails alpha on the regression.
	b2 := waitStage(t, p, red, "alpha", deadline)
	if st := b2.stage("alpha"); st.Status != "failed" {
		t.Fatalf("alpha of 2.1.0 %s, want failed: %+v", st.Status, st.Steps)
	}
	failed := checkResults(t, b2, "alpha", "failed")
	if !strings.Contains(failed, "list events") || !strings.Contains(failed, "404") {
		t.Errorf("the failed case should be list events answering 404: %s", failed)
	}
	if n := len(containers(ctx, t, cli, "alpha-b2")); n != 0 {
		t.Errorf("%d containers of alpha-b2 left after its failed alpha", n)
	}

	// The releaser promotes 2.0.0 with the CLI, which follows the rollout.
	promote := exec.CommandContext(ctx, kplaneBin, "promote", strconv.FormatInt(green, 10), "--to", "prod", "--addr", p.url, "--token", rita)
	if out, err := promote.CombinedOutput(); err != nil {
		t.Fatalf("kplane promote: %v\n%s", err, out)
	} else {
		t.Logf("kplane promote:\n%s", out)
	}
	b = waitStage(t, p, green, "prod", deadline)
	if st := b.stage("prod"); st.Status != "passed" {
		t.Fatalf("prod of 2.0.0 %s: %+v", st.Status, st.Steps)
	}
	prod := containers(ctx, t, cli, "prod")
	if len(prod) != 1 || prod[0].Labels[docker.LabelVersion] != "2.0.0" || prod[0].Image != repo+":2.0.0" {
		t.Errorf("prod containers %+v, want one running %s:2.0.0", prod, repo)
	}

	// 2.1.0 cannot be promoted: the API says why.
	code, body := p.send(t, "POST", fmt.Sprintf("/api/v1/builds/%d/promote", red), `{"to": "prod"}`)
	var refused struct {
		Code     string `json:"code"`
		Blockers []struct{ Code, Message string }
	}
	_ = json.Unmarshal(body, &refused)
	codes := []string{}
	for _, bl := range refused.Blockers {
		codes = append(codes, bl.Code)
	}
	if code != http.StatusConflict || !slices.Contains(codes, "alpha_not_green") || !slices.Contains(codes, "qa_not_green") {
		t.Errorf("promote 2.1.0: %d %s; want 409 with alpha_not_green and qa_not_green", code, body)
	}

	// And the review page says why, before anyone clicks.
	page := p.page(t, rita, fmt.Sprintf("/builds/%d/review", red))
	for _, want := range []string{"Promotion is blocked", "alpha is failed", "Disabled:", "list events", "404"} {
		if !strings.Contains(page, want) {
			t.Errorf("review page of 2.1.0 lacks %q", want)
		}
	}
	if !regexp.MustCompile(`<button[^>]*id="promote"[^>]*disabled`).MatchString(page) {
		t.Error("review page of 2.1.0 offers an enabled Promote button")
	}

	// Tear down what the pipeline deployed, as an operator would; kplane
	// dev removes its own dev environment when it stops.
	for _, env := range []string{"qa", "prod"} {
		if code, body := p.send(t, "DELETE", "/api/v1/envs/"+env, ""); code != http.StatusNoContent {
			t.Errorf("DELETE /api/v1/envs/%s: %d %s", env, code, body)
		}
	}
	p.stop(t)
	for _, env := range envs {
		if n := len(containers(context.Background(), t, cli, env)); n != 0 {
			t.Errorf("%d containers of %s left after kplane stopped", n, env)
		}
	}
}

// buildRegression builds kplane (CGO_ENABLED=0) from the tree with one
// change a developer might make: inventory's GET /events route renamed.
func buildRegression(t *testing.T) []byte {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join("..", "examples", "ticketing", "inventory", "http.go")
	code, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(code), `"GET /events", h.listEvents`, `"GET /event", h.listEvents`, 1)
	if broken == string(code) {
		t.Fatal("inventory's GET /events route moved: update the regression")
	}
	patched := filepath.Join(dir, "http.go")
	abs, _ := filepath.Abs(src)
	overlay, _ := json.Marshal(map[string]any{"Replace": map[string]string{abs: patched}})
	if err := os.WriteFile(patched, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "overlay.json"), overlay, 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "kplane")
	cmd := exec.Command("go", "build", "-overlay", filepath.Join(dir, "overlay.json"), "-o", bin, "../cmd/kplane")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the regression: %v\n%s", err, out)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// buildImage builds a FROM scratch image of a kplane binary under the
// first tag, adds the others, and removes them all at the end.
func buildImage(ctx context.Context, t *testing.T, cli *client.Client, bin []byte, tags ...string) {
	t.Helper()
	start := time.Now()
	err := docker.BuildImage(ctx, cli, docker.ImageConfig{Tag: tags[0], Binary: bin, Name: "kplane",
		Labels: map[string]string{docker.LabelManaged: "true", "kplane.test": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range tags[1:] {
		if err := cli.ImageTag(ctx, tags[0], tag); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("built image %s in %s", strings.Join(tags, ", "), time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, tag := range tags {
			if _, err := cli.ImageRemove(ctx, tag, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil && !client.IsErrNotFound(err) {
				t.Errorf("remove image %s: %v", tag, err)
			}
		}
	})
}

// containers lists the running kplane containers of env.
func containers(ctx context.Context, t *testing.T, cli *client.Client, env string) []container.Summary {
	t.Helper()
	f := filters.NewArgs(filters.Arg("label", docker.LabelManaged+"=true"), filters.Arg("label", docker.LabelEnv+"="+env))
	cs, err := cli.ContainerList(ctx, container.ListOptions{Filters: f})
	if err != nil {
		t.Fatalf("list containers of %s: %v", env, err)
	}
	return cs
}

func readSeen(t *testing.T, dir, env string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, env+".txt"))
	if err != nil {
		t.Errorf("the job of %s did not run: %v", env, err)
		return nil
	}
	return strings.Fields(string(b))
}

type stepJSON struct {
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

type buildJSON struct {
	ID      int64  `json:"id"`
	Version string `json:"version"`
	Stages  []struct {
		Stage  string     `json:"stage"`
		Status string     `json:"status"`
		Steps  []stepJSON `json:"steps"`
	} `json:"stages"`
	Results []struct {
		Stage   string `json:"stage"`
		Name    string `json:"name"`
		Status  string `json:"status"`
		Message string `json:"message"`
	} `json:"results"`
}

type stageJSON = struct {
	Stage  string     `json:"stage"`
	Status string     `json:"status"`
	Steps  []stepJSON `json:"steps"`
}

func (b buildJSON) stage(name string) stageJSON {
	for _, s := range b.Stages {
		if s.Stage == name {
			return s
		}
	}
	return stageJSON{}
}

// waitStage polls a build until stage has ended (passed, failed or
// cancelled).
func waitStage(t *testing.T, p *devProcess, id int64, stage string, deadline time.Time) buildJSON {
	t.Helper()
	for {
		code, body := p.get(t, fmt.Sprintf("/api/v1/builds/%d", id), true)
		if code != http.StatusOK {
			t.Fatalf("GET build %d: %d %s", id, code, body)
		}
		var b buildJSON
		if err := json.Unmarshal(body, &b); err != nil {
			t.Fatal(err)
		}
		switch b.stage(stage).Status {
		case "passed", "failed", "cancelled":
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("build %d: %s still %s at the deadline: %s", id, stage, b.stage(stage).Status, body)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// checkResults asserts the stage's stored JUnit cases exist and that at
// least one has status want; it returns the failed cases, one per line.
func checkResults(t *testing.T, b buildJSON, stage, want string) string {
	t.Helper()
	var n int
	var found bool
	var failed strings.Builder
	for _, r := range b.Results {
		if r.Stage != stage {
			continue
		}
		n++
		found = found || r.Status == want
		if r.Status == "failed" || r.Status == "error" {
			fmt.Fprintf(&failed, "%s: %s\n", r.Name, r.Message)
		}
	}
	if n == 0 || !found {
		t.Errorf("build %s %s: %d stored test cases, none %s: %+v", b.Version, stage, n, want, b.Results)
	}
	return failed.String()
}

// page signs a browser in with token and returns the HTML of path.
func (p *devProcess) page(t *testing.T, token, path string) string {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	resp, err := c.Get(p.url + "/login")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("login form without a CSRF field:\n%s", b)
	}
	resp, err = c.PostForm(p.url+"/login", url.Values{"csrf": {string(m[1])}, "token": {token}, "next": {path}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != path {
		t.Fatalf("sign in and open %s: %d at %s:\n%.2000s", path, resp.StatusCode, resp.Request.URL, b)
	}
	return string(b)
}

// TestDevDemoBuildsReview is a newcomer's first minute with HAWAII in
// kplane dev: the demo's builds are there, and the newest one's review
// lists why it cannot be promoted, before anything has run.
func TestDevDemoBuildsReview(t *testing.T) {
	p := startDev(t, t.TempDir())
	code, body := p.get(t, "/api/v1/builds?service=inventory", true)
	var list struct {
		Builds []buildJSON `json:"builds"`
	}
	if err := json.Unmarshal(body, &list); err != nil || code != http.StatusOK {
		t.Fatalf("GET builds: %d %s", code, body)
	}
	if len(list.Builds) != 4 || list.Builds[0].Version != "1.4.0" || list.Builds[0].stage("alpha").Status != "failed" {
		t.Fatalf("demo builds: %s; want 4, the newest 1.4.0 with a failed alpha", body)
	}
	page := p.page(t, p.token, fmt.Sprintf("/builds/%d/review", list.Builds[0].ID))
	for _, want := range []string{"Promotion is blocked", "alpha is failed", "QA is pending", "list events", "404"} {
		if !strings.Contains(page, want) {
			t.Errorf("review page of the demo's 1.4.0 lacks %q", want)
		}
	}
	builds := p.page(t, p.token, "/builds")
	for _, want := range []string{"1.1.0", "1.2.0", "1.3.0", "1.4.0", `data-env="prod"`} {
		if !strings.Contains(builds, want) {
			t.Errorf("builds page lacks %q", want)
		}
	}
}
