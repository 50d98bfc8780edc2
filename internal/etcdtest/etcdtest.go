// Package etcdtest starts a real embedded etcd for tests: a temp data dir,
// free loopback ports, and cleanup through t.Cleanup. Stop and Restart keep
// the data dir and the ports, so clients created before an outage
// reconnect by themselves after it, as they would against a real cluster.
//
// Clients reach etcd through a TCP relay (Proxy), so Stop is an immediate
// outage for them rather than etcd's graceful shutdown, and a test can cut
// one client off with its own Proxy while others still reach etcd.
//
// It is for tests only; production code uses internal/etcdserver.
package etcdtest

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"

	"github.com/kplane/kplane/internal/etcdserver"
)

// Server is an embedded etcd started for one test.
type Server struct {
	mu    sync.Mutex
	cfg   etcdserver.Config
	srv   *etcdserver.Server // nil while stopped
	front *Proxy             // what Endpoints and Client use
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
		// Registered after close, so it runs first: clients lose etcd
		// before etcd stops, and its shutdown does not wait on them.
		s.front = newProxy(t, "127.0.0.1:0", strings.TrimPrefix(s.cfg.ClientURL, "http://"))
		return s
	}
	t.Fatalf("etcdtest: %v", lastErr)
	return nil
}

// Endpoints returns the client URLs, stable across Stop and Restart.
func (s *Server) Endpoints() []string {
	return s.front.Endpoints()
}

// Proxy returns a new relay to this server, for a test that partitions
// some clients (made with Proxy.Client) while others keep working.
func (s *Server) Proxy(t testing.TB) *Proxy {
	t.Helper()
	return newProxy(t, "127.0.0.1:0", strings.TrimPrefix(s.cfg.ClientURL, "http://"))
}

// ProxyOn returns a new relay to this server that listens on host (an
// address of this machine), for clients that cannot reach loopback, such
// as containers on a Docker bridge network dialling its gateway.
func (s *Server) ProxyOn(t testing.TB, host string) *Proxy {
	t.Helper()
	return newProxy(t, net.JoinHostPort(host, "0"), strings.TrimPrefix(s.cfg.ClientURL, "http://"))
}

// Client returns a client of this server, closed when t ends. Its logging
// is discarded: a test restarting etcd would otherwise fill the output
// with reconnect warnings. Its reconnect backoff is capped at 500 ms:
// gRPC's default grows to two minutes, so after an outage test a client
// could stay disconnected long after etcd is back.
func (s *Server) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	return newClient(t, s.Endpoints())
}

// Client returns a client connected through this proxy, closed when t
// ends; see Server.Client.
func (p *Proxy) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	return newClient(t, p.Endpoints())
}

func newClient(t testing.TB, endpoints []string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 50 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 500 * time.Millisecond},
			MinConnectTimeout: time.Second,
		})},
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
	s.front.Cut()
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
	s.front.Heal()
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
