package main

import (
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func TestDriverLayers(t *testing.T) {
	for name, tc := range map[string]struct {
		env     map[string]string
		args    []string
		want    string
		wantErr string
	}{
		"default":        {want: "process"},
		"env":            {env: map[string]string{"KPLANE_DRIVER": "docker"}, want: "docker"},
		"flag beats env": {env: map[string]string{"KPLANE_DRIVER": "docker"}, args: []string{"--driver", "process"}, want: "process"},
		"unknown driver": {args: []string{"--driver", "k8s"}, wantErr: `driver "k8s": want process, docker, swarm or marathon`},
		"demo on swarm":  {args: []string{"--driver", "swarm"}, wantErr: "the demo runs with driver process or docker, not swarm"},
	} {
		t.Run(name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var f configFlags
			cmd := &cobra.Command{Use: "x"}
			f.bindCommon(cmd.Flags())
			cmd.Flags().StringVar(&f.driver, "driver", "", "")
			if err := cmd.Flags().Parse(append([]string{"--data-dir", t.TempDir()}, tc.args...)); err != nil {
				t.Fatal(err)
			}
			cfg, err := f.load(cmd, DevConfig())
			got := cfg.Driver
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("driver = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestCheckStaticRejectsADynamicBinary(t *testing.T) {
	// The test binary itself is dynamic when cgo is on; /bin/sh always is.
	sh, err := os.ReadFile("/bin/sh")
	if err != nil {
		t.Skip("no /bin/sh")
	}
	if err := checkStatic(sh); err == nil || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Fatalf("checkStatic(/bin/sh) = %v; want the CGO_ENABLED=0 advice", err)
	}
	if err := checkStatic([]byte("#!/bin/sh\n")); err == nil {
		t.Fatal("checkStatic accepted a script")
	}
}

// kplane dev --driver docker puts the demo in a FROM scratch image, which
// only a static binary can run: this binary if it is static, else the
// demo's command built now with CGO_ENABLED=0 (the test binary is dynamic
// when cgo is on, so that path runs here).
func TestDemoBinaryIsStatic(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the demo image holds a Linux binary")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go tool")
	}
	var progress strings.Builder
	bin, err := demoBinary(t.Context(), &progress)
	if err != nil {
		t.Fatalf("demoBinary: %v\n%s", err, progress.String())
	}
	if err := checkStatic(bin.exe); err != nil {
		t.Fatal(err)
	}
	// Either this binary (kplane ticketing inventory ...) or the demo's
	// own command (ticketing inventory ...).
	switch {
	case bin.name == "kplane" && len(bin.args) == 1 && bin.args[0] == "ticketing":
	case bin.name == "ticketing" && len(bin.args) == 0:
	default:
		t.Fatalf("binary %q with arguments %q", bin.name, bin.args)
	}
	t.Logf("%s (%d bytes): %s", bin.name, len(bin.exe), strings.TrimSpace(progress.String()))
}

func TestDemoLogsSayWhereTheLogsAre(t *testing.T) {
	cfg := Config{DataDir: "/var/lib/kplane"}
	if got := demoLogs(cfg, "docker"); !strings.Contains(got, "docker logs") || strings.Contains(got, cfg.DataDir) {
		t.Errorf("docker demo: %q, want a docker logs hint and no log dir", got)
	}
	if got := demoLogs(cfg, "process"); got != "logs in /var/lib/kplane/logs" {
		t.Errorf("process demo: %q", got)
	}
}
