package hawaii

import (
	"errors"
	"sort"
	"strings"
)

var (
	// ErrNotFound means no build (or stage record) has the given ID.
	ErrNotFound = errors.New("not found")
	// ErrInvalid means a build report, stage record or query is malformed;
	// a *FieldsError names the fields.
	ErrInvalid = errors.New("invalid")
	// ErrUnknownService means a report names a service that is neither
	// registered nor has a configured pipeline; an *UnknownServiceError
	// lists the known ones.
	ErrUnknownService = errors.New("unknown service")
	// ErrBadResults means a test report is not valid JUnit XML; the wrapped
	// message is the parser's reason.
	ErrBadResults = errors.New("malformed test results")
	// ErrUnsigned means a webhook carries no signature headers.
	ErrUnsigned = errors.New("request is not signed")
	// ErrBadSignature means no signature matches the body under any
	// configured secret.
	ErrBadSignature = errors.New("signature does not match")
	// ErrStale means a Standard Webhooks timestamp is outside the allowed
	// window: an old message replayed, or a badly wrong clock.
	ErrStale = errors.New("webhook timestamp outside the allowed window")
	// ErrNotLeader means this replica no longer leads the pipeline: a
	// write of an automatic stage is refused (PipelineConfig.Fence).
	ErrNotLeader = errors.New("not the pipeline leader")
)

// FieldsError names every bad field of a report, with what is wrong with
// it. It wraps ErrInvalid.
type FieldsError struct {
	What   string            // "build", "stage", ...
	Fields map[string]string // JSON field name → problem
}

func (e *FieldsError) Error() string {
	names := make([]string, 0, len(e.Fields))
	for f := range e.Fields {
		names = append(names, f)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, f := range names {
		parts[i] = f + ": " + e.Fields[f]
	}
	return "invalid " + e.What + ": " + strings.Join(parts, "; ")
}

func (e *FieldsError) Unwrap() error { return ErrInvalid }

// UnknownServiceError carries the services a report may name. It wraps
// ErrUnknownService.
type UnknownServiceError struct {
	Service string
	Known   []string
}

func (e *UnknownServiceError) Error() string {
	if len(e.Known) == 0 {
		return "unknown service " + quote(e.Service) + ": no services are known (register one or configure its pipeline)"
	}
	return "unknown service " + quote(e.Service) + ": known services are " + strings.Join(e.Known, ", ")
}

func (e *UnknownServiceError) Unwrap() error { return ErrUnknownService }

func quote(s string) string { return `"` + s + `"` }
