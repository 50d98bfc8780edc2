// Package etcdtest starts a real embedded etcd for tests: a temp data dir,
// free loopback ports, and cleanup through t.Cleanup. Stop and Restart keep
// the data dir and the ports, so clients created before an outage
// reconnect by themselves after it, as they would against a real cluster.
//
// It is for tests only; production code uses internal/etcdserver.
package etcdtest

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/kplane/kplane/internal/etcdserver"
)

// Server is an embedded etcd started for one test.
type Server struct {
	mu  sync.Mutex
	cfg etcdserver.Config
	srv *etcdserver.Server // nil while stopped
}

// Start starts an etcd member and registers its shutdown with t.Cleanup.
// It fails the test if etcd cannot start.
func Start(t testing.TB) *Server {
	t.Helper()
	dir := t.TempDir()
	var lastErr error
	// Another test process may grab a port between probing and binding;
	// a fresh pair of ports almost always fixes that.
	for range 5 {
		s := &Server{cfg: etcdserver.Config{
			DataDir:       dir,
			ClientURL:     "http://" + freeAddr(t),
			PeerURL:       "http://" + freeAddr(t),
			Name:          "etcdtest",
			UnsafeNoFsync: true,
		}}
		srv, err := start(t, s.cfg)
		if errors.Is(err, etcdserver.ErrAddrInUse) {
			lastErr = err
			continue
		}
		if err != nil {
			t.Fatalf("etcdtest: %v", err)
		}
		s.srv = srv
		t.Cleanup(func() { s.close() })
		return s
	}
	t.Fatalf("etcdtest: %v", lastErr)
	return nil
}

// Endpoints returns the client URLs, stable across Stop and Restart.
func (s *Server) Endpoints() []string {
	return []string{s.cfg.ClientURL}
}

// Client returns a client of this server, closed when t ends. Its logging
// is discarded: a test restarting etcd would otherwise fill the output
// with reconnect warnings.
func (s *Server) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   s.Endpoints(),
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		t.Fatalf("etcdtest: client: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Stop stops etcd, keeping its data dir and ports for Restart. Clients see
// an outage: their requests fail or block until Restart.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		t.Fatalf("etcdtest: Stop: not running")
	}
	if err := s.srv.Close(); err != nil {
		t.Fatalf("etcdtest: stop: %v", err)
	}
	s.srv = nil
}

// Restart starts etcd again on the same data dir and ports after Stop.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		t.Fatalf("etcdtest: Restart: still running")
	}
	srv, err := start(t, s.cfg)
	if err != nil {
		t.Fatalf("etcdtest: restart: %v", err)
	}
	s.srv = srv
}

func (s *Server) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		s.srv.Close()
		s.srv = nil
	}
}

func start(t testing.TB, cfg etcdserver.Config) (*etcdserver.Server, error) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	return etcdserver.Start(ctx, cfg)
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("etcdtest: %v", err)
	}
	defer l.Close()
	return l.Addr().String()
}
