package etcdserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// Defaults used when the matching Config field is empty. They are etcd's
// own well-known ports on loopback, so `etcdctl` works against `kplane dev`
// without flags.
const (
	DefaultClientURL = "http://127.0.0.1:2379"
	DefaultPeerURL   = "http://127.0.0.1:2380"
	DefaultName      = "kplane"
)

// startTimeout bounds the wait for a single-node member to elect itself
// when the caller's context has no deadline. A healthy member is ready in
// about a second; anything near this is a wedged disk.
const startTimeout = 30 * time.Second

// Config configures an embedded etcd member. The zero value is usable
// except for DataDir, which must be set: silently writing etcd data into
// the working directory is worse than an error.
type Config struct {
	// DataDir holds etcd's WAL and database. Created (0700) if missing.
	DataDir string
	// ClientURL is where clients connect, e.g. http://127.0.0.1:2379.
	// "" means DefaultClientURL. Port 0 picks a free port; Endpoints
	// reports the one bound.
	ClientURL string
	// PeerURL is the raft peer listener. A single node never receives
	// peer traffic, but etcd always binds it. "" means DefaultPeerURL.
	PeerURL string
	// Name is the member name. "" means DefaultName. Keep it stable for a
	// data dir: etcd records it in the WAL.
	Name string
	// Logger receives etcd's error-level logs. nil discards them.
	Logger *slog.Logger
	// UnsafeNoFsync skips fsync. For tests only: a crash loses data.
	UnsafeNoFsync bool
	// ClientCertFile and ClientKeyFile, when set, make the client
	// listener serve TLS; ClientURL must then be https. ClientCAFile, when
	// set too, requires clients to present a certificate it signed.
	ClientCertFile, ClientKeyFile, ClientCAFile string
}

// Server is a running embedded etcd member.
type Server struct {
	etcd      *embed.Etcd
	lock      *os.File
	endpoints []string
	closing   *atomic.Bool // silences etcd's shutdown noise

	closeOnce sync.Once
	closeErr  error
}

// Start starts an etcd member and returns once it serves client requests.
// It fails, without leaving anything running, if a port is busy, the data
// dir is unusable or held by another member, or ctx ends first.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("etcd: data dir is empty")
	}
	if cfg.ClientURL == "" {
		cfg.ClientURL = DefaultClientURL
	}
	if cfg.PeerURL == "" {
		cfg.PeerURL = DefaultPeerURL
	}
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	curl, err := url.Parse(cfg.ClientURL)
	if err != nil {
		return nil, fmt.Errorf("etcd: client url: %w", err)
	}
	purl, err := url.Parse(cfg.PeerURL)
	if err != nil {
		return nil, fmt.Errorf("etcd: peer url: %w", err)
	}

	lock, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}

	ec := embed.NewConfig()
	ec.Name = cfg.Name
	ec.Dir = cfg.DataDir
	ec.ListenClientUrls = []url.URL{*curl}
	ec.AdvertiseClientUrls = []url.URL{*curl}
	ec.ListenPeerUrls = []url.URL{*purl}
	ec.AdvertisePeerUrls = []url.URL{*purl}
	ec.InitialCluster = ec.InitialClusterFromName(cfg.Name)
	ec.UnsafeNoFsync = cfg.UnsafeNoFsync
	if cfg.ClientCertFile != "" {
		ec.ClientTLSInfo.CertFile = cfg.ClientCertFile
		ec.ClientTLSInfo.KeyFile = cfg.ClientKeyFile
		ec.ClientTLSInfo.TrustedCAFile = cfg.ClientCAFile
		ec.ClientTLSInfo.ClientCertAuth = cfg.ClientCAFile != ""
	}
	ec.LogLevel = "error"
	closing := new(atomic.Bool)
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zapToSlog(cfg.Logger, closing))
	// Registrations churn keys on every deploy; without compaction a
	// long-lived dev data dir grows until etcd's 2 GiB quota stops writes.
	ec.AutoCompactionMode = "periodic"
	ec.AutoCompactionRetention = "1h"

	e, err := embed.StartEtcd(ec)
	if err != nil {
		lock.Close()
		return nil, startError(err)
	}

	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, startTimeout)
		defer cancel()
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		closing.Store(true)
		e.Close()
		lock.Close()
		return nil, startError(err)
	case <-ctx.Done():
		closing.Store(true)
		e.Close()
		lock.Close()
		return nil, fmt.Errorf("etcd: not ready: %w", context.Cause(ctx))
	}

	s := &Server{etcd: e, lock: lock, closing: closing}
	for _, l := range e.Clients {
		s.endpoints = append(s.endpoints, curl.Scheme+"://"+l.Addr().String())
	}
	return s, nil
}

// Endpoints returns the client URLs to give to clientv3.Config.Endpoints,
// with the ports actually bound.
func (s *Server) Endpoints() []string {
	return append([]string(nil), s.endpoints...)
}

// Err delivers an error if the member fails while running (for example
// its disk fails). It is never closed before Close is called.
func (s *Server) Err() <-chan error {
	return s.etcd.Err()
}

// Close stops the member, waiting for in-flight requests up to etcd's
// request timeout, and releases the data dir. It is safe to call more than
// once; later calls return the first result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.closing.Store(true)
		s.etcd.Close()
		s.closeErr = s.lock.Close()
	})
	return s.closeErr
}

// lockDataDir creates the data dir and takes an exclusive, non-blocking
// lock on a file inside it. etcd's own bbolt lock blocks forever, so a
// second member on the same dir would hang instead of failing. The kernel
// drops the lock when the process dies, so a crash never leaves it stale.
func lockDataDir(dir string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("etcd: data dir: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "kplane.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("etcd: data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("etcd: %s: %w", dir, ErrDataDirInUse)
		}
		return nil, fmt.Errorf("etcd: lock data dir %s: %w", dir, err)
	}
	return f, nil
}

// startError turns embed's errors into the one-line messages a person can
// act on; a busy port is by far the most common.
func startError(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && errors.Is(err, syscall.EADDRINUSE) {
		addr := ""
		if op.Addr != nil {
			addr = op.Addr.String()
		}
		return fmt.Errorf("etcd: listen %s: %w", addr, ErrAddrInUse)
	}
	return fmt.Errorf("etcd: %w", err)
}
