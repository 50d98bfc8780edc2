package hawaii

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
)

// The builds in prod.
//
// Which build runs in prod is the one whose prod stage passed last. A
// store that can answer that exactly without listing the service's builds
// implements prodLister; the pipeline asks it first, so
// the builds page and the review stay fast however many builds a service
// has, and find a prod build however far back it was reported.

// prodLister lists a service's builds whose prod stage passed, latest
// finish first, at most n.
type prodLister interface {
	ProdBuilds(ctx context.Context, service string, n int) ([]BuildView, error)
}

var (
	_ prodLister = (*SQLStore)(nil)
	_ prodLister = (*MemoryStore)(nil)
)

// ProdBuilds implements prodLister from table prod_releases, which holds
// one row per build whose prod stage passed, written with the stage
// record: an index walk of (service, finished) newest first, n rows long,
// however many builds the service has or how long ago the build in prod
// was first released.
func (s *SQLStore) ProdBuilds(ctx context.Context, service string, n int) ([]BuildView, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT build_id FROM prod_releases WHERE service = ?
		ORDER BY finished DESC, build_id DESC LIMIT ?`, service, n)
	if err != nil {
		return nil, fmt.Errorf("prod builds of %s: %w", service, err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("prod builds of %s: %w", service, err)
		}
		ids = append(ids, id)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("prod builds of %s: %w", service, err)
	}
	out := make([]BuildView, 0, len(ids))
	for _, id := range ids {
		v, err := s.Build(ctx, id)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// syncProdRelease keeps prod_releases in step with rec, a stage record
// just written in tx: a prod stage that passed is a row, any other status
// none. Every write of a prod stage's status or finish goes through it
// (SetStage, Import; the sweeper only ends running stages, which have no
// row).
func syncProdRelease(ctx context.Context, tx *sql.Tx, rec StageRecord) error {
	if rec.Stage != StageProd {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM prod_releases WHERE build_id = ?`, rec.BuildID); err != nil {
		return err
	}
	if rec.Status != StatusPassed {
		return nil
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO prod_releases (build_id, service, finished) SELECT id, service, ? FROM builds WHERE id = ?`,
		nanos(rec.Finished), rec.BuildID)
	return err
}

// ProdBuilds implements prodLister.
func (m *MemoryStore) ProdBuilds(ctx context.Context, service string, n int) ([]BuildView, error) {
	m.mu.Lock()
	var out []BuildView
	for _, b := range m.builds {
		if b.Service != service {
			continue
		}
		if r, ok := m.stages[b.ID][StageProd]; ok && r.Status == StatusPassed {
			out = append(out, m.view(b.ID))
		}
	}
	m.mu.Unlock()
	sort.SliceStable(out, func(i, j int) bool {
		fi, fj := out[i].Stage(StageProd).Finished, out[j].Stage(StageProd).Finished
		if !fi.Equal(fj) {
			return fi.After(fj)
		}
		return out[i].ID > out[j].ID
	})
	return out[:min(n, len(out))], ctx.Err()
}

// LatestPassed returns the newest build of service whose stage st passed,
// or nil: the version in alpha or QA. The join walks builds(service, id)
// newest first and stops at the first match.
func (s *SQLStore) LatestPassed(ctx context.Context, service string, st Stage) (*Build, error) {
	var id int64
	err := s.db.QueryRowContext(ctx, `SELECT b.id FROM builds b
		JOIN build_stages s ON s.build_id = b.id AND s.stage = ?
		WHERE b.service = ? AND s.status = ?
		ORDER BY b.id DESC LIMIT 1`, string(st), service, string(StatusPassed)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("latest build of %s that passed %s: %w", service, st, err)
	}
	v, err := s.Build(ctx, id)
	if err != nil {
		return nil, err
	}
	return &v.Build, nil
}

// LatestPassed is SQLStore.LatestPassed in memory.
func (m *MemoryStore) LatestPassed(ctx context.Context, service string, st Stage) (*Build, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := len(m.builds) - 1; i >= 0; i-- {
		b := m.builds[i]
		if r, ok := m.stages[b.ID][st]; ok && b.Service == service && r.Status == StatusPassed {
			c := cloneBuild(b)
			return &c, nil
		}
	}
	return nil, ctx.Err()
}
