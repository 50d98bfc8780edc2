package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kplane/kplane/auth"
	"github.com/kplane/kplane/hawaii"
)

// Pipeline reviews, promotes and rolls back builds and locks
// environments; *hawaii.Pipeline implements it. Every method checks the
// caller's role itself and refuses with auth.ErrForbidden or a
// *hawaii.BlockedError listing every reason.
type Pipeline interface {
	Review(ctx context.Context, id int64, who auth.Identity, override bool) (hawaii.Review, error)
	Promote(ctx context.Context, id int64, who auth.Identity, override bool) (hawaii.Promotion, error)
	Rollback(ctx context.Context, service string, who auth.Identity, reason string) (hawaii.Promotion, error)
	Unpin(ctx context.Context, service, env string, who auth.Identity) error
	Lock(ctx context.Context, service, env, reason string, d time.Duration, who auth.Identity) (hawaii.Lock, error)
	Unlock(ctx context.Context, service, env string, who auth.Identity) error
	Locks(ctx context.Context, service string) ([]hawaii.Lock, []hawaii.Pin, error)
	Promotions(ctx context.Context, id int64) ([]hawaii.Promotion, error)
}

var _ Pipeline = (*hawaii.Pipeline)(nil)

// pipelineRoutes registers the promotion, rollback and lock API when a
// pipeline is configured.
//
// Roles: reading a review, locks and promotions needs a viewer; promoting,
// rolling back and unpinning prod needs a releaser; locking alpha or qa a
// developer, prod a releaser.
func (s *Server) pipelineRoutes(api *gin.RouterGroup) {
	if s.cfg.Pipeline == nil {
		return
	}
	api.GET("/builds/:id/review", s.requireRead(auth.Viewer), s.apiReview)
	api.GET("/builds/:id/promotions", s.requireRead(auth.Viewer), s.apiPromotions)
	api.POST("/builds/:id/promote", s.requireRole(auth.Releaser), s.apiPromote)
	api.POST("/envs/:env/rollback", s.requireRole(auth.Releaser), s.apiRollback)
	api.DELETE("/envs/:env/pin", s.requireRole(auth.Releaser), s.apiUnpin)
	api.GET("/locks", s.requireRead(auth.Viewer), s.apiLocks)
	api.PUT("/locks/:service/:env", s.requireRole(auth.Developer), s.apiLock)
	api.DELETE("/locks/:service/:env", s.requireRole(auth.Developer), s.apiUnlock)
}

func buildID(c *gin.Context) (int64, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("build ID %q is not a positive number: %w", c.Param("id"), errMalformed)
	}
	return id, nil
}

// failPipeline answers a refused promotion with every reason: 403 when
// only the caller's person stands in the way (role, separation of
// duties), 409 when the build or the environment does.
func (s *Server) failPipeline(c *gin.Context, err error) {
	var be *hawaii.BlockedError
	if errors.As(err, &be) {
		status, code := http.StatusConflict, "blocked"
		if be.Only(hawaii.BlockRole, hawaii.BlockCommitter) {
			status, code = http.StatusForbidden, "forbidden"
		}
		c.AbortWithStatusJSON(status, gin.H{"error": be.Error(), "code": code, "blockers": be.Blockers})
		return
	}
	switch {
	case errors.Is(err, hawaii.ErrNotFound):
		c.AbortWithStatusJSON(http.StatusNotFound, errorBody{publicText(err), "not_found"})
	case errors.Is(err, hawaii.ErrInvalid):
		c.AbortWithStatusJSON(http.StatusBadRequest, errorBody{publicText(err), "invalid"})
	default:
		s.fail(c, err)
	}
}

