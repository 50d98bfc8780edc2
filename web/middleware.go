package web

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

const (
	keyTraceID = "kplane.trace_id"
	keyLogger  = "kplane.logger"
	// keyStreaming marks a long-lived response (an event stream) whose
	// duration says nothing about latency.
	keyStreaming = "kplane.streaming"
)

// requestID gives every request a trace id: the W3C traceparent's trace id
// if the caller sent one (so kplane's log lines join the caller's trace),
// else a sane X-Request-ID, else a fresh random id. It is echoed in
// X-Request-ID and put on every log line about the request.
func (s *Server) requestID(c *gin.Context) {
	id := traceIDFromTraceparent(c.GetHeader("traceparent"))
	if id == "" {
		id = cleanRequestID(c.GetHeader("X-Request-ID"))
	}
	if id == "" {
		id = newTraceID()
	}
	c.Set(keyTraceID, id)
	c.Set(keyLogger, s.log.With("trace_id", id))
	c.Header("X-Request-ID", id)
	c.Next()
}

// traceIDFromTraceparent returns the trace id of a version-00 traceparent
// header ("00-<32 hex>-<16 hex>-<2 hex>"), or "" if it is not one.
func traceIDFromTraceparent(h string) string {
	parts := strings.Split(strings.TrimSpace(h), "-")
	if len(parts) < 4 || len(parts[0]) != 2 || parts[0] == "ff" || len(parts[1]) != 32 || len(parts[2]) != 16 {
		return ""
	}
	id := strings.ToLower(parts[1])
	if _, err := hex.DecodeString(id); err != nil || id == strings.Repeat("0", 32) {
		return ""
	}
	return id
}

// cleanRequestID accepts a caller's request id only if it cannot break a
// log line or a header: short, and made of token characters.
func cleanRequestID(h string) string {
	if len(h) == 0 || len(h) > 128 {
		return ""
	}
	for _, r := range h {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.:", r)
		if !ok {
			return ""
		}
	}
	return h
}

func newTraceID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// requestLogger is the request-scoped logger carrying the trace id.
func requestLogger(c *gin.Context, fallback *slog.Logger) *slog.Logger {
	if l, ok := c.Get(keyLogger); ok {
		return l.(*slog.Logger)
	}
	return fallback
}

func routeLabel(c *gin.Context) string {
	if r := c.FullPath(); r != "" {
		return r
	}
	// Unmatched paths are attacker-controlled: one label keeps metric
	// cardinality bounded.
	return "unmatched"
}

// logRequests writes one line per request. It logs the path but never
// headers, so Authorization and cookies cannot leak, and not the query
// string, which some clients use for credentials.
func (s *Server) logRequests(c *gin.Context) {
	start := time.Now()
	c.Next()
	status := c.Writer.Status()
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	requestLogger(c, s.log).LogAttrs(c.Request.Context(), level, "http request",
		slog.String("method", c.Request.Method),
		slog.String("route", routeLabel(c)),
		slog.String("path", c.Request.URL.Path),
		slog.Int("status", status),
		slog.Duration("duration", time.Since(start)),
		slog.String("client", c.ClientIP()),
		slog.Int("bytes", c.Writer.Size()),
	)
}

// recoverPanics turns a handler panic into a logged stack trace and a JSON
// 500 that reveals nothing about the panic.
func (s *Server) recoverPanics(c *gin.Context) {
	defer func() {
		rec := recover()
		if rec == nil {
			return
		}
		if rec == http.ErrAbortHandler {
			// The handler asked net/http to drop the connection: honour it.
			panic(rec)
		}
		requestLogger(c, s.log).Error("panic serving request",
			"route", routeLabel(c), "panic", fmt.Sprint(rec), "stack", string(debug.Stack()))
		if c.Writer.Written() {
			c.Abort()
			return
		}
		c.AbortWithStatusJSON(http.StatusInternalServerError, errorBody{Error: "internal error", Code: "internal"})
	}()
	c.Next()
}

// limitBody rejects bodies above the configured size: early by
// Content-Length, and while reading for chunked bodies (the handler's read
// then fails with *http.MaxBytesError, which classify maps to 413).
//
// A route may raise its own limit in s.bodyLimits (span ingest takes
// batches far above the API's 1 MiB); gin has matched the route before
// global middleware runs, so FullPath names it here.
func (s *Server) limitBody(c *gin.Context) {
	limit := s.maxBody
	if l, ok := s.bodyLimits[c.FullPath()]; ok {
		limit = l
	}
	if c.Request.ContentLength > limit {
		s.fail(c, &http.MaxBytesError{Limit: limit})
		return
	}
	if c.Request.Body != nil {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, limit)
	}
	c.Next()
}

// securityHeaders keeps the console out of frames and confines scripts and
// styles to kplane's own static files.
func (s *Server) securityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	c.Next()
}
