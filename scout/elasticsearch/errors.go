package elasticsearch

import "errors"

var (
	// ErrInvalidConfig means New was given a config it cannot run with;
	// the wrapping message says which field.
	ErrInvalidConfig = errors.New("invalid config")

	// ErrUnexpectedResponse means the search answered without the
	// aggregation asked for.
	ErrUnexpectedResponse = errors.New("unexpected search response")
)
