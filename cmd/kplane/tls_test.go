package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kplane/kplane/internal/etcdtest"
	"github.com/kplane/kplane/internal/testtls"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeListen(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// kplane serves HTTPS with the configured key pair and reaches an etcd
// that requires TLS and a client certificate; the CLI talks to it with
// --ca-file.
func TestServeHTTPSAndEtcdTLS(t *testing.T) {
	files := testtls.Generate(t)
	etcd := etcdtest.StartTLS(t, etcdtest.TLS{CertFile: files.Cert, KeyFile: files.Key, CA: files.CA})

	cfg := DefaultConfig()
	cfg.Listen = freeListen(t)
	cfg.DataDir = filepath.Join(t.TempDir(), "data")
	cfg.Etcd.Endpoints = etcd
	cfg.Etcd.TLS = EtcdTLSConfig{CAFile: files.CA, CertFile: files.ClientCert, KeyFile: files.ClientKey}
	cfg.TLS = TLSConfig{CertFile: files.Cert, KeyFile: files.Key}
	cfg.Auth.DevToken = "tls-test-admin-token"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	var stdout, stderr syncBuf
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, &stdout, &stderr, true) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stdout.String(), "Ctrl-C stops everything") {
		select {
		case err := <-done:
			t.Fatalf("serve ended: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no banner within 30 s:\n%s\n%s", stdout.String(), stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	m := regexp.MustCompile(`Console:\s+(\S+)`).FindStringSubmatch(stdout.String())
	if m == nil || m[1] != "https://"+cfg.Listen {
		t.Fatalf("banner does not give the https address: %q", stdout.String())
	}

	cli := (&clientFlags{addr: m[1], token: cfg.Auth.DevToken, caFile: files.CA}).client()
	var body struct {
		Services []any `json:"services"`
	}
	if err := cli.do(t.Context(), "GET", "/api/v1/services", nil, &body); err != nil {
		t.Fatalf("CLI with --ca-file: %v", err)
	}

	noCA := (&clientFlags{addr: m[1], token: cfg.Auth.DevToken}).client()
	if err := noCA.do(t.Context(), "GET", "/api/v1/services", nil, nil); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("CLI without the CA = %v, want a certificate error", err)
	}
	badCA := (&clientFlags{addr: m[1], caFile: filepath.Join(t.TempDir(), "missing.pem")}).client()
	if err := badCA.do(t.Context(), "GET", "/healthz", nil, nil); err == nil || !strings.Contains(err.Error(), "--ca-file") {
		t.Fatalf("CLI with a missing CA file = %v, want an error naming --ca-file", err)
	}

	resp, err := http.Get("http://" + cfg.Listen + "/healthz")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP was served on the TLS listener")
		}
	}
}

