package web

import (
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/kplane/kplane/auth"
	"github.com/kplane/kplane/hawaii"
	"github.com/kplane/kplane/headquarter"
	"github.com/kplane/kplane/ktrace"
	"github.com/kplane/kplane/signalman"
)

// Errors web itself raises. Component errors keep their own sentinels and
// are classified in classify.
var (
	errMalformed        = errors.New("malformed request")
	errNotFound         = errors.New("not found")
	errMethodNotAllowed = errors.New("method not allowed")
	errCSRF             = errors.New("missing or wrong CSRF token")
	errMediaType        = errors.New("unsupported media type")
)

// Retry-After values, in seconds. Overload clears as soon as the write
// path drains a batch; an unreachable store takes longer to come back.
const (
	retryOverloaded  = "1"
	retryUnavailable = "5"
)

// errorBody is the JSON shape of every API error.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// classify is the one mapping from errors to HTTP. The message is safe to
// show a user: for client errors it is the wrapped error text, which
// components write for people (it names the bad field, never a secret); for
// anything unrecognised it is a fixed "internal error", because the text may
// carry internal details.
func classify(err error) (status int, body errorBody) {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge, errorBody{"request body too large", "too_large"}
	case errors.Is(err, auth.ErrUnauthenticated):
		return http.StatusUnauthorized, errorBody{"authentication required: send Authorization: Bearer <token>", "unauthenticated"}
	case errors.Is(err, auth.ErrForbidden):
		return http.StatusForbidden, errorBody{publicText(err), "forbidden"}
	case errors.Is(err, errCSRF):
		return http.StatusForbidden, errorBody{"missing or wrong CSRF token: reload the page and try again", "csrf"}
	case errors.Is(err, errMediaType):
		return http.StatusUnsupportedMediaType, errorBody{publicText(err), "unsupported_media_type"}
	case errors.Is(err, ktrace.ErrTooLarge):
		// 413 as for an oversized body, but saying which limit: the client
		// must send fewer spans per request, not fewer bytes.
		return http.StatusRequestEntityTooLarge, errorBody{publicText(err), "too_large"}
	case errors.Is(err, ktrace.ErrOverloaded):
		return http.StatusTooManyRequests, errorBody{"span ingest is saturated: retry later", "overloaded"}
	case errors.Is(err, ktrace.ErrUnavailable):
		return http.StatusServiceUnavailable, errorBody{"span store unavailable: retry later", "unavailable"}
	case errors.Is(err, auth.ErrInvalid), errors.Is(err, errMalformed), errors.Is(err, ktrace.ErrInvalid):
		return http.StatusBadRequest, errorBody{publicText(err), "invalid"}
	case errors.Is(err, auth.ErrNotFound), errors.Is(err, errNotFound):
		return http.StatusNotFound, errorBody{publicText(err), "not_found"}
	case errors.Is(err, auth.ErrExists):
		return http.StatusConflict, errorBody{publicText(err), "conflict"}
	case errors.Is(err, headquarter.ErrInvalidPolicy), errors.Is(err, signalman.ErrInvalid):
		return http.StatusBadRequest, errorBody{publicText(err), "invalid"}
	case errors.Is(err, headquarter.ErrNotFound), errors.Is(err, signalman.ErrUnknownService),
		errors.Is(err, signalman.ErrUnknownDeploy), errors.Is(err, signalman.ErrUnknownInstance):
		return http.StatusNotFound, errorBody{publicText(err), "not_found"}
	case errors.Is(err, signalman.ErrUnsupported):
		return http.StatusNotImplemented, errorBody{publicText(err), "unsupported"}
	case errors.Is(err, signalman.ErrBusy):
		return http.StatusConflict, errorBody{publicText(err) + ": retry when it is done", "busy"}
	case errors.Is(err, headquarter.ErrNotLeader):
		return http.StatusServiceUnavailable, errorBody{"this replica is not the autoscaler leader: retry, or send to the leader", "not_leader"}
	case errors.Is(err, signalman.ErrNotConfirmed):
		return http.StatusGatewayTimeout, errorBody{publicText(err), "not_confirmed"}
	case errors.Is(err, hawaii.ErrUnsigned), errors.Is(err, hawaii.ErrBadSignature), errors.Is(err, hawaii.ErrStale):
		return http.StatusUnauthorized, errorBody{publicText(err), "bad_signature"}
	case errors.Is(err, hawaii.ErrInvalid), errors.Is(err, hawaii.ErrBadResults):
		return http.StatusBadRequest, errorBody{publicText(err), "invalid"}
	case errors.Is(err, hawaii.ErrNotFound), errors.Is(err, hawaii.ErrUnknownService):
		return http.StatusNotFound, errorBody{publicText(err), "not_found"}
	case errors.Is(err, errRateLimited):
		return http.StatusTooManyRequests, errorBody{errRateLimited.Error(), "rate_limited"}
	case errors.Is(err, errMethodNotAllowed):
		return http.StatusMethodNotAllowed, errorBody{"method not allowed", "method_not_allowed"}
	}
	return http.StatusInternalServerError, errorBody{"internal error", "internal"}
}

// publicText strips the sentinel suffix (": invalid") that %w wrapping
// leaves, which reads as noise to a person.
func publicText(err error) string {
	msg := err.Error()
	for _, s := range []error{auth.ErrInvalid, auth.ErrNotFound, auth.ErrExists, auth.ErrForbidden, errMalformed, errNotFound, errMediaType, ktrace.ErrInvalid, ktrace.ErrTooLarge, signalman.ErrUnsupported} {
		if trimmed, ok := strings.CutSuffix(msg, ": "+s.Error()); ok {
			return trimmed
		}
		// ktrace wraps its sentinel first ("invalid: trace ID ...").
		if trimmed, ok := strings.CutPrefix(msg, s.Error()+": "); ok {
			return trimmed
		}
	}
	return msg
}

// fail answers an API request with the classified error and logs server
// errors with the request's trace id.
func (s *Server) fail(c *gin.Context, err error) {
	status, body := classify(err)
	if status >= 500 {
		requestLogger(c, s.log).Error("request failed", "err", err)
	}
	switch status {
	case http.StatusUnauthorized:
		c.Header("WWW-Authenticate", `Bearer realm="kplane"`)
	case http.StatusTooManyRequests:
		// A rate limiter knows how long to wait and has said so.
		if c.Writer.Header().Get("Retry-After") == "" {
			c.Header("Retry-After", retryOverloaded)
		}
	case http.StatusServiceUnavailable:
		c.Header("Retry-After", retryUnavailable)
	}
	c.AbortWithStatusJSON(status, body)
}

// failPage answers a console request with the classified error as an HTML
// page.
func (s *Server) failPage(c *gin.Context, err error) {
	status, body := classify(err)
	if status >= 500 {
		requestLogger(c, s.log).Error("request failed", "err", err)
	}
	msg := body.Error
	if status == http.StatusUnauthorized {
		msg = "Sign in to continue."
	}
	s.render(c, status, "error", pageData{Title: http.StatusText(status), Page: errorView{Status: status, Message: msg}})
	c.Abort()
}

func (s *Server) notFound(c *gin.Context) {
	if strings.HasPrefix(c.Request.URL.Path, "/api/") {
		s.fail(c, errNotFound)
		return
	}
	s.failPage(c, errNotFound)
}
