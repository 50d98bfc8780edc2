package signalman

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// The SweepStore methods of the deploy stores.

// Running implements SweepStore.
func (s *MemoryDeployStore) Running(ctx context.Context) ([]OwnedDeploy, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []OwnedDeploy
	for _, id := range s.order {
		if m := s.deploys[id]; !m.d.State.Done() {
			out = append(out, OwnedDeploy{ID: id, Owner: m.owner, Started: m.d.Started})
		}
	}
	return out, nil
}

// Abandon implements SweepStore.
func (s *MemoryDeployStore) Abandon(ctx context.Context, id, owner string, at time.Time, reason string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.deploys[id]
	if m == nil || m.owner != owner || m.d.State.Done() {
		return false, nil
	}
	at = utc(at)
	m.d.State, m.d.Error, m.d.Ended = DeployFailed, reason, at
	m.d.Steps = append(m.d.Steps, Step{Time: at, Action: ActionInterrupt, Outcome: OutcomeFailed, Error: reason})
	s.forgetLocked()
	return true, nil
}

// Running implements SweepStore.
func (s *SQLDeployStore) Running(ctx context.Context) ([]OwnedDeploy, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, owner, started FROM deploys WHERE state = ? ORDER BY seq`, string(DeployRunning))
	if err != nil {
		return nil, fmt.Errorf("running deploys: %w", err)
	}
	var out []OwnedDeploy
	for rows.Next() {
		var d OwnedDeploy
		var started int64
		if err := rows.Scan(&d.ID, &d.Owner, &started); err != nil {
			rows.Close()
			return nil, fmt.Errorf("running deploys: %w", err)
		}
		d.Started = fromNanos(started)
		out = append(out, d)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("running deploys: %w", err)
	}
	return out, nil
}

// Abandon implements SweepStore. The conditional UPDATE comes first: on
// MySQL it locks the row, so a second sweeper's waits and then matches
// nothing; SQLite runs one writer at a time.
func (s *SQLDeployStore) Abandon(ctx context.Context, id, owner string, at time.Time, reason string) (bool, error) {
	done := false
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE deploys SET state = ?, error = ?, ended = ? WHERE id = ? AND owner = ? AND state = ?`,
			string(DeployFailed), reason, nanos(at), id, owner, string(DeployRunning))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		var next int
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(n) + 1, 0) FROM deploy_steps WHERE deploy_id = ?`, id).Scan(&next); err != nil {
			return err
		}
		if err := insertStep(ctx, tx, id, next, Step{Time: at, Action: ActionInterrupt, Outcome: OutcomeFailed, Error: reason}); err != nil {
			return err
		}
		done = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("abandon deploy %s of %s: %w", id, owner, err)
	}
	return done, nil
}
