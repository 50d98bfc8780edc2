package marathon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/kplane/kplane/signalman"
)

// The parts of Marathon's v2 API the driver reads. Field names follow
// Marathon's published REST API (apps, tasks, deployments).

type app struct {
	ID           string            `json:"id"`
	Version      string            `json:"version"` // of the definition, a timestamp
	Instances    int               `json:"instances"`
	Labels       map[string]string `json:"labels"`
	HealthChecks []json.RawMessage `json:"healthChecks"`
	TasksRunning int               `json:"tasksRunning"`
	TasksHealthy int               `json:"tasksHealthy"`
	Tasks        []task            `json:"tasks"`
	Container    *struct {
		Docker *struct {
			Image string `json:"image"`
		} `json:"docker"`
	} `json:"container"`
}

type task struct {
	ID        string    `json:"id"`
	State     string    `json:"state"` // Marathon ≥ 1.0; older ones omit it
	StartedAt time.Time `json:"startedAt"`
	Version   string    `json:"version"` // of the app definition the task runs
}

type deployment struct {
	ID           string   `json:"id"`
	AffectedApps []string `json:"affectedApps"`
}

type deploymentRef struct {
	DeploymentID string `json:"deploymentId"`
	Version      string `json:"version"`
}

type apiError struct {
	Message     string `json:"message"`
	Deployments []struct {
		ID string `json:"id"`
	} `json:"deployments"`
}

