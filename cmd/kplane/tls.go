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

// mysqlTLS names one MySQL connection's settings: its DSN and CA file
// keys, and the name under which kplane registers its TLS configuration
// with the driver (a DSN selects it with tls=<name>). The span store and
// the main store may trust different CAs, so each has its own name.
type mysqlTLS struct {
	dsnKey, caKey, caEnv, name string
}

var (
	tracesMySQL = mysqlTLS{dsnKey: "traces mysql_dsn", caKey: "traces.mysql_ca_file", caEnv: "KPLANE_TRACES_MYSQL_CA_FILE", name: "kplane"}
	storeMySQL  = mysqlTLS{dsnKey: "store dsn", caKey: "store.ca_file", caEnv: "KPLANE_STORE_CA_FILE", name: "kplane-store"}
)

// mysqlDSN returns the span store's DSN ready to open.
func mysqlDSN(t TracesConfig) (string, error) { return tracesMySQL.dsn(t.MySQLDSN, t.MySQLCAFile) }

// dsn returns a DSN ready to open. With a CA file it registers, with the
// driver, a TLS configuration trusting that CA (verifying the server's
// name against the DSN's host) and makes the DSN use it (tls=<name>); a
// DSN that chose another tls mode is an error. Without a CA file the DSN's
// own tls= parameter (true, skip-verify, preferred) applies as the driver
// documents it.
func (m mysqlTLS) dsn(dsn, caFile string) (string, error) {
	if caFile != "" {
		tc, err := clientTLSConfig(m.caKey, caFile, "", "")
		if err != nil {
			return "", err
		}
		if err := mysqldriver.RegisterTLSConfig(m.name, tc); err != nil {
			return "", fmt.Errorf("%s tls: %w", m.dsnKey, err)
		}
	}
	noCA := fmt.Errorf("%s says tls=%s: set %s (%s) to the CA that signed the server's certificate", m.dsnKey, m.name, m.caKey, m.caEnv)
	cfg, err := mysqldriver.ParseDSN(dsn)
	if err != nil {
		if caFile == "" && strings.Contains(dsn, "tls="+m.name) {
			return "", noCA
		}
		// The driver's message does not echo the DSN, which may hold a
		// password.
		return "", fmt.Errorf("%s: %w", m.dsnKey, err)
	}
	if caFile == "" {
		if cfg.TLSConfig == m.name {
			return "", noCA
		}
		return dsn, nil
	}
	if cfg.TLSConfig != "" && cfg.TLSConfig != m.name {
		return "", fmt.Errorf("%s has tls=%s and %s is set: drop the tls parameter, or use tls=%s", m.dsnKey, cfg.TLSConfig, m.caKey, m.name)
	}
	cfg.TLSConfig = m.name
	return cfg.FormatDSN(), nil
}
