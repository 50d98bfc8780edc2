package headquarter

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/kplane/kplane/internal/sqldb"
)

// SQLStore is a Store on kplane's SQL database, SQLite or MySQL/MariaDB
// (tables scaling_policies, scaling_decisions and
// scaling_decisions_in_progress, created by internal/sqldb's migrations). Each
// decision is kept whole as JSON beside the columns it is listed by.
type SQLStore struct {
	db  *sql.DB
	d   sqldb.Dialect
	now func() time.Time

	// The Loop lists every policy every tick: the decoded list is kept and
	// reused while the table's (count, newest updated_at) is unchanged, so
	// a tick costs one indexed query instead of decoding every policy.
	// PutPolicy keeps updated_at increasing, so every change moves it.
	mu        sync.Mutex
	cacheKey  [2]int64
	cacheList []Policy

	// Decision writes waiting for a transaction (sqlwrite.go); writing
	// is set while a goroutine commits them.
	wmu     sync.Mutex
	pending []*writeOp
	writing bool
}

var _ Store = (*SQLStore)(nil)

// NewSQLStore returns a store on db, which sqldb.Migrate has brought up to
// date. now stamps policy updates; nil is time.Now.
func NewSQLStore(db *sql.DB, now func() time.Time) *SQLStore {
	if now == nil {
		now = time.Now
	}
	return &SQLStore{db: db, d: sqldb.DialectOf(db), now: now}
}

