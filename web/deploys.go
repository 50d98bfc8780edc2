package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/kplane/kplane/auth"
	"github.com/kplane/kplane/signalman"
)

// Deploys runs rolling deploys and tears environments down;
// *signalman.Deployer implements it. Begin returns at once with the
// running deploy; Subscribe signals (coalesced) after each new step.
type Deploys interface {
	Begin(req signalman.DeployRequest) (signalman.Deploy, error)
	Get(ctx context.Context, id string) (signalman.Deploy, error)
	List(ctx context.Context, t signalman.Target, limit int) ([]signalman.Deploy, error)
	Subscribe(ctx context.Context, id string) (<-chan struct{}, func(), error)
	DestroyEnv(ctx context.Context, env string) error
}

// ProdEnv is the environment whose deploys need the releaser role and
// whose teardown needs an admin.
const ProdEnv = "prod"

const (
	defaultDeployLimit = 50
	maxDeployLimit     = 500
)

// deployRoutes registers the deploy API when a deployer is configured.
//
// Roles: a developer may deploy to any environment but prod, which needs
// a releaser (the same line as promotions); a developer may destroy any
// environment but prod, which needs an admin. Reading deploys needs a
// viewer.
func (s *Server) deployRoutes(api *gin.RouterGroup) {
	if s.cfg.Deploys == nil {
		return
	}
	api.POST("/deploys", s.requireRole(auth.Developer), s.apiDeploy)
	api.GET("/deploys", s.requireRead(auth.Viewer), s.apiDeploys)
	api.GET("/deploys/:id", s.requireRead(auth.Viewer), s.apiGetDeploy)
	api.GET("/deploys/:id/events", s.requireRead(auth.Viewer), s.deployEvents)
	api.DELETE("/envs/:env", s.requireRole(auth.Developer), s.apiDestroyEnv)
}

type deployBody struct {
	Service        string `json:"service"`
	Env            string `json:"env"`
	Version        string `json:"version"`
	Instances      int    `json:"instances"`
	MaxSurge       *int   `json:"maxSurge"`
	MaxUnavailable *int   `json:"maxUnavailable"`
}

func (s *Server) apiDeploy(c *gin.Context) {
	var b deployBody
	dec := json.NewDecoder(c.Request.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		s.fail(c, fmt.Errorf(`want a JSON body like {"service": "inventory", "env": "qa", "version": "1.5.0"}: %w: %w`, err, errMalformed))
		return
	}
	if b.Env == "" {
		s.fail(c, fmt.Errorf("%w: env is required (alpha, qa, prod ...)", signalman.ErrInvalid))
		return
	}
	if err := signalman.ValidEnv(b.Env); err != nil {
		s.fail(c, err)
		return
	}
	id := identity(c)
	if b.Env == ProdEnv && !id.Role.Allows(auth.Releaser) {
		s.fail(c, fmt.Errorf("deploying to prod needs the releaser role: %w", auth.ErrForbidden))
		return
	}
	dep, err := s.cfg.Deploys.Begin(signalman.DeployRequest{
		Target:  signalman.Target{Service: b.Service, Env: b.Env},
		Version: b.Version, Instances: b.Instances,
		MaxSurge: b.MaxSurge, MaxUnavailable: b.MaxUnavailable, By: id.User,
	})
	if err != nil {
		s.fail(c, err)
		return
	}
	requestLogger(c, s.log).Info("deploy started", "deploy", dep.ID, "target", dep.Target.String(), "version", dep.Version, "user", id.User)
	c.Header("Location", "/api/v1/deploys/"+dep.ID)
	c.JSON(http.StatusAccepted, dep)
}

func (s *Server) apiDeploys(c *gin.Context) {
	limit := defaultDeployLimit
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxDeployLimit {
			s.fail(c, fmt.Errorf("limit must be 1 to %d: %w", maxDeployLimit, errMalformed))
			return
		}
		limit = n
	}
	out, err := s.cfg.Deploys.List(c.Request.Context(), signalman.Target{Service: c.Query("service"), Env: c.Query("env")}, limit)
	if err != nil {
		s.fail(c, err)
		return
	}
	if out == nil {
		out = []signalman.Deploy{}
	}
	c.JSON(http.StatusOK, gin.H{"deploys": out})
}

func (s *Server) apiGetDeploy(c *gin.Context) {
	d, err := s.cfg.Deploys.Get(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, d)
}

func (s *Server) apiDestroyEnv(c *gin.Context) {
	env := c.Param("env")
	if env == ProdEnv && !identity(c).Role.Allows(auth.Admin) {
		s.fail(c, fmt.Errorf("destroying prod needs an admin: %w", auth.ErrForbidden))
		return
	}
	if err := s.cfg.Deploys.DestroyEnv(c.Request.Context(), env); err != nil {
		s.fail(c, err)
		return
	}
	requestLogger(c, s.log).Info("environment destroyed", "env", env, "user", identity(c).User)
	c.Status(http.StatusNoContent)
}

// deployEvents streams a deploy's steps as server-sent events: one "step"
// event per step (its id is the step's index, so a reconnecting client
// sending Last-Event-ID gets only the steps it missed), then one "done"
// event with the whole deploy once it has ended, and the stream closes.
func (s *Server) deployEvents(c *gin.Context) {
	id := c.Param("id")
	changes, cancel, err := s.cfg.Deploys.Subscribe(c.Request.Context(), id)
	if err != nil {
		s.fail(c, err)
		return
	}
	defer cancel()
	next := 0
	if v := c.GetHeader("Last-Event-ID"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			next = n + 1
		}
	}
	rc := s.openStream(c)

	// send writes the steps not yet sent, and the end; it reports whether
	// the stream goes on.
	send := func() bool {
		d, err := s.cfg.Deploys.Get(c.Request.Context(), id)
		if err != nil {
			return false // forgotten meanwhile
		}
		for ; next < len(d.Steps); next++ {
			b, _ := json.Marshal(d.Steps[next])
			if _, err := fmt.Fprintf(c.Writer, "id: %d\nevent: step\ndata: %s\n\n", next, b); err != nil {
				return false
			}
		}
		if d.State.Done() {
			b, _ := json.Marshal(d)
			_, _ = fmt.Fprintf(c.Writer, "event: done\ndata: %s\n\n", b)
			_ = rc.Flush()
			return false
		}
		return rc.Flush() == nil
	}
	pump(s, c, rc, changes, send)
}
