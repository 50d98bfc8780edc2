package main

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
)

// demoKTraceArgs are the flags that send the demo's spans to this kplane
// (POST /v1/traces on the one listener), in the scheme the listener
// serves. An all-interfaces address is dialled on loopback; port 0 is
// only known once bound, so such a kplane gets no demo spans (nil).
//
// With tls: set, the demo verifies kplane's certificate against the
// certificates of tls.cert_file (the leaf and any chain after it),
// copied into demoDir, which the docker demo bind-mounts at the same
// path. The leaf must name the host dialled (checkDemoKTrace).
func demoKTraceArgs(cfg Config, demoDir string) ([]string, error) {
	addr, _ := demoKTraceAddr(cfg)
	if addr == "" {
		return nil, nil
	}
	if !cfg.TLS.Enabled() {
		return []string{"--ktrace", "http://" + addr}, nil
	}
	b, err := os.ReadFile(cfg.TLS.CertFile)
	if err != nil {
		return nil, fmt.Errorf("demo: tls.cert_file: %w", err)
	}
	ca := filepath.Join(demoDir, "ktrace-ca.pem")
	if err := os.WriteFile(ca, b, 0o600); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	return []string{"--ktrace", "https://" + addr, "--ktrace-ca", ca}, nil
}

// demoKTraceAddr is the host:port the demo sends spans to, and its host;
// "" when the listener's port is not known before binding.
func demoKTraceAddr(cfg Config) (addr, host string) {
	host, port, err := net.SplitHostPort(cfg.Listen)
	if err != nil || port == "0" {
		return "", ""
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), host
}

// checkDemoKTrace says why the demo could not verify kplane's TLS
// certificate when sending spans: its leaf (the first certificate of
// tls.cert_file) does not name the host the demo dials. nil when it does,
// or when there is no TLS or no demo spans.
func checkDemoKTrace(cfg Config) error {
	addr, host := demoKTraceAddr(cfg)
	if !cfg.TLS.Enabled() || addr == "" {
		return nil
	}
	b, err := os.ReadFile(cfg.TLS.CertFile)
	if err != nil {
		return err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return fmt.Errorf("%s holds no PEM certificate", cfg.TLS.CertFile)
	}
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return err
	}
	if err := leaf.VerifyHostname(host); err != nil {
		return fmt.Errorf("the demo sends its spans to https://%s, and the certificate of tls.cert_file does not name %s (%w): its spans will be refused; add %s to the certificate's names or listen on a name it has", addr, host, err, host)
	}
	return nil
}
