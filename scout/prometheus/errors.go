package prometheus

import "errors"

var (
	// ErrInvalidConfig means New was given a config it cannot run with;
	// the wrapping message says which field.
	ErrInvalidConfig = errors.New("invalid config")

	// ErrUnexpectedResult means a query answered with something other
	// than an instant vector (a scalar, a matrix, a string): the query is
	// wrong for this source.
	ErrUnexpectedResult = errors.New("query result is not an instant vector")
)
