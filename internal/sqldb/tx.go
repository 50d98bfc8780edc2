package sqldb

import (
	"context"
	"database/sql"
	"errors"
)

// InTx runs fn in one transaction of db and commits it if fn returns nil;
// otherwise it rolls back and returns fn's error, joined with the
// rollback's if that failed too.
func InTx(ctx context.Context, db *sql.DB, fn func(*sql.Tx) error) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			if rbErr := tx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
				err = errors.Join(err, rbErr)
			}
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}
