package hawaii

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kplane/kplane/internal/sqldb"
)

// SQLStore is a Store on kplane's SQL database, SQLite or MySQL/MariaDB
// (tables builds, build_stages, test_cases, audit_events,
// webhook_deliveries, env_locks, env_pins and promotions, created by
// internal/sqldb's migrations).
type SQLStore struct {
	db  *sql.DB
	d   sqldb.Dialect
	now func() time.Time
}

var _ Store = (*SQLStore)(nil)

// NewSQLStore returns a store on db, which sqldb.Migrate has brought up to
// date. now stamps stage updates, audit events and delivery claims; nil is
// time.Now.
func NewSQLStore(db *sql.DB, now func() time.Time) *SQLStore {
	if now == nil {
		now = time.Now
	}
	return &SQLStore{db: db, d: sqldb.DialectOf(db), now: now}
}

// inTx runs f in one transaction, rolling back on error.
func (s *SQLStore) inTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	return sqldb.InTx(ctx, s.db, f)
}

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

const buildColumns = `id, service, guid, version, image, scm_revision, committer, timestamp, reported_at, reported_by, changelog`

type scanner interface{ Scan(dest ...any) error }

func scanBuild(r scanner) (Build, error) {
	var b Build
	var ts, rep int64
	var cl []byte
	if err := r.Scan(&b.ID, &b.Service, &b.GUID, &b.Version, &b.Image, &b.SCMRevision, &b.Committer, &ts, &rep, &b.ReportedBy, &cl); err != nil {
		return Build{}, err
	}
	b.Timestamp, b.ReportedAt = fromNanos(ts), fromNanos(rep)
	if len(cl) > 0 && string(cl) != "[]" {
		if err := json.Unmarshal(cl, &b.Changelog); err != nil {
			return Build{}, fmt.Errorf("decode changelog of build %d: %w", b.ID, err)
		}
	}
	return b, nil
}

