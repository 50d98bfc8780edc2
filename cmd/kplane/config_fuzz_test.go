package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/kplane/kplane/hawaii"
)

// FuzzConfigFile checks the config file as `kplane server --config` and
// `kplane dev --config` read it: no file panics LoadFile or Validate, a
// refused file is named in the error, a refused setting never echoes a
// webhook secret or database password, and a config that validates is
// written back as YAML and read again unchanged and still valid. Seeds are
// in testdata/fuzz/FuzzConfigFile, among them the README's production
// config; run with
//
//	go test ./cmd/kplane -run '^$' -fuzz '^FuzzConfigFile$' -fuzztime 60s
func FuzzConfigFile(f *testing.F) {
	f.Add([]byte("listen: 127.0.0.1:8080\ndata_dir: /var/lib/kplane\n"))
	// One file per fuzzing process: the fuzz function runs serially in it.
	path := filepath.Join(f.TempDir(), "kplane.yaml")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, base := range []Config{DefaultConfig(), DevConfig()} {
			c := base
			if err := c.LoadFile(path); err != nil {
				if !strings.Contains(err.Error(), path) {
					t.Fatalf("file error does not name the file: %v", err)
				}
				return
			}
			err := c.Validate()
			if err != nil {
				for _, s := range secretsOf(c) {
					if strings.Contains(err.Error(), s) {
						t.Fatalf("validation error echoes the secret %q: %v", s, err)
					}
				}
				continue
			}
			for _, sp := range c.Pipeline.Services {
				for _, j := range append(append([]hawaii.Job(nil), sp.Alpha...), sp.QA...) {
					if j.Timeout < 0 {
						t.Fatalf("valid config has a job %q with a negative timeout %v", j.Name, j.Timeout)
					}
				}
			}
			out, err := yaml.Marshal(c)
			if err != nil {
				t.Fatalf("valid config cannot be written as YAML: %v", err)
			}
			if err := os.WriteFile(path, out, 0o600); err != nil {
				t.Fatal(err)
			}
			var again Config
			if err := again.LoadFile(path); err != nil {
				t.Fatalf("valid config, written as YAML, does not load: %v\n%s", err, out)
			}
			if err := again.Validate(); err != nil {
				t.Fatalf("valid config, written as YAML, does not validate: %v\n%s", err, out)
			}
			if out2, _ := yaml.Marshal(again); string(out2) != string(out) {
				t.Fatalf("config changed through YAML:\n%s\n%s", out, out2)
			}
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	})
}

var dsnPassword = regexp.MustCompile(`^[^:@/]*:([^@]*)@`)

// secretsOf lists the secrets in c long enough to recognise in a message.
func secretsOf(c Config) []string {
	var out []string
	for _, e := range c.Builds.WebhookSecrets {
		if _, s, ok := strings.Cut(e, ":"); ok && len(s) >= 8 {
			out = append(out, s)
		}
	}
	if m := dsnPassword.FindStringSubmatch(c.Traces.MySQLDSN); m != nil && len(m[1]) >= 8 {
		out = append(out, m[1])
	}
	if len(c.Auth.DevToken) >= 8 {
		out = append(out, c.Auth.DevToken)
	}
	return out
}
