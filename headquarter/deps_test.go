package headquarter

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps headquarter from finding its neighbours: cmd/kplane
// connects scout and signalman to the Observer and Scaler declared here.
func TestDeps(t *testing.T) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not on PATH")
	}
	out, err := exec.Command(gobin, "list", "-deps", "-test", "github.com/kplane/kplane/headquarter").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/kplane/kplane/scout",
		"github.com/kplane/kplane/signalman",
		"github.com/kplane/kplane/web",
		"github.com/kplane/kplane/registry",
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("headquarter depends on %s; declare an interface here and connect it in cmd/kplane", dep)
			}
		}
	}
}
