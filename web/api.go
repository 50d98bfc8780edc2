package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kplane/kplane/auth"
)

// decodeJSON reads a JSON body strictly: unknown fields are an error, so a
// misspelt field is reported instead of silently ignored. An oversized body
// keeps its *http.MaxBytesError so that it maps to 413.
func decodeJSON(c *gin.Context, v any) error {
	dec := json.NewDecoder(c.Request.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return err
		}
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("empty body, want a JSON object: %w", errMalformed)
		}
		return fmt.Errorf("body is not the expected JSON: %v: %w", err, errMalformed)
	}
	if dec.More() {
		return fmt.Errorf("body has data after the JSON object: %w", errMalformed)
	}
	return nil
}

type userJSON struct {
	Name        string    `json:"name"`
	Role        auth.Role `json:"role"`
	Created     time.Time `json:"created"`
	HasPassword bool      `json:"hasPassword"`
}

func (s *Server) apiListUsers(c *gin.Context) {
	users, err := s.auth.ListUsers(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]userJSON, 0, len(users))
	for _, u := range users {
		out = append(out, userJSON{Name: u.Name, Role: u.Role, Created: u.Created, HasPassword: u.HasPassword})
	}
	c.JSON(http.StatusOK, gin.H{"users": out})
}

type createUserRequest struct {
	Name     string `json:"name"`
	Password string `json:"password"`
	Role     string `json:"role"`
}

func (s *Server) apiCreateUser(c *gin.Context) {
	var req createUserRequest
	if err := decodeJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	role, err := auth.ParseRole(req.Role)
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := s.auth.CreateUser(c.Request.Context(), req.Name, req.Password, role); err != nil {
		s.fail(c, err)
		return
	}
	requestLogger(c, s.log).Info("user created through the API", "by", identity(c).User, "user", req.Name, "role", role.String())
	c.JSON(http.StatusCreated, gin.H{"name": req.Name, "role": role})
}

type createTokenRequest struct {
	User        string `json:"user"`
	Description string `json:"description"`
	// TTL is a Go duration ("720h"); empty or "0" never expires.
	TTL string `json:"ttl"`
}

// apiCreateToken mints a token for a user. The plaintext is in this
// response only.
func (s *Server) apiCreateToken(c *gin.Context) {
	var req createTokenRequest
	if err := decodeJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	var ttl time.Duration
	if req.TTL != "" {
		var err error
		if ttl, err = time.ParseDuration(req.TTL); err != nil {
			s.fail(c, fmt.Errorf("ttl %q is not a duration like \"720h\": %w", req.TTL, errMalformed))
			return
		}
	}
	tok, err := s.auth.CreateToken(c.Request.Context(), req.User, req.Description, ttl)
	if err != nil {
		s.fail(c, err)
		return
	}
	requestLogger(c, s.log).Info("token created through the API", "by", identity(c).User, "user", req.User)
	resp := gin.H{"token": tok, "user": req.User, "description": req.Description}
	if ttl > 0 {
		resp["expires"] = s.now().Add(ttl).UTC()
	}
	c.JSON(http.StatusCreated, resp)
}
