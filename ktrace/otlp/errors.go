package otlp

import "github.com/kplane/kplane/ktrace"

// ErrTooLarge means a request holds more spans or other elements than one
// request may (MaxSpans, MaxElements); the message names the limit. The
// client should send smaller batches. Malformed requests fail with
// ktrace.ErrInvalid instead. It is ktrace.ErrTooLarge, which every
// decoder uses, so that web maps it once.
var ErrTooLarge = ktrace.ErrTooLarge
