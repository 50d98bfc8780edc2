package headquarter

import (
	"context"
	"database/sql"
	"errors"
	"slices"
)

// Decision writes (Record, Start, Finish) are group-committed: a write
// joins a queue, and one goroutine, started when the queue fills and gone
// when it empties, runs every queued write in one transaction. On SQLite
// the store has one connection: a tick's hundred Starts, and two seconds
// later their hundred Finishes, were two hundred transactions that the
// Loop's policy read queued behind (p99 tick lag 180 ms at 10,000 services,
// against 45 ms in memory). Each caller still returns only once its write
// is committed, or has failed, so "record before acting" holds.

// maxWriteBatch bounds the writes in one transaction, so that a read
// waiting for the connection waits for one bounded batch.
const maxWriteBatch = 32

// writeOp is one queued write.
type writeOp struct {
	ctx  context.Context
	f    func(ctx context.Context, w *writeTx) error
	done chan error // buffered: the committer never waits for the caller
}

// writeTx is the transaction a batch of writes shares, with the
// decision statements prepared once for the batch.
type writeTx struct {
	tx  *sql.Tx
	ins *inserter
}

func (w *writeTx) inserter(ctx context.Context) (inserter, error) {
	if w.ins == nil {
		ins, err := prepareInsert(ctx, w.tx)
		if err != nil {
			return inserter{}, err
		}
		w.ins = &ins
	}
	return *w.ins, nil
}

func (w *writeTx) close() {
	if w.ins != nil {
		w.ins.close()
	}
}

// write runs f in a transaction shared with the writes queued beside it
// and returns once that transaction has committed or failed. f must write
// only through w and be safe to run again: when any write of a batch
// fails, the batch is rolled back and each of its writes is retried in a
// transaction of its own, so one failing write fails only its caller. An
// error f returns before it has written anything, wrapped in unwritten,
// goes to the caller without failing the batch.
//
// When ctx ends while the write is still queued it is withdrawn and
// ctx.Err() returned; once a transaction has taken it, its caller waits
// for the outcome, so that a Start the caller saw fail is never stored.
func (s *SQLStore) write(ctx context.Context, f func(ctx context.Context, w *writeTx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	op := &writeOp{ctx: ctx, f: f, done: make(chan error, 1)}
	s.wmu.Lock()
	s.pending = append(s.pending, op)
	if !s.writing {
		s.writing = true
		go s.writeLoop()
	}
	s.wmu.Unlock()
	select {
	case err := <-op.done:
		return err
	case <-ctx.Done():
		s.wmu.Lock()
		if i := slices.Index(s.pending, op); i >= 0 {
			s.pending = slices.Delete(s.pending, i, i+1)
			s.wmu.Unlock()
			return ctx.Err()
		}
		s.wmu.Unlock()
		return <-op.done
	}
}

// writeLoop commits the queued writes batch by batch and exits when none
// are left.
func (s *SQLStore) writeLoop() {
	for {
		s.wmu.Lock()
		n := min(len(s.pending), maxWriteBatch)
		if n == 0 {
			s.writing = false
			s.wmu.Unlock()
			return
		}
		batch := slices.Clone(s.pending[:n])
		s.pending = slices.Delete(s.pending, 0, n)
		s.wmu.Unlock()
		s.commit(batch)
	}
}

// unwritten is an error a write returns before writing anything, such as
// Finish's ErrEnded: it fails only its own caller, and the batch goes on.
type unwritten struct{ err error }

func (u unwritten) Error() string { return u.err.Error() }

// commit runs batch in one transaction and tells each write its outcome.
func (s *SQLStore) commit(batch []*writeOp) {
	errs := make([]error, len(batch))
	// The transaction outlives any one caller's cancellation: each write
	// runs its statements under its own ctx.
	err := s.inTx(context.WithoutCancel(batch[0].ctx), func(tx *sql.Tx) error {
		w := &writeTx{tx: tx}
		defer w.close()
		for i, op := range batch {
			if err := op.ctx.Err(); err != nil {
				errs[i] = err // withdrawn before writing anything
				continue
			}
			err := op.f(op.ctx, w)
			var nw unwritten
			switch {
			case errors.As(err, &nw):
				errs[i] = nw.err
			case err != nil:
				return err
			}
		}
		return nil
	})
	switch {
	case err == nil:
		for i, op := range batch {
			op.done <- errs[i]
		}
	case len(batch) == 1:
		batch[0].done <- err
	default:
		for _, op := range batch {
			s.commit([]*writeOp{op})
		}
	}
}
