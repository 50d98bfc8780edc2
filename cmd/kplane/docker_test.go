package main

import (
	"os"
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
		"unknown driver": {args: []string{"--driver", "k8s"}, wantErr: `driver "k8s": want process or docker`},
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