func TestTLSConfigValidate(t *testing.T) {
	files := testtls.Generate(t)
	base := func() Config {
		c := DefaultConfig()
		c.DataDir = t.TempDir()
		return c
	}
	for name, tc := range map[string]struct {
		mod  func(*Config)
		want string // in the error; "" is valid
	}{
		"listener TLS":      {func(c *Config) { c.TLS = TLSConfig{CertFile: files.Cert, KeyFile: files.Key} }, ""},
		"cert without key":  {func(c *Config) { c.TLS.CertFile = files.Cert }, "both cert_file and key_file"},
		"key is not a key":  {func(c *Config) { c.TLS = TLSConfig{CertFile: files.Cert, KeyFile: files.CA} }, "tls.cert_file/tls.key_file"},
		"missing cert file": {func(c *Config) { c.TLS = TLSConfig{CertFile: "/nonexistent.pem", KeyFile: files.Key} }, "no such file"},
		"etcd TLS": {func(c *Config) {
			c.Etcd.Endpoints = []string{"https://127.0.0.1:2379"}
			c.Etcd.TLS = EtcdTLSConfig{CAFile: files.CA, CertFile: files.ClientCert, KeyFile: files.ClientKey}
		}, ""},
		"etcd TLS over http": {func(c *Config) { c.Etcd.TLS.CAFile = files.CA }, "use https://"},
		"etcd TLS embedded":  {func(c *Config) { c.Etcd.Embedded = true; c.Etcd.TLS.CAFile = files.CA }, "external etcd cluster"},
		"etcd cert only": {func(c *Config) {
			c.Etcd.Endpoints = []string{"https://127.0.0.1:2379"}
			c.Etcd.TLS.CertFile = files.ClientCert
		}, "set both cert_file and key_file"},
		"etcd CA not PEM": {func(c *Config) {
			c.Etcd.Endpoints = []string{"https://127.0.0.1:2379"}
			c.Etcd.TLS.CAFile = filepath.Join(t.TempDir())
		}, "etcd.tls ca_file"},
		"mysql CA": {func(c *Config) {
			c.Traces = TracesConfig{Retention: "1h", Store: "mysql", MySQLDSN: "kplane:pw@tcp(db:3306)/traces", MySQLCAFile: files.CA}
		}, ""},
		"mysql CA with tls=true": {func(c *Config) {
			c.Traces = TracesConfig{Retention: "1h", Store: "mysql", MySQLDSN: "kplane:pw@tcp(db:3306)/traces?tls=true", MySQLCAFile: files.CA}
		}, "drop the tls parameter"},
		"mysql tls=kplane without CA": {func(c *Config) {
			c.Traces = TracesConfig{Retention: "1h", Store: "mysql", MySQLDSN: "kplane:pw@tcp(db:3306)/traces?tls=kplane"}
		}, "set traces.mysql_ca_file"},
	} {
		t.Run(name, func(t *testing.T) {
			c := base()
			tc.mod(&c)
			err := c.Validate()
			if tc.want == "" && err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate = %v, want an error saying %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "pw@") {
				t.Fatalf("error echoes the DSN's password: %v", err)
			}
		})
	}
}

func TestMySQLDSNUsesRegisteredCA(t *testing.T) {
	files := testtls.Generate(t)
	dsn, err := mysqlDSN(TracesConfig{MySQLDSN: "kplane:pw@tcp(db.internal:3306)/traces?parseTime=true", MySQLCAFile: files.CA})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dsn, "tls=kplane") || !strings.Contains(dsn, "parseTime=true") {
		t.Fatalf("DSN %q does not select the registered TLS config or lost a parameter", dsn)
	}
	plain := "kplane:pw@tcp(db:3306)/traces?tls=skip-verify"
	if got, err := mysqlDSN(TracesConfig{MySQLDSN: plain}); err != nil || got != plain {
		t.Fatalf("without a CA file the DSN is used as written: %q, %v", got, err)
	}
}

func TestTLSConfigFromEnv(t *testing.T) {
	t.Setenv("KPLANE_TLS_CERT_FILE", "/etc/kplane/cert.pem")
	t.Setenv("KPLANE_TLS_KEY_FILE", "/etc/kplane/key.pem")
	t.Setenv("KPLANE_ETCD_CA_FILE", "/etc/kplane/etcd-ca.pem")
	t.Setenv("KPLANE_TRACES_MYSQL_CA_FILE", "/etc/kplane/db-ca.pem")
	c := DefaultConfig()
	if err := c.LoadEnv(os.LookupEnv); err != nil {
		t.Fatal(err)
	}
	if c.TLS.CertFile != "/etc/kplane/cert.pem" || c.TLS.KeyFile != "/etc/kplane/key.pem" || c.Etcd.TLS.CAFile != "/etc/kplane/etcd-ca.pem" || c.Traces.MySQLCAFile != "/etc/kplane/db-ca.pem" {
		t.Fatalf("env not applied: %+v %+v %+v", c.TLS, c.Etcd.TLS, c.Traces)
	}
}