// Record implements DecisionStore: the batch is written in one
// transaction, shared with other writes queued beside it.
func (s *SQLStore) Record(ctx context.Context, ds ...Decision) error {
	if len(ds) == 0 {
		return nil
	}
	err := s.write(ctx, func(ctx context.Context, w *writeTx) error {
		ins, err := w.inserter(ctx)
		if err != nil {
			return err
		}
		for _, d := range ds {
			if _, err := ins.insert(ctx, d); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record decisions: %w", err)
	}
	return nil
}

// Start implements DecisionStore: the decision and its row in
// scaling_decisions_in_progress are written in one transaction, and Start
// returns once it is committed.
func (s *SQLStore) Start(ctx context.Context, d Decision) (Decision, error) {
	d.Outcome = OutcomeInProgress
	var stored Decision
	err := s.write(ctx, func(ctx context.Context, w *writeTx) error {
		ins, err := w.inserter(ctx)
		if err != nil {
			return err
		}
		if stored, err = ins.insert(ctx, d); err != nil {
			return err
		}
		_, err = w.tx.ExecContext(ctx, `INSERT INTO scaling_decisions_in_progress (id, term) VALUES (?, ?)`, stored.ID, stored.Term)
		return err
	})
	if err != nil {
		return Decision{}, fmt.Errorf("start decision of %s: %w", d.Service, err)
	}
	return stored, nil
}

// Finish implements DecisionStore. Deleting the in-progress row comes
// first: only one of Finish and Interrupt can delete it (on MySQL the
// other waits for the row lock, then finds nothing).
func (s *SQLStore) Finish(ctx context.Context, d Decision) error {
	b, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("finish decision %d: %w", d.ID, err)
	}
	err = s.write(ctx, func(ctx context.Context, w *writeTx) error {
		tx := w.tx
		res, err := tx.ExecContext(ctx, `DELETE FROM scaling_decisions_in_progress WHERE id = ?`, d.ID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			var outcome string
			switch err := tx.QueryRowContext(ctx, `SELECT outcome FROM scaling_decisions WHERE id = ?`, d.ID).Scan(&outcome); {
			case errors.Is(err, sql.ErrNoRows):
				return unwritten{ErrNotFound}
			case err != nil:
				return err
			}
			return unwritten{ErrEnded}
		}
		_, err = tx.ExecContext(ctx, `UPDATE scaling_decisions SET outcome = ?, explanation = ? WHERE id = ?`, string(d.Outcome), string(b), d.ID)
		return err
	})
	if err != nil {
		return fmt.Errorf("finish decision %d: %w", d.ID, err)
	}
	return nil
}

// Interrupt implements DecisionStore.
func (s *SQLStore) Interrupt(ctx context.Context, term int64, at time.Time) ([]Decision, error) {
	var out []Decision
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		q := `SELECT d.explanation FROM scaling_decisions_in_progress p JOIN scaling_decisions d ON d.id = p.id`
		args := []any{}
		if term != 0 {
			q += ` WHERE p.term <> ?`
			args = append(args, term)
		}
		q += ` ORDER BY p.id`
		if s.d.Engine() == sqldb.MySQL {
			q += ` FOR UPDATE`
		}
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		var ended []Decision
		for rows.Next() {
			var b []byte
			if err := rows.Scan(&b); err != nil {
				rows.Close()
				return err
			}
			var d Decision
			if err := json.Unmarshal(b, &d); err != nil {
				rows.Close()
				return fmt.Errorf("decode: %w", err)
			}
			d.Outcome = OutcomeInProgress // whatever the JSON says, the row says so
			if interrupt(&d, term, at) {
				ended = append(ended, d)
			}
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		for _, d := range ended {
			b, err := json.Marshal(d)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `DELETE FROM scaling_decisions_in_progress WHERE id = ?`, d.ID); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE scaling_decisions SET outcome = ?, explanation = ? WHERE id = ?`,
				string(d.Outcome), string(b), d.ID); err != nil {
				return err
			}
		}
		out = ended
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("interrupt decisions: %w", err)
	}
	return out, nil
}

// inserter stores decisions within one transaction.
type inserter struct{ ins, upd *sql.Stmt }

func prepareInsert(ctx context.Context, tx *sql.Tx) (inserter, error) {
	ins, err := tx.PrepareContext(ctx, `INSERT INTO scaling_decisions (service, at, action, guard, outcome, explanation) VALUES (?, ?, ?, ?, ?, '')`)
	if err != nil {
		return inserter{}, err
	}
	// The explanation carries the ID, which is known only after the insert.
	upd, err := tx.PrepareContext(ctx, `UPDATE scaling_decisions SET explanation = ? WHERE id = ?`)
	if err != nil {
		ins.Close()
		return inserter{}, err
	}
	return inserter{ins: ins, upd: upd}, nil
}

func (i inserter) close() {
	i.ins.Close()
	i.upd.Close()
}

func (i inserter) insert(ctx context.Context, d Decision) (Decision, error) {
	res, err := i.ins.ExecContext(ctx, d.Service, d.Time.UnixNano(), string(d.Action), string(d.Guard), string(d.Outcome))
	if err != nil {
		return Decision{}, fmt.Errorf("decision of %s: %w", d.Service, err)
	}
	if d.ID, err = res.LastInsertId(); err != nil {
		return Decision{}, fmt.Errorf("decision of %s: %w", d.Service, err)
	}
	b, err := json.Marshal(d)
	if err != nil {
		return Decision{}, fmt.Errorf("decision of %s: %w", d.Service, err)
	}
	if _, err := i.upd.ExecContext(ctx, string(b), d.ID); err != nil {
		return Decision{}, fmt.Errorf("decision of %s: %w", d.Service, err)
	}
	return d, nil
}

// Decisions implements DecisionStore.
func (s *SQLStore) Decisions(ctx context.Context, q DecisionQuery) ([]Decision, error) {
	var rows *sql.Rows
	var err error
	if q.Service == "" {
		rows, err = s.db.QueryContext(ctx, `SELECT explanation FROM scaling_decisions ORDER BY at DESC, id DESC LIMIT ?`, q.limit())
	} else {
		rows, err = s.db.QueryContext(ctx, `SELECT explanation FROM scaling_decisions WHERE service = ? ORDER BY at DESC, id DESC LIMIT ?`, q.Service, q.limit())
	}
	if err != nil {
		return nil, fmt.Errorf("list decisions: %w", err)
	}
	defer rows.Close()
	var out []Decision
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, fmt.Errorf("list decisions: %w", err)
		}
		var d Decision
		if err := json.Unmarshal(b, &d); err != nil {
			return nil, fmt.Errorf("list decisions: decode: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list decisions: %w", err)
	}
	return out, nil
}

// Policy implements PolicyStore.
func (s *SQLStore) Policy(ctx context.Context, service string) (Policy, error) {
	var b []byte
	err := s.db.QueryRowContext(ctx, `SELECT policy FROM scaling_policies WHERE service = ?`, service).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return Policy{}, fmt.Errorf("policy of %s: %w", service, ErrNotFound)
	}
	if err != nil {
		return Policy{}, fmt.Errorf("policy of %s: %w", service, err)
	}
	var p Policy
	if err := json.Unmarshal(b, &p); err != nil {
		return Policy{}, fmt.Errorf("policy of %s: decode: %w", service, err)
	}
	return p, nil
}

// PutPolicy implements PolicyStore.
func (s *SQLStore) PutPolicy(ctx context.Context, p Policy) error {
	if err := p.Validate(); err != nil {
		return err
	}
	b, err := json.Marshal(p.WithDefaults())
	if err != nil {
		return fmt.Errorf("put policy %s: %w", p.Service, err)
	}
	// updated_at must pass the table's newest even if clocks disagree
	// (another replica's, or a step back): read it and write in one
	// transaction. MySQL does not let an INSERT read its own table in a
	// subquery, so the newest is read first, locked on MySQL so that two
	// replicas cannot pick the same value.
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		q := `SELECT COALESCE(MAX(updated_at), 0) FROM scaling_policies`
		if s.d.Engine() == sqldb.MySQL {
			q += ` FOR UPDATE`
		}
		var newest int64
		if err := tx.QueryRowContext(ctx, q).Scan(&newest); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO scaling_policies (service, policy, updated_at) VALUES (?, ?, ?)
`+s.d.Upsert("service")+` policy = `+s.d.Inserted("policy")+`, updated_at = `+s.d.Inserted("updated_at"),
			p.Service, string(b), max(s.now().UnixNano(), newest+1))
		return err
	})
	if err != nil {
		return fmt.Errorf("put policy %s: %w", p.Service, err)
	}
	return nil
}

func (s *SQLStore) inTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	return sqldb.InTx(ctx, s.db, f)
}

// Policies implements PolicyStore.
func (s *SQLStore) Policies(ctx context.Context) ([]Policy, error) {
	var key [2]int64
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(MAX(updated_at), 0) FROM scaling_policies`).Scan(&key[0], &key[1]); err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	s.mu.Lock()
	if s.cacheList != nil && key == s.cacheKey {
		out := slices.Clone(s.cacheList)
		s.mu.Unlock()
		return out, nil
	}
	s.mu.Unlock()
	out, err := s.listPolicies(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.cacheKey, s.cacheList = key, slices.Clone(out)
	s.mu.Unlock()
	return out, nil
}

func (s *SQLStore) listPolicies(ctx context.Context) ([]Policy, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT policy FROM scaling_policies ORDER BY service`)
	if err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	defer rows.Close()
	var out []Policy
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return nil, fmt.Errorf("list policies: %w", err)
		}
		var p Policy
		if err := json.Unmarshal(b, &p); err != nil {
			return nil, fmt.Errorf("list policies: decode: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	return out, nil
}