func insertBuild(ctx context.Context, ins *sql.Stmt, b Build) (int64, error) {
	cl, err := json.Marshal(b.Changelog)
	if err != nil {
		return 0, err
	}
	if b.Changelog == nil {
		cl = []byte("[]")
	}
	res, err := ins.ExecContext(ctx, b.Service, b.GUID, b.Version, b.Image, b.SCMRevision, b.Committer,
		nanos(b.Timestamp), nanos(b.ReportedAt), b.ReportedBy, string(cl))
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

const insertBuildSQL = `INSERT INTO builds (service, guid, version, image, scm_revision, committer, timestamp, reported_at, reported_by, changelog) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// Report implements Store. The GUID's uniqueness is the table's, so two
// concurrent reports of one build store it once.
func (s *SQLStore) Report(ctx context.Context, b Build) (Build, bool, error) {
	b = b.normalize()
	var stored Build
	created := false
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		old, err := scanBuild(tx.QueryRowContext(ctx, `SELECT `+buildColumns+` FROM builds WHERE guid = ?`, b.GUID))
		if err == nil {
			stored = old
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		ins, err := tx.PrepareContext(ctx, insertBuildSQL)
		if err != nil {
			return err
		}
		defer ins.Close()
		if b.ID, err = insertBuild(ctx, ins, b); err != nil {
			return err
		}
		stored, created = b, true
		return nil
	})
	if err != nil {
		// Another replica may have stored the same GUID between the
		// lookup and the insert: its build stands.
		if ctx.Err() == nil {
			if v, gerr := s.BuildByGUID(ctx, b.GUID); gerr == nil {
				return v.Build, false, nil
			}
		}
		return Build{}, false, fmt.Errorf("report build %s of %s: %w", b.GUID, b.Service, err)
	}
	return stored, created, nil
}

// Build implements Store.
func (s *SQLStore) Build(ctx context.Context, id int64) (BuildView, error) {
	return s.oneBuild(ctx, `id = ?`, id)
}

// BuildByGUID implements Store.
func (s *SQLStore) BuildByGUID(ctx context.Context, guid string) (BuildView, error) {
	return s.oneBuild(ctx, `guid = ?`, guid)
}

func (s *SQLStore) oneBuild(ctx context.Context, where string, arg any) (BuildView, error) {
	b, err := scanBuild(s.db.QueryRowContext(ctx, `SELECT `+buildColumns+` FROM builds WHERE `+where, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return BuildView{}, fmt.Errorf("build %v: %w", arg, ErrNotFound)
	}
	if err != nil {
		return BuildView{}, fmt.Errorf("build %v: %w", arg, err)
	}
	recs, err := s.stages(ctx, []int64{b.ID})
	if err != nil {
		return BuildView{}, fmt.Errorf("build %v: %w", arg, err)
	}
	return viewOf(b, recs[b.ID]), nil
}

// Builds implements Store: one indexed range scan of builds, one lookup
// of the page's stage records.
func (s *SQLStore) Builds(ctx context.Context, q BuildQuery) ([]BuildView, error) {
	var where []string
	var args []any
	if q.Service != "" {
		where, args = append(where, "service = ?"), append(args, q.Service)
	}
	if q.Before > 0 {
		where, args = append(where, "id < ?"), append(args, q.Before)
	}
	query := `SELECT ` + buildColumns + ` FROM builds`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit(q.Limit))
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list builds: %w", err)
	}
	builds, err := sqldb.Collect(rows, func(r *sql.Rows) (Build, error) { return scanBuild(r) })
	if err != nil {
		return nil, fmt.Errorf("list builds: %w", err)
	}
	ids := make([]int64, len(builds))
	for i, b := range builds {
		ids[i] = b.ID
	}
	recs, err := s.stages(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("list builds: %w", err)
	}
	out := make([]BuildView, len(builds))
	for i, b := range builds {
		out[i] = viewOf(b, recs[b.ID])
	}
	return out, nil
}

const stageColumns = `build_id, stage, status, steps, started, finished, updated, passed, failed, skipped, errored`

func scanStage(r scanner) (StageRecord, error) {
	var rec StageRecord
	var steps []byte
	var started, finished, updated int64
	if err := r.Scan(&rec.BuildID, &rec.Stage, &rec.Status, &steps, &started, &finished, &updated,
		&rec.Tests.Passed, &rec.Tests.Failed, &rec.Tests.Skipped, &rec.Tests.Errored); err != nil {
		return StageRecord{}, err
	}
	rec.Started, rec.Finished, rec.Updated = fromNanos(started), fromNanos(finished), fromNanos(updated)
	if len(steps) > 0 && string(steps) != "[]" {
		if err := json.Unmarshal(steps, &rec.Steps); err != nil {
			return StageRecord{}, fmt.Errorf("decode steps of build %d %s: %w", rec.BuildID, rec.Stage, err)
		}
	}
	return rec, nil
}

func (s *SQLStore) stages(ctx context.Context, ids []int64) (map[int64][]StageRecord, error) {
	out := make(map[int64][]StageRecord, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+stageColumns+` FROM build_stages WHERE build_id IN (?`+strings.Repeat(",?", len(ids)-1)+`)`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		rec, err := scanStage(rows)
		if err != nil {
			return nil, err
		}
		out[rec.BuildID] = append(out[rec.BuildID], rec)
	}
	return out, rows.Err()
}

func buildExists(ctx context.Context, tx *sql.Tx, id int64) error {
	var one int
	err := tx.QueryRowContext(ctx, `SELECT 1 FROM builds WHERE id = ?`, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("build %d: %w", id, ErrNotFound)
	}
	return err
}

// SetStage implements Store.
func (s *SQLStore) SetStage(ctx context.Context, r StageRecord) (StageRecord, error) {
	if err := r.validate(); err != nil {
		return StageRecord{}, err
	}
	r = r.normalize()
	steps, err := json.Marshal(r.Steps)
	if err != nil {
		return StageRecord{}, fmt.Errorf("set stage %s of build %d: %w", r.Stage, r.BuildID, err)
	}
	if r.Steps == nil {
		steps = []byte("[]")
	}
	var out StageRecord
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		if err := buildExists(ctx, tx, r.BuildID); err != nil {
			return err
		}
		d := s.d
		if _, err := tx.ExecContext(ctx, `INSERT INTO build_stages (build_id, stage, status, steps, started, finished, updated)
VALUES (?, ?, ?, ?, ?, ?, ?)
`+d.Upsert("build_id", "stage")+` status = `+d.Inserted("status")+`, steps = `+d.Inserted("steps")+`,
	started = `+d.Inserted("started")+`, finished = `+d.Inserted("finished")+`, updated = `+d.Inserted("updated"),
			r.BuildID, string(r.Stage), string(r.Status), string(steps), nanos(r.Started), nanos(r.Finished), s.now().UnixNano()); err != nil {
			return err
		}
		out, err = scanStage(tx.QueryRowContext(ctx, `SELECT `+stageColumns+` FROM build_stages WHERE build_id = ? AND stage = ?`, r.BuildID, string(r.Stage)))
		if err != nil {
			return err
		}
		return syncProdRelease(ctx, tx, out)
	})
	if err != nil {
		return StageRecord{}, fmt.Errorf("set stage %s of build %d: %w", r.Stage, r.BuildID, err)
	}
	return out, nil
}

// casesPerInsert rows go in one INSERT: 9 parameters each stays far below
// SQLite's parameter limit, and multi-row statements are several times
// faster than one row per statement for large reports.
const casesPerInsert = 100

func insertCases(ctx context.Context, tx *sql.Tx, cases []TestCase, stmts map[int]*sql.Stmt) error {
	for len(cases) > 0 {
		n := min(len(cases), casesPerInsert)
		st, ok := stmts[n]
		if !ok {
			var err error
			st, err = tx.PrepareContext(ctx, `INSERT INTO test_cases (build_id, stage, suite, class, name, duration_ns, status, message) VALUES (?,?,?,?,?,?,?,?)`+
				strings.Repeat(",(?,?,?,?,?,?,?,?)", n-1))
			if err != nil {
				return err
			}
			stmts[n] = st
		}
		args := make([]any, 0, n*8)
		for _, c := range cases[:n] {
			args = append(args, c.BuildID, string(c.Stage), c.Suite, c.Class, c.Name, int64(c.Duration), string(c.Status), c.Message)
		}
		if _, err := st.ExecContext(ctx, args...); err != nil {
			return err
		}
		cases = cases[n:]
	}
	return nil
}

func closeStmts(stmts map[int]*sql.Stmt) {
	for _, st := range stmts {
		st.Close()
	}
}

// addCountsSQL adds test counts to a stage record, creating it pending.
func (s *SQLStore) addCountsSQL() string {
	d := s.d
	return `INSERT INTO build_stages (build_id, stage, status, steps, passed, failed, skipped, errored) VALUES (?, ?, 'pending', '[]', ?, ?, ?, ?)
` + d.Upsert("build_id", "stage") + ` passed = passed + ` + d.Inserted("passed") + `, failed = failed + ` + d.Inserted("failed") + `,
	skipped = skipped + ` + d.Inserted("skipped") + `, errored = errored + ` + d.Inserted("errored")
}

// AddResults implements Store.
func (s *SQLStore) AddResults(ctx context.Context, buildID int64, st Stage, cases []TestCase) (TestCounts, error) {
	add, err := checkCases(buildID, st, cases)
	if err != nil {
		return TestCounts{}, err
	}
	var out TestCounts
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		if err := buildExists(ctx, tx, buildID); err != nil {
			return err
		}
		stmts := map[int]*sql.Stmt{}
		defer closeStmts(stmts)
		if err := insertCases(ctx, tx, cases, stmts); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.addCountsSQL(), buildID, string(st), add.Passed, add.Failed, add.Skipped, add.Errored); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `SELECT passed, failed, skipped, errored FROM build_stages WHERE build_id = ? AND stage = ?`, buildID, string(st)).
			Scan(&out.Passed, &out.Failed, &out.Skipped, &out.Errored)
	})
	if err != nil {
		return TestCounts{}, fmt.Errorf("add %s results of build %d: %w", st, buildID, err)
	}
	return out, nil
}

// ClearResults implements Store.
func (s *SQLStore) ClearResults(ctx context.Context, buildID int64, st Stage) error {
	if !st.Valid() {
		return &FieldsError{What: "results", Fields: map[string]string{"stage": "must be alpha, qa or prod"}}
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := buildExists(ctx, tx, buildID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM test_cases WHERE build_id = ? AND stage = ?`, buildID, string(st)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE build_stages SET passed = 0, failed = 0, skipped = 0, errored = 0 WHERE build_id = ? AND stage = ?`, buildID, string(st))
		return err
	})
	if err != nil {
		return fmt.Errorf("clear %s results of build %d: %w", st, buildID, err)
	}
	return nil
}

// Results implements Store.
func (s *SQLStore) Results(ctx context.Context, buildID int64, st Stage) ([]TestCase, error) {
	var out []TestCase
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := buildExists(ctx, tx, buildID); err != nil {
			return err
		}
		stages := Stages
		if st != "" {
			stages = []Stage{st}
		}
		for _, stage := range stages {
			rows, err := tx.QueryContext(ctx, `SELECT id, build_id, stage, suite, class, name, duration_ns, status, message FROM test_cases WHERE build_id = ? AND stage = ? ORDER BY id`, buildID, string(stage))
			if err != nil {
				return err
			}
			for rows.Next() {
				var c TestCase
				var d int64
				if err := rows.Scan(&c.ID, &c.BuildID, &c.Stage, &c.Suite, &c.Class, &c.Name, &d, &c.Status, &c.Message); err != nil {
					rows.Close()
					return err
				}
				c.Duration = time.Duration(d)
				out = append(out, c)
			}
			if err := errors.Join(rows.Err(), rows.Close()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("results of build %d: %w", buildID, err)
	}
	return out, nil
}

// Audit implements Store.
func (s *SQLStore) Audit(ctx context.Context, e Event) (Event, error) {
	if err := e.validate(); err != nil {
		return Event{}, err
	}
	e = e.normalize(s.now)
	res, err := s.db.ExecContext(ctx, `INSERT INTO audit_events (at, actor, action, service, build_id, stage, details) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		e.Time.UnixNano(), e.Actor, string(e.Action), e.Service, e.BuildID, string(e.Stage), string(e.Details))
	if err != nil {
		return Event{}, fmt.Errorf("audit %s by %s: %w", e.Action, e.Actor, err)
	}
	if e.ID, err = res.LastInsertId(); err != nil {
		return Event{}, fmt.Errorf("audit %s by %s: %w", e.Action, e.Actor, err)
	}
	return e, nil
}

