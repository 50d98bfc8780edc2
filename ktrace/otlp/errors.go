package otlp

import "errors"

// ErrTooLarge means a request holds more spans or other elements than one
// request may (MaxSpans, MaxElements); the message names the limit. The
// client should send smaller batches. Malformed requests fail with
// ktrace.ErrInvalid instead.
var ErrTooLarge = errors.New("request too large")
