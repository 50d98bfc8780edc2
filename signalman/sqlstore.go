package signalman

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kplane/kplane/internal/sqldb"
)

// SQLDeployStore is a DeployStore on kplane's SQL database (tables deploys
// and deploy_steps, created by internal/sqldb's migrations). Its SQL is
// the same on SQLite and MySQL/MariaDB.
type SQLDeployStore struct {
	db *sql.DB
}

var _ DeployStore = (*SQLDeployStore)(nil)

// NewSQLDeployStore returns a store on db, which sqldb's migrations have
// brought up to date.
func NewSQLDeployStore(db *sql.DB) *SQLDeployStore { return &SQLDeployStore{db: db} }

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func (s *SQLDeployStore) inTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	return sqldb.InTx(ctx, s.db, f)
}

// Create implements DeployStore.
func (s *SQLDeployStore) Create(ctx context.Context, d Deploy, owner string) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO deploys (id, service, env, version, from_version, instances, max_surge, max_unavailable, requested_by, state, error, started, ended, owner)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			d.ID, d.Target.Service, d.Target.Env, d.Version, d.FromVersion, d.Instances, d.MaxSurge, d.MaxUnavailable,
			d.By, string(d.State), d.Error, nanos(d.Started), nanos(d.Ended), owner); err != nil {
			return err
		}
		for i, st := range d.Steps {
			if err := insertStep(ctx, tx, d.ID, i, st); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store deploy %s: %w", d.ID, err)
	}
	return nil
}

func insertStep(ctx context.Context, tx *sql.Tx, id string, n int, st Step) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO deploy_steps (deploy_id, n, at, action, instance, version, outcome, error, took_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		id, n, nanos(st.Time), st.Action, st.Instance, st.Version, st.Outcome, st.Error, int64(st.Took))
	return err
}

func deployExists(ctx context.Context, tx *sql.Tx, id string) error {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM deploys WHERE id = ?`, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %q", ErrUnknownDeploy, id)
	}
	return err
}

// AddStep implements DeployStore. A step stored again under the same n
// replaces the first (delete and insert: the same SQL on every engine).
func (s *SQLDeployStore) AddStep(ctx context.Context, id string, n int, st Step) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := deployExists(ctx, tx, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM deploy_steps WHERE deploy_id = ? AND n = ?`, id, n); err != nil {
			return err
		}
		return insertStep(ctx, tx, id, n, st)
	})
	if err != nil {
		return fmt.Errorf("store step %d of deploy %s: %w", n, id, err)
	}
	return nil
}

// Finish implements DeployStore.
func (s *SQLDeployStore) Finish(ctx context.Context, d Deploy) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := deployExists(ctx, tx, d.ID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE deploys SET state = ?, error = ?, ended = ? WHERE id = ?`,
			string(d.State), d.Error, nanos(d.Ended), d.ID)
		return err
	})
	if err != nil {
		return fmt.Errorf("finish deploy %s: %w", d.ID, err)
	}
	return nil
}

const deployColumns = `id, service, env, version, from_version, instances, max_surge, max_unavailable, requested_by, state, error, started, ended`

type scanner interface{ Scan(dest ...any) error }

func scanDeploy(r scanner) (Deploy, error) {
	var d Deploy
	var started, ended int64
	if err := r.Scan(&d.ID, &d.Target.Service, &d.Target.Env, &d.Version, &d.FromVersion, &d.Instances, &d.MaxSurge,
		&d.MaxUnavailable, &d.By, &d.State, &d.Error, &started, &ended); err != nil {
		return Deploy{}, err
	}
	d.Started, d.Ended = fromNanos(started), fromNanos(ended)
	d.Steps = []Step{}
	return d, nil
}

// Get implements DeployStore.
func (s *SQLDeployStore) Get(ctx context.Context, id string) (Deploy, error) {
	d, err := scanDeploy(s.db.QueryRowContext(ctx, `SELECT `+deployColumns+` FROM deploys WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Deploy{}, fmt.Errorf("%w: %q", ErrUnknownDeploy, id)
	}
	if err != nil {
		return Deploy{}, fmt.Errorf("deploy %s: %w", id, err)
	}
	out := []Deploy{d}
	if err := s.steps(ctx, out); err != nil {
		return Deploy{}, fmt.Errorf("deploy %s: %w", id, err)
	}
	return out[0], nil
}

// List implements DeployStore: newest first by insertion order (seq).
func (s *SQLDeployStore) List(ctx context.Context, t Target, limit int) ([]Deploy, error) {
	var where []string
	var args []any
	if t.Service != "" {
		where, args = append(where, "service = ?"), append(args, t.Service)
	}
	if t.Env != "" {
		where, args = append(where, "env = ?"), append(args, t.Env)
	}
	q := `SELECT ` + deployColumns + ` FROM deploys`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	q += ` ORDER BY seq DESC`
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list deploys: %w", err)
	}
	out, err := sqldb.Collect(rows, func(r *sql.Rows) (Deploy, error) { return scanDeploy(r) })
	if err != nil {
		return nil, fmt.Errorf("list deploys: %w", err)
	}
	if err := s.steps(ctx, out); err != nil {
		return nil, fmt.Errorf("list deploys: %w", err)
	}
	return out, nil
}

// stepsPerQuery bounds the IN list of one steps query.
const stepsPerQuery = 200

// steps fills in the steps of ds.
func (s *SQLDeployStore) steps(ctx context.Context, ds []Deploy) error {
	at := make(map[string]int, len(ds))
	for i, d := range ds {
		at[d.ID] = i
	}
	for start := 0; start < len(ds); start += stepsPerQuery {
		chunk := ds[start:min(start+stepsPerQuery, len(ds))]
		args := make([]any, len(chunk))
		for i, d := range chunk {
			args[i] = d.ID
		}
		rows, err := s.db.QueryContext(ctx, `SELECT deploy_id, at, action, instance, version, outcome, error, took_ns FROM deploy_steps WHERE deploy_id IN (?`+
			strings.Repeat(",?", len(chunk)-1)+`) ORDER BY deploy_id, n`, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var id string
			var st Step
			var t, took int64
			if err := rows.Scan(&id, &t, &st.Action, &st.Instance, &st.Version, &st.Outcome, &st.Error, &took); err != nil {
				rows.Close()
				return err
			}
			st.Time, st.Took = fromNanos(t), time.Duration(took)
			d := &ds[at[id]]
			d.Steps = append(d.Steps, st)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
	}
	return nil
}

// Interrupt implements DeployStore.
func (s *SQLDeployStore) Interrupt(ctx context.Context, owner string, at time.Time, reason string) ([]string, error) {
	var ids []string
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT id FROM deploys WHERE owner = ? AND state = ? ORDER BY seq`, owner, string(DeployRunning))
		if err != nil {
			return err
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return err
			}
			ids = append(ids, id)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		for _, id := range ids {
			if _, err := tx.ExecContext(ctx, `UPDATE deploys SET state = ?, error = ?, ended = ? WHERE id = ?`,
				string(DeployFailed), reason, nanos(at), id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("interrupt deploys of %s: %w", owner, err)
	}
	return ids, nil
}
