package hawaii

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// stageWriter is what a stage run writes: the automatic stages' writes
// go through fencedWriter on the leader, a person's promotion straight to
// the Store on the replica that served it.
type stageWriter interface {
	SetStage(ctx context.Context, r StageRecord) (StageRecord, error)
	SavePromotion(ctx context.Context, p Promotion) (Promotion, error)
	Audit(ctx context.Context, e Event) (Event, error)
	AddResults(ctx context.Context, buildID int64, st Stage, cases []TestCase) (TestCounts, error)
	ClearResults(ctx context.Context, buildID int64, st Stage) error
}

var _ stageWriter = Store(nil)

// fenceRetries bounds how often a fence that cannot tell (etcd slow or
// unreachable) is asked again before the write is dropped.
var fenceRetries = []time.Duration{200 * time.Millisecond, 500 * time.Millisecond, time.Second}

// fencedWriter asks the fence before every write, so that a replica that
// lost the leadership, though alive, writes nothing more: its write is
// refused whole (ErrNotLeader), never half-applied. A window of one fence
// check remains between the check and the write.
type fencedWriter struct {
	next  stageWriter
	fence func(ctx context.Context) error
}

func (w fencedWriter) check(ctx context.Context, what string) error {
	var err error
	for i := 0; ; i++ {
		if err = w.fence(ctx); err == nil {
			return nil
		}
		if errors.Is(err, ErrNotLeader) || i == len(fenceRetries) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(fenceRetries[i]):
		}
	}
	if !errors.Is(err, ErrNotLeader) {
		err = fmt.Errorf("%w: cannot check the fence: %w", ErrNotLeader, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func (w fencedWriter) SetStage(ctx context.Context, r StageRecord) (StageRecord, error) {
	if err := w.check(ctx, "set stage"); err != nil {
		return StageRecord{}, err
	}
	return w.next.SetStage(ctx, r)
}

func (w fencedWriter) SavePromotion(ctx context.Context, p Promotion) (Promotion, error) {
	if err := w.check(ctx, "save promotion"); err != nil {
		return Promotion{}, err
	}
	return w.next.SavePromotion(ctx, p)
}

func (w fencedWriter) Audit(ctx context.Context, e Event) (Event, error) {
	if err := w.check(ctx, "audit"); err != nil {
		return Event{}, err
	}
	return w.next.Audit(ctx, e)
}

func (w fencedWriter) AddResults(ctx context.Context, buildID int64, st Stage, cases []TestCase) (TestCounts, error) {
	if err := w.check(ctx, "add results"); err != nil {
		return TestCounts{}, err
	}
	return w.next.AddResults(ctx, buildID, st, cases)
}

func (w fencedWriter) ClearResults(ctx context.Context, buildID int64, st Stage) error {
	if err := w.check(ctx, "clear results"); err != nil {
		return err
	}
	return w.next.ClearResults(ctx, buildID, st)
}