// AuditEvents implements Store.
func (s *SQLStore) AuditEvents(ctx context.Context, q AuditQuery) ([]Event, error) {
	var where []string
	var args []any
	if q.Service != "" {
		where, args = append(where, "service = ?"), append(args, q.Service)
	}
	if q.BuildID != 0 {
		where, args = append(where, "build_id = ?"), append(args, q.BuildID)
	}
	if q.Actor != "" {
		where, args = append(where, "actor = ?"), append(args, q.Actor)
	}
	if q.Action != "" {
		where, args = append(where, "action = ?"), append(args, string(q.Action))
	}
	if q.Before > 0 {
		where, args = append(where, "id < ?"), append(args, q.Before)
	}
	query := `SELECT id, at, actor, action, service, build_id, stage, details FROM audit_events`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit(q.Limit))
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	defer rows.Close()
	var out []Event
	for rows.Next() {
		var e Event
		var at int64
		var details []byte
		if err := rows.Scan(&e.ID, &at, &e.Actor, &e.Action, &e.Service, &e.BuildID, &e.Stage, &details); err != nil {
			return nil, fmt.Errorf("list audit events: %w", err)
		}
		e.Time, e.Details = fromNanos(at), json.RawMessage(details)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit events: %w", err)
	}
	return out, nil
}

