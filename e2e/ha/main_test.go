package ha

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// The kplane binary, built once on first use by a test that needs it, and removed when the package's tests end.
var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// kplaneBinary returns the path of a kplane built from this tree.
func kplaneBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "kplane-ha-")
		if buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "kplane")
		cmd := exec.Command("go", "build", "-o", buildBin, "../../cmd/kplane")
		// Static, as release builds are: the docker driver runs this very
		// binary in a FROM scratch image.
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("building kplane: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}
