package hawaii

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// The SweepStore methods of the stores.

// interruptStage fails a running stage record at at: its running steps
// end failed with reason, or, if none was running, a step says why.
func interruptStage(rec *StageRecord, at time.Time, reason string) {
	rec.Status, rec.Finished = StatusFailed, at
	marked := false
	for i := range rec.Steps {
		if s := &rec.Steps[i]; s.Status == StatusRunning {
			s.Status, s.Finished, s.Message = StatusFailed, at, reason
			marked = true
		}
	}
	if !marked {
		rec.Steps = append(rec.Steps, Step{Name: "interrupted", Status: StatusFailed, Started: at, Finished: at, Message: reason})
	}
}

func interruptEvent(pr Promotion, at time.Time, reason string) Event {
	return Event{Time: at, Actor: "pipeline", Action: ActionStageChanged, Service: pr.Service, BuildID: pr.BuildID,
		Stage: Stage(pr.Env), Details: Details(map[string]string{"status": string(StatusFailed), "reason": reason,
			"runner": pr.Runner, "promotion": strconv.FormatInt(pr.ID, 10)})}
}

// InterruptPromotion implements SweepStore.
func (s *MemoryStore) InterruptPromotion(ctx context.Context, id int64, runner string, at time.Time, reason string) (Promotion, bool, error) {
	if err := ctx.Err(); err != nil {
		return Promotion{}, false, err
	}
	at = storedTime(at)
	s.mu.Lock()
	defer s.mu.Unlock()
	if id < 1 || id > int64(len(s.promotions)) {
		return Promotion{}, false, nil
	}
	pr := s.promotions[id-1]
	if pr.Runner != runner || pr.State.Done() {
		return Promotion{}, false, nil
	}
	if err := pr.Advance(PromotionFailed, at, reason); err != nil {
		return Promotion{}, false, err
	}
	s.promotions[id-1] = pr
	if rec, ok := s.stages[pr.BuildID][Stage(pr.Env)]; ok && rec.Status == StatusRunning {
		rec.Steps = slices.Clone(rec.Steps)
		interruptStage(&rec, at, reason)
		rec.Updated = storedTime(s.now())
		s.stages[pr.BuildID][Stage(pr.Env)] = rec
	}
	e := interruptEvent(pr, at, reason).normalize(s.now)
	e.ID = int64(len(s.events)) + 1
	s.events = append(s.events, e)
	return pr, true, nil
}

// InterruptPromotion implements SweepStore. The conditional UPDATE comes
// first: on MySQL it locks the row, so a second sweeper's waits and then
// matches nothing; SQLite runs one writer at a time.
func (s *SQLStore) InterruptPromotion(ctx context.Context, id int64, runner string, at time.Time, reason string) (Promotion, bool, error) {
	var pr Promotion
	done := false
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE promotions SET state = ?, error = ?, updated = ?, ended = ?
WHERE id = ? AND runner = ? AND state IN (?, ?, ?)`,
			string(PromotionFailed), reason, nanos(at), nanos(at), id, runner,
			string(PromotionPending), string(PromotionDeploying), string(PromotionTesting))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		if pr, err = scanPromotion(tx.QueryRowContext(ctx, `SELECT `+promotionColumns+` FROM promotions WHERE id = ?`, id)); err != nil {
			return err
		}
		rec, err := scanStage(tx.QueryRowContext(ctx, `SELECT `+stageColumns+` FROM build_stages WHERE build_id = ? AND stage = ?`, pr.BuildID, pr.Env))
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		case rec.Status == StatusRunning:
			interruptStage(&rec, at, reason)
			rec = rec.normalize()
			steps, err := json.Marshal(rec.Steps)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE build_stages SET status = ?, steps = ?, finished = ?, updated = ? WHERE build_id = ? AND stage = ?`,
				string(rec.Status), string(steps), nanos(rec.Finished), s.now().UnixNano(), rec.BuildID, string(rec.Stage)); err != nil {
				return err
			}
		}
		e := interruptEvent(pr, at, reason).normalize(s.now)
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit_events (at, actor, action, service, build_id, stage, details) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			e.Time.UnixNano(), e.Actor, string(e.Action), e.Service, e.BuildID, string(e.Stage), string(e.Details)); err != nil {
			return err
		}
		done = true
		return nil
	})
	if err != nil {
		return Promotion{}, false, fmt.Errorf("interrupt promotion %d of %s: %w", id, runner, err)
	}
	return pr, done, nil
}