// ClaimDelivery implements Store.
func (s *SQLStore) ClaimDelivery(ctx context.Context, id string, at time.Time) (bool, error) {
	claimed := false
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM webhook_deliveries WHERE at < ?`, at.Add(-deliveryMemory).UnixNano()); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, s.d.InsertIgnore()+` webhook_deliveries (id, at) VALUES (?, ?)`, id, at.UnixNano())
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		claimed = n == 1
		return err
	})
	if err != nil {
		return false, fmt.Errorf("claim webhook delivery: %w", err)
	}
	return claimed, nil
}

// ReleaseDelivery implements Store.
func (s *SQLStore) ReleaseDelivery(ctx context.Context, id string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM webhook_deliveries WHERE id = ?`, id); err != nil {
		return fmt.Errorf("release webhook delivery: %w", err)
	}
	return nil
}

// Imported is one build with everything that happened to it, for Import.
type Imported struct {
	Build  Build
	Stages []StageRecord
	Cases  []TestCase
}

// Import stores whole builds, their stage records and test results in one
// transaction, assigning build IDs in order (set on the returned builds'
// IDs, and the BuildID of their stages and cases). It is the bulk path for
// seeding demo data and loading benchmarks; it does not write the audit
// log. A GUID already stored fails the whole import.
func (s *SQLStore) Import(ctx context.Context, builds []Imported) ([]int64, error) {
	ids := make([]int64, 0, len(builds))
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		ins, err := tx.PrepareContext(ctx, insertBuildSQL)
		if err != nil {
			return err
		}
		defer ins.Close()
		stage, err := tx.PrepareContext(ctx, `INSERT INTO build_stages (build_id, stage, status, steps, started, finished, updated, passed, failed, skipped, errored) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
		if err != nil {
			return err
		}
		defer stage.Close()
		stmts := map[int]*sql.Stmt{}
		defer closeStmts(stmts)
		for _, im := range builds {
			if err := im.Build.Validate(); err != nil {
				return err
			}
			id, err := insertBuild(ctx, ins, im.Build.normalize())
			if err != nil {
				return fmt.Errorf("build %s: %w", im.Build.GUID, err)
			}
			ids = append(ids, id)
			counts := map[Stage]TestCounts{}
			cases := make([]TestCase, len(im.Cases))
			for i, c := range im.Cases {
				if !c.Stage.Valid() {
					return &FieldsError{What: "results", Fields: map[string]string{"stage": "must be alpha, qa or prod"}}
				}
				c.BuildID = id
				cases[i] = c
				n := counts[c.Stage]
				n.count(c.Status)
				counts[c.Stage] = n
			}
			for _, r := range im.Stages {
				r.BuildID = id
				if err := r.validate(); err != nil {
					return err
				}
				r = r.normalize()
				steps, err := json.Marshal(r.Steps)
				if err != nil {
					return err
				}
				n := counts[r.Stage]
				delete(counts, r.Stage)
				if _, err := stage.ExecContext(ctx, id, string(r.Stage), string(r.Status), string(steps), nanos(r.Started), nanos(r.Finished), nanos(r.Updated),
					n.Passed, n.Failed, n.Skipped, n.Errored); err != nil {
					return err
				}
				if err := syncProdRelease(ctx, tx, r); err != nil {
					return err
				}
			}
			for st, n := range counts {
				if _, err := tx.ExecContext(ctx, s.addCountsSQL(), id, string(st), n.Passed, n.Failed, n.Skipped, n.Errored); err != nil {
					return err
				}
			}
			if err := insertCases(ctx, tx, cases, stmts); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("import builds: %w", err)
	}
	return ids, nil
}

// PutLock implements Store. Replacing is a delete and an insert in one
// transaction: the same SQL on SQLite and MySQL.
func (s *SQLStore) PutLock(ctx context.Context, l Lock) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM env_locks WHERE service = ? AND env = ?`, l.Service, l.Env); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO env_locks (service, env, owner, reason, created, expires) VALUES (?, ?, ?, ?, ?, ?)`,
			l.Service, l.Env, l.Owner, l.Reason, nanos(l.Created), nanos(l.Expires))
		return err
	})
	if err != nil {
		return fmt.Errorf("lock %s of %s: %w", l.Env, l.Service, err)
	}
	return nil
}

// DeleteLock implements Store.
func (s *SQLStore) DeleteLock(ctx context.Context, service, env string) (bool, error) {
	return s.deleteHold(ctx, "env_locks", service, env)
}

// PutPin implements Store.
func (s *SQLStore) PutPin(ctx context.Context, p Pin) error {
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM env_pins WHERE service = ? AND env = ?`, p.Service, p.Env); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO env_pins (service, env, build_id, version, pinned_by, reason, since) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			p.Service, p.Env, p.BuildID, p.Version, p.By, p.Reason, nanos(p.Since))
		return err
	})
	if err != nil {
		return fmt.Errorf("pin %s of %s: %w", p.Env, p.Service, err)
	}
	return nil
}

