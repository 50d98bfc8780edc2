package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// MaxBodyBytes bounds every request body the services read: their requests
// are a few dozen bytes, so anything larger is a mistake or an attack.
const MaxBodyBytes = 4 << 10

// Errors DecodeJSON returns besides *FieldError.
var (
	ErrTooLarge  = errors.New("request body too large")
	ErrMalformed = errors.New("malformed request body")
)

// WriteJSON writes v with status. Encoding errors are not reported: the
// status line is already sent and the client sees a truncated body.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError writes an Error body. A 503 carries Retry-After so that
// well-behaved clients back off.
func WriteError(w http.ResponseWriter, status int, e Error) {
	if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", strconv.Itoa(1))
	}
	WriteJSON(w, status, e)
}

// DecodeJSON reads one JSON object from r's body into dst, refusing unknown
// fields, trailing data (ErrMalformed), values of the wrong type
// (*FieldError) and bodies over MaxBodyBytes (ErrTooLarge).
func DecodeJSON(w http.ResponseWriter, r *http.Request, dst any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return ErrTooLarge
		}
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: empty", ErrMalformed)
		}
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return &FieldError{Field: typeErr.Field, Reason: "must be a JSON " + jsonKind(typeErr.Type.Kind().String())}
		}
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: more than one JSON value", ErrMalformed)
	}
	return nil
}

// FieldError is a request whose body names a field with a bad value.
type FieldError struct {
	Field  string // JSON name, e.g. "quantity"
	Reason string // e.g. "must be between 1 and 8"
}

func (e *FieldError) Error() string { return e.Field + " " + e.Reason }

// jsonKind names a Go kind the way a JSON client thinks of it.
func jsonKind(goKind string) string {
	switch goKind {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64":
		return "number"
	case "bool":
		return "boolean"
	case "slice", "array":
		return "array"
	case "struct", "map":
		return "object"
	}
	return goKind
}

// JSONErrors serves mux, answering requests that match no route (404, 405)
// with an Error body instead of net/http's plain text, so that clients of
// the services only ever parse one error format.
func JSONErrors(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		// Let the mux decide between 404 and 405 (and compute Allow), then
		// write its verdict as JSON.
		verdict := &headerRecorder{header: http.Header{}}
		mux.ServeHTTP(verdict, r)
		if allow := verdict.header.Get("Allow"); allow != "" {
			w.Header().Set("Allow", allow)
		}
		if verdict.status == http.StatusMethodNotAllowed {
			WriteError(w, verdict.status, Error{Error: r.Method + " is not allowed on " + r.URL.Path, Code: CodeMethodNotAllowed})
			return
		}
		WriteError(w, http.StatusNotFound, Error{Error: "no such route: " + r.URL.Path, Code: CodeNotFound})
	})
}

// headerRecorder keeps the status and headers of a response and drops its
// body.
type headerRecorder struct {
	header http.Header
	status int
}

func (h *headerRecorder) Header() http.Header { return h.header }

func (h *headerRecorder) WriteHeader(code int) {
	if h.status == 0 {
		h.status = code
	}
}

func (h *headerRecorder) Write(b []byte) (int, error) {
	h.WriteHeader(http.StatusOK)
	return len(b), nil
}

// WriteRequestError answers the errors DecodeJSON returns — a bad field,
// a body too large, malformed JSON — and reports whether err was one of
// them; the caller maps its own errors otherwise.
func WriteRequestError(w http.ResponseWriter, err error) bool {
	var field *FieldError
	switch {
	case errors.As(err, &field):
		WriteError(w, http.StatusBadRequest, Error{Error: field.Error(), Code: CodeBadRequest, Field: field.Field})
	case errors.Is(err, ErrTooLarge):
		WriteError(w, http.StatusRequestEntityTooLarge, Error{Error: err.Error(), Code: CodeTooLarge})
	case errors.Is(err, ErrMalformed):
		WriteError(w, http.StatusBadRequest, Error{Error: err.Error(), Code: CodeBadRequest})
	default:
		return false
	}
	return true
}
