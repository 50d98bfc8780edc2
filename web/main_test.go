package web

import (
	"testing"

	"go.uber.org/goleak"
)

// Event streams and their subscriptions are goroutines: every test must
// leave none behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