// DeletePin implements Store.
func (s *SQLStore) DeletePin(ctx context.Context, service, env string) (bool, error) {
	return s.deleteHold(ctx, "env_pins", service, env)
}

// deleteHold removes a row of table (env_locks or env_pins, constants).
func (s *SQLStore) deleteHold(ctx context.Context, table, service, env string) (bool, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM `+table+` WHERE service = ? AND env = ?`, service, env)
	if err != nil {
		return false, fmt.Errorf("delete %s of %s: %w", env, service, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("delete %s of %s: %w", env, service, err)
	}
	return n > 0, nil
}

// LocksAndPins implements Store.
func (s *SQLStore) LocksAndPins(ctx context.Context, service string) ([]Lock, []Pin, error) {
	where, args := "", []any{}
	if service != "" {
		where, args = ` WHERE service = ?`, append(args, service)
	}
	locks, pins := []Lock{}, []Pin{}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT service, env, owner, reason, created, expires FROM env_locks`+where+` ORDER BY service, env`, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var l Lock
			var created, expires int64
			if err := rows.Scan(&l.Service, &l.Env, &l.Owner, &l.Reason, &created, &expires); err != nil {
				rows.Close()
				return err
			}
			l.Created, l.Expires = fromNanos(created), fromNanos(expires)
			locks = append(locks, l)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		rows, err = tx.QueryContext(ctx, `SELECT service, env, build_id, version, pinned_by, reason, since FROM env_pins`+where+` ORDER BY service, env`, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var p Pin
			var since int64
			if err := rows.Scan(&p.Service, &p.Env, &p.BuildID, &p.Version, &p.By, &p.Reason, &since); err != nil {
				rows.Close()
				return err
			}
			p.Since = fromNanos(since)
			pins = append(pins, p)
		}
		return errors.Join(rows.Err(), rows.Close())
	})
	if err != nil {
		return nil, nil, fmt.Errorf("locks and pins: %w", err)
	}
	return locks, pins, nil
}

