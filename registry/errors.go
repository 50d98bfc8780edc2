package registry

import "errors"

var (
	// ErrNoInstances means no live instance of a service matches the
	// request. Returned errors wrap it with the service name (and tag).
	ErrNoInstances = errors.New("no instances")

	// ErrInvalidConfig means a constructor was given a config it cannot
	// run with; the wrapping message says which field.
	ErrInvalidConfig = errors.New("invalid config")
)
