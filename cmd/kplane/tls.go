package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	mysqldriver "github.com/go-sql-driver/mysql"
)

// TLSConfig makes kplane's listener serve HTTPS. Both files are PEM; the
// certificate file may hold the chain after the leaf.
type TLSConfig struct {
	CertFile string `yaml:"cert_file" env:"KPLANE_TLS_CERT_FILE"`
	KeyFile  string `yaml:"key_file" env:"KPLANE_TLS_KEY_FILE"`
}

// Enabled reports whether the listener serves HTTPS.
func (t TLSConfig) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// serverConfig loads the key pair. TLS 1.2 is the floor: every client
// kplane has (browsers, OpenTelemetry SDKs, curl, the CLI) speaks it.
func (t TLSConfig) serverConfig() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls.cert_file/tls.key_file: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

func (t TLSConfig) validate() error {
	if !t.Enabled() {
		return nil
	}
	if t.CertFile == "" || t.KeyFile == "" {
		return errors.New("tls needs both cert_file and key_file (KPLANE_TLS_CERT_FILE, KPLANE_TLS_KEY_FILE)")
	}
	_, err := t.serverConfig()
	return err
}

// EtcdTLSConfig secures kplane's connection to an external etcd cluster:
// CAFile verifies the members' certificates (empty: the system roots);
// CertFile and KeyFile are kplane's client certificate, for a cluster
// started with --client-cert-auth.
type EtcdTLSConfig struct {
	CAFile   string `yaml:"ca_file" env:"KPLANE_ETCD_CA_FILE"`
	CertFile string `yaml:"cert_file" env:"KPLANE_ETCD_CERT_FILE"`
	KeyFile  string `yaml:"key_file" env:"KPLANE_ETCD_KEY_FILE"`
}

func (t EtcdTLSConfig) set() bool { return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" }

// clientTLS returns the TLS configuration of the etcd client: nil for
// plain http endpoints without TLS settings. Any https endpoint, or any
// TLS setting, turns TLS on for all endpoints.
func (c EtcdConfig) clientTLS() (*tls.Config, error) {
	https := false
	for _, e := range c.Endpoints {
		if u, err := url.Parse(e); err == nil && u.Scheme == "https" {
			https = true
		}
	}
	if c.Embedded || (!https && !c.TLS.set()) {
		return nil, nil
	}
	return clientTLSConfig("etcd.tls", c.TLS.CAFile, c.TLS.CertFile, c.TLS.KeyFile)
}

func (c EtcdConfig) validateTLS() error {
	if !c.TLS.set() {
		return nil
	}
	if c.Embedded {
		return errors.New("etcd.tls is for an external etcd cluster; the embedded etcd listens on loopback without TLS")
	}
	for _, e := range c.Endpoints {
		if u, err := url.Parse(e); err == nil && u.Scheme != "https" {
			return fmt.Errorf("etcd endpoint %q: with etcd.tls set, use https://", e)
		}
	}
	_, err := c.clientTLS()
	return err
}

// clientTLSConfig builds a client TLS configuration from PEM files: a CA
// bundle (empty: the system roots) and an optional client key pair.
func clientTLSConfig(what, caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pool, err := loadCAFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("%s ca_file: %w", what, err)
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("%s: set both cert_file and key_file, or neither", what)
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("%s client certificate: %w", what, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func loadCAFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// mysqlTLSName is the name under which kplane registers its MySQL TLS
// configuration with the driver; a DSN selects it with tls=kplane.
const mysqlTLSName = "kplane"

// mysqlDSN returns the span store's DSN ready to open. With
// traces.mysql_ca_file set it registers, with the driver, a TLS
// configuration trusting that CA (verifying the server's name against the
// DSN's host) and makes the DSN use it (tls=kplane); a DSN that chose
// another tls mode is an error. Without a CA file the DSN's own tls=
// parameter (true, skip-verify, preferred) applies as the driver
// documents it.
func mysqlDSN(t TracesConfig) (string, error) {
	if t.MySQLCAFile != "" {
		tc, err := clientTLSConfig("traces.mysql", t.MySQLCAFile, "", "")
		if err != nil {
			return "", err
		}
		if err := mysqldriver.RegisterTLSConfig(mysqlTLSName, tc); err != nil {
			return "", fmt.Errorf("traces mysql tls: %w", err)
		}
	}
	noCA := errors.New("traces mysql_dsn says tls=kplane: set traces.mysql_ca_file (KPLANE_TRACES_MYSQL_CA_FILE) to the CA that signed the server's certificate")
	cfg, err := mysqldriver.ParseDSN(t.MySQLDSN)
	if err != nil {
		if t.MySQLCAFile == "" && strings.Contains(t.MySQLDSN, "tls="+mysqlTLSName) {
			return "", noCA
		}
		// The driver's message does not echo the DSN, which may hold a
		// password.
		return "", fmt.Errorf("traces mysql_dsn: %w", err)
	}
	if t.MySQLCAFile == "" {
		if cfg.TLSConfig == mysqlTLSName {
			return "", noCA
		}
		return t.MySQLDSN, nil
	}
	if cfg.TLSConfig != "" && cfg.TLSConfig != mysqlTLSName {
		return "", fmt.Errorf("traces mysql_dsn has tls=%s and traces.mysql_ca_file is set: drop the tls parameter, or use tls=%s", cfg.TLSConfig, mysqlTLSName)
	}
	cfg.TLSConfig = mysqlTLSName
	return cfg.FormatDSN(), nil
}
