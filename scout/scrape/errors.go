package scrape

import "errors"

var (
	// ErrInvalidConfig means New was given a config it cannot run with;
	// the wrapping message says which field.
	ErrInvalidConfig = errors.New("invalid config")

	// ErrScrape means an instance's /metrics could not be read or parsed;
	// the wrapping message says which instance and why.
	ErrScrape = errors.New("scrape failed")
)
