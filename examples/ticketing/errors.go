package ticketing

import "errors"

// ErrInvalidConfig wraps every Config problem Run reports before starting.
var ErrInvalidConfig = errors.New("invalid config")
