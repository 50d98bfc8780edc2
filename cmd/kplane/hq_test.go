package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kplane/kplane/headquarter"
)

func runHQ(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(append([]string{"hq", "replay"}, args...))
	err := cmd.ExecuteContext(t.Context())
	return out.String(), err
}

func TestHQReplay(t *testing.T) {
	policy := filepath.Join("..", "..", "headquarter", "testdata", "policy.yaml")
	samples := filepath.Join("..", "..", "headquarter", "testdata", "samples.csv")

	out, err := runHQ(t, "--policy", policy, "--samples", samples)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"2026-03-01T12:00:30Z  inventory  up      2     12  -",
		"missing_data",
		"down    12    5   -",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	out, err = runHQ(t, "--policy", policy, "--samples", samples, "--json")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var first headquarter.Decision
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if first.Action != headquarter.Up || first.To != 12 || len(first.Votes) != 3 || first.Votes[0].Want != 12 {
		t.Errorf("first decision %+v", first)
	}
}

func TestHQReplayErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", "service: inventory\n")
	cases := []struct {
		name    string
		args    []string
		want    string
		wantErr error
	}{
		{name: "flags missing", args: nil, want: "needs --policy and --samples"},
		{name: "invalid policy", args: []string{"--policy", write("bad.yaml", "service: inventory\nmin: 5\nmax: 2\n"), "--samples", write("s.csv", "time,service,instances,qps,cpu,memory\n")},
			want: "max (2) is below min (5)", wantErr: headquarter.ErrInvalidPolicy},
		{name: "bad sample line", args: []string{"--policy", good, "--samples", write("bad.csv", "time,service,instances,qps,cpu,memory\n2026-03-01T12:00:00Z,inventory,2,lots,,\n")},
			want: `line 2: qps "lots" is not a number`, wantErr: headquarter.ErrBadSamples},
		{name: "wrong header", args: []string{"--policy", good, "--samples", write("h.csv", "when,what\n")},
			want: "header", wantErr: headquarter.ErrBadSamples},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := runHQ(t, c.args...)
			if err == nil || !strings.Contains(err.Error(), c.want) || (c.wantErr != nil && !errors.Is(err, c.wantErr)) {
				t.Errorf("error %v, want one saying %q", err, c.want)
			}
		})
	}
}
