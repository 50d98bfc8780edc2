// Package sqlquery holds the reads and the error rule that the SQLite and
// MySQL span stores share: their schemas differ in how spans are kept, not
// in the operations and dependencies tables, nor in how a failure is
// reported.
package sqlquery

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/kplane/kplane/ktrace"
	"github.com/kplane/kplane/ktrace/inmem"
)

// Querier is a *sql.DB or *sql.Tx.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Fail reports a failed store operation: the caller's cancellation as
// such, anything else as ktrace.ErrUnavailable.
func Fail(ctx context.Context, op string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("span store: %s: %w", op, ctxErr)
	}
	return fmt.Errorf("span store: %s: %w: %w", op, ktrace.ErrUnavailable, err)
}

// Services lists the services with stored spans.
func Services(ctx context.Context, q Querier) ([]string, error) {
	return stringsOf(ctx, q, `SELECT DISTINCT service FROM operations ORDER BY service`)
}

// Operations lists a service's span names.
func Operations(ctx context.Context, q Querier, service string) ([]string, error) {
	return stringsOf(ctx, q, `SELECT name FROM operations WHERE service = ? ORDER BY name`, service)
}

func stringsOf(ctx context.Context, q Querier, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, Fail(ctx, "list", err)
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, Fail(ctx, "list", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, Fail(ctx, "list", err)
	}
	return out, nil
}

// Dependencies sums the hourly edge counts of the hours overlapping
// [start, end).
func Dependencies(ctx context.Context, q Querier, start, end time.Time) ([]ktrace.Dependency, error) {
	rows, err := q.QueryContext(ctx, `SELECT parent, child, SUM(calls), SUM(errors) FROM dependencies
		WHERE hour >= ? AND hour < ? GROUP BY parent, child ORDER BY parent, child`,
		start.UTC().Truncate(inmem.DependencyBucket).Unix(), end.Unix())
	if err != nil {
		return nil, Fail(ctx, "dependencies", err)
	}
	defer rows.Close()
	out := []ktrace.Dependency{}
	for rows.Next() {
		var d ktrace.Dependency
		if err := rows.Scan(&d.Parent, &d.Child, &d.CallCount, &d.ErrorCount); err != nil {
			return nil, Fail(ctx, "dependencies", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, Fail(ctx, "dependencies", err)
	}
	return out, nil
}
