package registry

import (
	"crypto/tls"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
)

// ConnectConfig configures Connect. The zero value of every field but
// Endpoints is safe.
type ConnectConfig struct {
	Endpoints []string
	// DialTimeout bounds the first connection. 0 means 5 s.
	DialTimeout time.Duration
	// MaxReconnectDelay caps gRPC's reconnect backoff (which adds up to 20%
	// jitter). 0 means DefaultMaxReconnectDelay.
	MaxReconnectDelay time.Duration
	// TLS, when not nil, secures the connection (https endpoints). Nil
	// connects in plain text.
	TLS *tls.Config
}

// DefaultMaxReconnectDelay is Connect's cap on gRPC's reconnect backoff:
// after an outage a client is connected again within it (plus 20%
// jitter), which is half of RegisterAgainWithin.
const DefaultMaxReconnectDelay = time.Second

// Connect returns an etcd client fit for registration and watching.
//
// gRPC's default reconnect backoff grows to two minutes, so after a long
// etcd outage a registrar on a default client could stay unregistered for
// up to two minutes after etcd is back; this client retries at least every
// MaxReconnectDelay, and a connection to a member that went silent is
// dropped after at most 15 s of keepalive pings. etcd's own zap logging is discarded: the registry
// logs what matters through slog.
func Connect(cfg ConnectConfig) (*clientv3.Client, error) {
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.MaxReconnectDelay <= 0 {
		cfg.MaxReconnectDelay = DefaultMaxReconnectDelay
	}
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: cfg.DialTimeout,
		TLS:         cfg.TLS,
		Logger:      zap.NewNop(),
		// A member that vanishes without closing the connection (a
		// silent partition, a frozen host) is noticed by keepalive pings,
		// not by the next request timing out; etcd refuses pings more
		// often than every 5 s (its grpc-keepalive-min-time).
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: grpcbackoff.Config{
				BaseDelay:  100 * time.Millisecond,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   cfg.MaxReconnectDelay,
			},
			MinConnectTimeout: time.Second,
		})},
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	return c, nil
}
