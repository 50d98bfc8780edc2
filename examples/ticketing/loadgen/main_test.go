package loadgen

import (
	"testing"

	"go.uber.org/goleak"
)

// Run starts a dispatcher, workers and a progress reporter; none may
// outlive it.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