// running returns the tasks that have started, oldest first.
func (a *app) running() []task {
	var out []task
	for _, t := range a.Tasks {
		if t.StartedAt.IsZero() || (t.State != "" && t.State != "TASK_RUNNING") {
			continue
		}
		out = append(out, t)
	}
	slices.SortFunc(out, func(x, y task) int {
		if c := x.StartedAt.Compare(y.StartedAt); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	return out
}

// converged reports whether the app runs exactly its instance count and,
// when it has health checks, all of them are healthy.
func (a *app) converged() bool {
	if a.TasksRunning != a.Instances || len(a.running()) != a.Instances {
		return false
	}
	return len(a.HealthChecks) == 0 || a.TasksHealthy == a.Instances
}

// version is the app's kplane.version label, or else its image tag.
func (a *app) version() string {
	if v := a.Labels["kplane.version"]; v != "" {
		return v
	}
	if a.Container != nil && a.Container.Docker != nil {
		img := a.Container.Docker.Image
		if i := strings.LastIndex(img, ":"); i > strings.LastIndex(img, "/") {
			return img[i+1:]
		}
	}
	return ""
}

type client struct {
	base *url.URL
	cfg  Config
}

func newClient(cfg Config) (*client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("marathon: URL %q is not an http(s) URL", cfg.URL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	return &client{base: u, cfg: cfg}, nil
}

func (c *client) appURL(id string, q url.Values) string {
	segs := strings.Split(strings.Trim(id, "/"), "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	u := *c.base
	u.Path = c.base.Path + "/v2/apps/" + strings.Join(segs, "/")
	u.RawPath = ""
	u.RawQuery = q.Encode()
	return u.String()
}

func (c *client) app(ctx context.Context, id string) (*app, error) {
	q := url.Values{"embed": {"app.tasks", "app.counts"}}
	var out struct {
		App *app `json:"app"`
	}
	if err := c.do(ctx, http.MethodGet, c.appURL(id, q), nil, &out); err != nil {
		return nil, err
	}
	if out.App == nil {
		return nil, fmt.Errorf("marathon: GET app %s: response has no app", id)
	}
	return out.App, nil
}

// appRaw returns the app, and its fields as Marathon sent them (for a
// PUT that must keep what the driver does not model).
func (c *client) appRaw(ctx context.Context, id string) (*app, map[string]json.RawMessage, error) {
	q := url.Values{"embed": {"app.tasks", "app.counts"}}
	var out struct {
		App json.RawMessage `json:"app"`
	}
	if err := c.do(ctx, http.MethodGet, c.appURL(id, q), nil, &out); err != nil {
		return nil, nil, err
	}
	var a app
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(out.App, &a); err != nil || json.Unmarshal(out.App, &raw) != nil || raw == nil {
		return nil, nil, fmt.Errorf("marathon: GET app %s: response has no app", id)
	}
	return &a, raw, nil
}

// update sends PUT /v2/apps/{id} with body and returns the deployment.
func (c *client) update(ctx context.Context, id string, body any, force bool) (deploymentRef, error) {
	var q url.Values
	if force {
		q = url.Values{"force": {"true"}}
	}
	data, err := json.Marshal(body)
	if err != nil {
		return deploymentRef{}, fmt.Errorf("marathon: PUT app %s: %w", id, err)
	}
	var out deploymentRef
	if err := c.do(ctx, http.MethodPut, c.appURL(id, q), data, &out); err != nil {
		return out, err
	}
	if out.DeploymentID == "" {
		return out, fmt.Errorf("marathon: PUT app %s: response has no deploymentId", id)
	}
	return out, nil
}

// errDeploymentGone means the deployment to cancel is over already.
var errDeploymentGone = errors.New("deployment gone")

// cancelDeployment is DELETE /v2/deployments/{id}: Marathon cancels the
// deployment and starts one back to the previous definition, which it
// returns. errDeploymentGone if the deployment is over.
func (c *client) cancelDeployment(ctx context.Context, id string) (deploymentRef, error) {
	u := *c.base
	u.Path = c.base.Path + "/v2/deployments/" + url.PathEscape(id)
	var out deploymentRef
	err := c.do(ctx, http.MethodDelete, u.String(), nil, &out)
	if errors.Is(err, signalman.ErrUnknownService) {
		return out, fmt.Errorf("%w: %s", errDeploymentGone, id)
	}
	if err == nil && out.DeploymentID == "" {
		err = fmt.Errorf("marathon: DELETE deployment %s: response has no deploymentId", id)
	}
	return out, err
}

func (c *client) scale(ctx context.Context, id string, n int, force bool) (deploymentRef, error) {
	var q url.Values
	if force {
		q = url.Values{"force": {"true"}}
	}
	body, _ := json.Marshal(struct {
		Instances int `json:"instances"`
	}{n})
	var out deploymentRef
	if err := c.do(ctx, http.MethodPut, c.appURL(id, q), body, &out); err != nil {
		return out, err
	}
	if out.DeploymentID == "" {
		return out, fmt.Errorf("marathon: PUT app %s: response has no deploymentId", id)
	}
	return out, nil
}

func (c *client) deployments(ctx context.Context) ([]deployment, error) {
	u := *c.base
	u.Path = c.base.Path + "/v2/deployments"
	var out []deployment
	err := c.do(ctx, http.MethodGet, u.String(), nil, &out)
	return out, err
}

// do sends one request and decodes a 2xx JSON answer into out. Marathon's
// errors are mapped: 404 to ErrUnknownService, 409 to ErrBusy.
func (c *client) do(ctx context.Context, method, u string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return fmt.Errorf("marathon: %s %s: %w", method, u, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	switch {
	case c.cfg.Token != "":
		req.Header.Set("Authorization", "token="+c.cfg.Token)
	case c.cfg.Username != "":
		req.SetBasicAuth(c.cfg.Username, c.cfg.Password)
	}
	resp, err := c.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("marathon: %s %s: %w", method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return fmt.Errorf("marathon: %s %s: reading response: %w", method, req.URL.Path, err)
	}
	if resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("marathon: %s %s: decoding response: %w", method, req.URL.Path, err)
		}
		return nil
	}
	var ae apiError
	_ = json.Unmarshal(data, &ae)
	msg := ae.Message
	if msg == "" {
		msg = strings.TrimSpace(string(data))
		if len(msg) > 200 {
			msg = msg[:200] + "..."
		}
	}
	switch resp.StatusCode {
	case http.StatusNotFound:
		return fmt.Errorf("%w: marathon: %s", signalman.ErrUnknownService, msg)
	case http.StatusConflict:
		ids := make([]string, len(ae.Deployments))
		for i, d := range ae.Deployments {
			ids[i] = d.ID
		}
		return fmt.Errorf("%w: marathon: app locked by deployments %v (set force to override)", signalman.ErrBusy, ids)
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("marathon: %s %s: not authorized (HTTP %d): %s", method, req.URL.Path, resp.StatusCode, msg)
	default:
		return fmt.Errorf("marathon: %s %s: HTTP %d: %s", method, req.URL.Path, resp.StatusCode, msg)
	}
}
