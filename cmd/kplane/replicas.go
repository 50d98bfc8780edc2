package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"log/slog"
	"os"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/kplane/kplane/hawaii"
	"github.com/kplane/kplane/signalman"
)

// replicaName names this kplane process in the records of what it runs
// (deploys, promotions) and in etcd (/kplane/replicas/<name>): host,
// listen address and a random suffix, so that two processes never share
// a name, not even two on one host listening on port 0, nor a process
// and its own previous life. What a previous life left running is ended
// by the sweepers of the live replicas (this one included) once its key
// has been gone for the grace period.
func replicaName(cfg Config) string {
	host, err := os.Hostname()
	if err != nil {
		host = "localhost"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return host + " " + cfg.Listen + " " + hex.EncodeToString(b[:])
}

// replicas is this replica's presence in etcd and the sweepers that end
// the deploys and promotions of replicas that stopped and never came
// back. Every replica sweeps: the stores end each abandoned record once
// whoever gets there first, and a sweep needs no leader, so it goes on
// while the pipeline or autoscaler election is still being decided (or
// when neither runs on any replica).
type replicas struct {
	presence *signalman.Presence
	deploys  *signalman.Sweeper
	promos   *hawaii.Sweeper
}

// newReplicas registers name in etcd: call it before this replica runs
// any deploy or promotion.
func newReplicas(ctx context.Context, cli *clientv3.Client, name string, db *sql.DB, log *slog.Logger) (*replicas, error) {
	presence, err := signalman.NewPresence(signalman.PresenceConfig{Client: cli, Name: name,
		Logger: log.With("component", "replicas")})
	if err != nil {
		return nil, err
	}
	if err := presence.Register(ctx); err != nil {
		return nil, err
	}
	absence, err := signalman.NewAbsence(signalman.AbsenceConfig{Replicas: presence})
	if err != nil {
		presence.Close()
		return nil, err
	}
	deploys, err := signalman.NewSweeper(signalman.SweeperConfig{Store: signalman.NewSQLDeployStore(db), Replicas: absence,
		Self: name, Logger: log.With("component", "deploy")})
	if err != nil {
		presence.Close()
		return nil, err
	}
	promos, err := hawaii.NewSweeper(hawaii.SweeperConfig{Store: hawaii.NewSQLStore(db, nil), Replicas: absence,
		Self: name, Logger: log.With("component", "hawaii")})
	if err != nil {
		presence.Close()
		return nil, err
	}
	log.Info("replica registered", "replica", name)
	return &replicas{presence: presence, deploys: deploys, promos: promos}, nil
}

// run keeps the key and sweeps until ctx ends, then revokes the key.
func (r *replicas) run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { _ = r.deploys.Run(ctx) })
	wg.Go(func() { _ = r.promos.Run(ctx) })
	err := r.presence.Run(ctx)
	wg.Wait()
	return err
}

// close revokes the key if run did not (serve failed before it started).
func (r *replicas) close() { r.presence.Close() }
