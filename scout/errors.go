package scout

import "errors"

var (
	// ErrInvalidConfig means New was given a config it cannot run with;
	// the wrapping message says which field.
	ErrInvalidConfig = errors.New("invalid config")
)
