package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kplane/kplane/internal/testtls"
)

// The demo sends its spans in the listener's scheme: http without tls:,
// https with it, trusting the certificate of tls.cert_file (copied into
// the demo's directory, which the docker demo mounts); a certificate that
// does not name the host the demo dials is reported.
func TestDemoKTraceFollowsTheListener(t *testing.T) {
	files := testtls.Generate(t)
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Listen = "0.0.0.0:18080"
	args, err := demoKTraceArgs(cfg, dir)
	if err != nil || !slices.Equal(args, []string{"--ktrace", "http://127.0.0.1:18080"}) {
		t.Fatalf("plain listener: %v, %v", args, err)
	}
	cfg.TLS = TLSConfig{CertFile: files.Cert, KeyFile: files.Key}
	args, err = demoKTraceArgs(cfg, dir)
	ca := filepath.Join(dir, "ktrace-ca.pem")
	if err != nil || !slices.Equal(args, []string{"--ktrace", "https://127.0.0.1:18080", "--ktrace-ca", ca}) {
		t.Fatalf("TLS listener: %v, %v", args, err)
	}
	got, _ := os.ReadFile(ca)
	want, _ := os.ReadFile(files.Cert)
	if !bytes.Equal(got, want) {
		t.Fatal("the demo's CA file is not the listener's certificate")
	}
	if err := checkDemoKTrace(cfg); err != nil {
		t.Fatalf("a certificate for 127.0.0.1: %v", err)
	}
	cfg.Listen = "10.1.2.3:18080"
	if err := checkDemoKTrace(cfg); err == nil || !strings.Contains(err.Error(), "does not name 10.1.2.3") {
		t.Fatalf("a certificate without the dialled host: %v", err)
	}
	cfg.Listen = "127.0.0.1:0"
	if args, err := demoKTraceArgs(cfg, dir); err != nil || args != nil {
		t.Fatalf("port 0: %v, %v; want no span flags", args, err)
	}
}
