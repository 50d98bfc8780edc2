// Package testenv holds the rules every kplane test follows about the
// environment: integration tests skip outside CI when a real dependency is
// missing, and fail instead when KPLANE_REQUIRE_INTEGRATION=1.
package testenv

import (
	"os"
	"testing"
)

// RequireIntegration reports whether missing integration dependencies must
// fail tests instead of skipping them (CI sets KPLANE_REQUIRE_INTEGRATION=1).
func RequireIntegration() bool {
	return os.Getenv("KPLANE_REQUIRE_INTEGRATION") == "1"
}

// Missing ends the test because a real dependency is unavailable: it fails
// when integration is required and skips otherwise.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if RequireIntegration() {
		t.Fatalf("integration dependency missing (KPLANE_REQUIRE_INTEGRATION=1): "+format, args...)
	}
	t.Skipf("integration dependency missing: "+format, args...)
}