const promotionColumns = `id, build_id, service, version, env, kind, state, requested_by, override, deploy_id, run_env, error, started, updated, ended, runner`

func scanPromotion(r scanner) (Promotion, error) {
	var p Promotion
	var override int
	var started, updated, ended int64
	if err := r.Scan(&p.ID, &p.BuildID, &p.Service, &p.Version, &p.Env, &p.Kind, &p.State, &p.By, &override,
		&p.DeployID, &p.RunEnv, &p.Error, &started, &updated, &ended, &p.Runner); err != nil {
		return Promotion{}, err
	}
	p.Override = override != 0
	p.Started, p.Updated, p.Ended = fromNanos(started), fromNanos(updated), fromNanos(ended)
	return p, nil
}

// SavePromotion implements Store.
func (s *SQLStore) SavePromotion(ctx context.Context, p Promotion) (Promotion, error) {
	override := 0
	if p.Override {
		override = 1
	}
	args := []any{p.BuildID, p.Service, p.Version, p.Env, p.Kind, string(p.State), p.By, override,
		p.DeployID, p.RunEnv, p.Error, nanos(p.Started), nanos(p.Updated), nanos(p.Ended), p.Runner}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := buildExists(ctx, tx, p.BuildID); err != nil {
			return err
		}
		if p.ID == 0 {
			res, err := tx.ExecContext(ctx, `INSERT INTO promotions (build_id, service, version, env, kind, state, requested_by, override, deploy_id, run_env, error, started, updated, ended, runner)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, args...)
			if err != nil {
				return err
			}
			p.ID, err = res.LastInsertId()
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE promotions SET build_id = ?, service = ?, version = ?, env = ?, kind = ?, state = ?, requested_by = ?, override = ?,
	deploy_id = ?, run_env = ?, error = ?, started = ?, updated = ?, ended = ?, runner = ? WHERE id = ?`, append(args, p.ID)...)
		if err != nil {
			return err
		}
		// MySQL counts changed rows, not matched ones: an unchanged save
		// affects none, so look the row up before calling it missing.
		if n, err := res.RowsAffected(); err != nil || n > 0 {
			return err
		}
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM promotions WHERE id = ?`, p.ID).Scan(&one); errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("promotion %d: %w", p.ID, ErrNotFound)
		} else if err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return Promotion{}, fmt.Errorf("save promotion of build %d to %s: %w", p.BuildID, p.Env, err)
	}
	return normalizePromotion(p), nil
}

// Promotions implements Store.
func (s *SQLStore) Promotions(ctx context.Context, q PromotionQuery) ([]Promotion, error) {
	var where []string
	var args []any
	if q.BuildID != 0 {
		where, args = append(where, "build_id = ?"), append(args, q.BuildID)
	}
	if q.Service != "" {
		where, args = append(where, "service = ?"), append(args, q.Service)
	}
	if q.Env != "" {
		where, args = append(where, "env = ?"), append(args, q.Env)
	}
	if q.State != "" {
		where, args = append(where, "state = ?"), append(args, string(q.State))
	}
	if q.Running {
		where, args = append(where, "state IN (?, ?, ?)"), append(args, string(PromotionPending), string(PromotionDeploying), string(PromotionTesting))
	}
	if q.Runner != "" {
		where, args = append(where, "runner = ?"), append(args, q.Runner)
	}
	query := `SELECT ` + promotionColumns + ` FROM promotions`
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, " AND ")
	}
	query += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit(q.Limit))
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("list promotions: %w", err)
	}
	out, err := sqldb.Collect(rows, func(r *sql.Rows) (Promotion, error) { return scanPromotion(r) })
	if err != nil {
		return nil, fmt.Errorf("list promotions: %w", err)
	}
	return out, nil
}
