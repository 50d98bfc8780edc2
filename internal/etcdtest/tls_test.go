package etcdtest_test

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/kplane/kplane/internal/etcdtest"
	"github.com/kplane/kplane/internal/testtls"
	"github.com/kplane/kplane/registry"
)

// An etcd serving TLS with client-certificate auth answers a registry
// client that trusts its CA and presents a certificate, and no other.
func TestStartTLS(t *testing.T) {
	files := testtls.Generate(t)
	endpoints := etcdtest.StartTLS(t, etcdtest.TLS{CertFile: files.Cert, KeyFile: files.Key, CA: files.CA})

	get := func(tc *tls.Config) error {
		cli, err := registry.Connect(registry.ConnectConfig{Endpoints: endpoints, TLS: tc, DialTimeout: 2 * time.Second})
		if err != nil {
			return err
		}
		defer cli.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		_, err = cli.Get(ctx, "k")
		return err
	}

	good := files.ClientConfig(t)
	cert, err := tls.LoadX509KeyPair(files.ClientCert, files.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	good.Certificates = []tls.Certificate{cert}
	if err := get(good); err != nil {
		t.Fatalf("client with CA and certificate: %v", err)
	}
	if err := get(files.ClientConfig(t)); err == nil {
		t.Fatal("a client without a certificate was served")
	}
	untrusting := &tls.Config{Certificates: good.Certificates, MinVersion: tls.VersionTLS12}
	if err := get(untrusting); err == nil {
		t.Fatal("a client that does not trust the CA connected")
	}
}