func (s *Server) apiReview(c *gin.Context) {
	id, err := buildID(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	r, err := s.cfg.Pipeline.Review(c.Request.Context(), id, identity(c), c.Query("override") == "true")
	if err != nil {
		s.failPipeline(c, err)
		return
	}
	c.JSON(http.StatusOK, r)
}

func (s *Server) apiPromotions(c *gin.Context) {
	id, err := buildID(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	out, err := s.cfg.Pipeline.Promotions(c.Request.Context(), id)
	if err != nil {
		s.fail(c, err)
		return
	}
	if out == nil {
		out = []hawaii.Promotion{}
	}
	c.JSON(http.StatusOK, gin.H{"promotions": out})
}

type promoteBody struct {
	To       string `json:"to"`
	Override bool   `json:"override"`
}

func (s *Server) apiPromote(c *gin.Context) {
	id, err := buildID(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	var b promoteBody
	dec := json.NewDecoder(c.Request.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		s.fail(c, fmt.Errorf(`want a JSON body like {"to": "prod"}: %w: %w`, err, errMalformed))
		return
	}
	if b.To != string(hawaii.StageProd) {
		s.fail(c, fmt.Errorf(`"to" must be "prod": alpha and qa run by themselves: %w`, errMalformed))
		return
	}
	who := identity(c)
	pr, err := s.cfg.Pipeline.Promote(c.Request.Context(), id, who, b.Override)
	if err != nil {
		s.failPipeline(c, err)
		return
	}
	requestLogger(c, s.log).Info("build promoted", "build", id, "version", pr.Version, "deploy", pr.DeployID, "user", who.User, "override", pr.Override)
	c.Header("Location", "/api/v1/deploys/"+pr.DeployID)
	c.JSON(http.StatusAccepted, pr)
}

type rollbackBody struct {
	Service string `json:"service"`
	Reason  string `json:"reason"`
}

func (s *Server) apiRollback(c *gin.Context) {
	var b rollbackBody
	if err := json.NewDecoder(c.Request.Body).Decode(&b); err != nil || b.Service == "" {
		s.fail(c, fmt.Errorf(`want a JSON body like {"service": "inventory", "reason": "..."}: %w`, errMalformed))
		return
	}
	if c.Param("env") != string(hawaii.StageProd) {
		s.fail(c, fmt.Errorf("only prod is rolled back: %w", errMalformed))
		return
	}
	pr, err := s.cfg.Pipeline.Rollback(c.Request.Context(), b.Service, identity(c), b.Reason)
	if err != nil {
		s.failPipeline(c, err)
		return
	}
	c.Header("Location", "/api/v1/deploys/"+pr.DeployID)
	c.JSON(http.StatusAccepted, pr)
}

func (s *Server) apiUnpin(c *gin.Context) {
	if err := s.cfg.Pipeline.Unpin(c.Request.Context(), c.Query("service"), c.Param("env"), identity(c)); err != nil {
		s.failPipeline(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

func (s *Server) apiLocks(c *gin.Context) {
	locks, pins, err := s.cfg.Pipeline.Locks(c.Request.Context(), c.Query("service"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"locks": locks, "pins": pins})
}

type lockBody struct {
	Reason   string `json:"reason"`
	Duration string `json:"duration"`
}

func (s *Server) apiLock(c *gin.Context) {
	var b lockBody
	if err := json.NewDecoder(c.Request.Body).Decode(&b); err != nil {
		s.fail(c, fmt.Errorf(`want a JSON body like {"reason": "ticket sale at noon", "duration": "2h"}: %w`, errMalformed))
		return
	}
	d, err := time.ParseDuration(b.Duration)
	if err != nil {
		s.fail(c, fmt.Errorf("duration %q: use Go syntax such as 30m or 2h: %w", b.Duration, errMalformed))
		return
	}
	l, err := s.cfg.Pipeline.Lock(c.Request.Context(), c.Param("service"), c.Param("env"), b.Reason, d, identity(c))
	if err != nil {
		s.failPipeline(c, err)
		return
	}
	c.JSON(http.StatusOK, l)
}

func (s *Server) apiUnlock(c *gin.Context) {
	if err := s.cfg.Pipeline.Unlock(c.Request.Context(), c.Param("service"), c.Param("env"), identity(c)); err != nil {
		s.failPipeline(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}
