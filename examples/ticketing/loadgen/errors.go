package loadgen

import "errors"

var (
	// ErrInvalidConfig wraps every Config problem Run reports before
	// sending anything.
	ErrInvalidConfig = errors.New("invalid config")
	// ErrNotLoopback means a target or a connection would leave this
	// machine, which loadgen refuses.
	ErrNotLoopback = errors.New("not a loopback address: loadgen only sends to this machine")
)
