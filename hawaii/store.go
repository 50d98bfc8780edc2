package hawaii

import (
	"context"
	"time"
)

// Listing limits for BuildQuery and AuditQuery.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

func limit(n int) int {
	switch {
	case n <= 0:
		return DefaultLimit
	case n > MaxLimit:
		return MaxLimit
	}
	return n
}

// BuildQuery selects builds, newest first. Zero values mean every service
// and DefaultLimit. Before is a build ID: only older builds are listed
// (keyset paging — pass the last ID of the previous page).
type BuildQuery struct {
	Service string
	Before  int64
	Limit   int
}

// Store keeps builds, their stage records and test results, the audit
// log, the locks and pins of environments and the promotions. SQLStore and MemoryStore implement it and pass the same conformance
// suite.
//
// Implementations are safe for concurrent use. Returned values belong to
// the caller. Context cancellation aborts a call with the context's error
// and leaves nothing half-written: every method is one transaction.
type Store interface {
	// Report stores b, which has passed Validate, and assigns its ID. If a
	// build with b.GUID is stored already it is returned unchanged with
	// created false: builds are immutable.
	Report(ctx context.Context, b Build) (stored Build, created bool, err error)
	// Build returns a build with its stage records, or ErrNotFound.
	Build(ctx context.Context, id int64) (BuildView, error)
	// BuildByGUID returns the build CI reported with guid, or ErrNotFound.
	BuildByGUID(ctx context.Context, guid string) (BuildView, error)
	// Builds lists builds with their stage records, newest (largest ID)
	// first.
	Builds(ctx context.Context, q BuildQuery) ([]BuildView, error)

	// SetStage stores the status, steps and start and finish times of
	// r.Stage of build r.BuildID, replacing the previous ones (r.Tests is
	// ignored: the store counts results itself). ErrNotFound if the build
	// does not exist, ErrInvalid for an unknown stage.
	SetStage(ctx context.Context, r StageRecord) (StageRecord, error)
	// AddResults appends test cases of one test run to a stage of a build
	// and returns the stage's new counts. Every case must have the same
	// BuildID and a valid Stage. ErrNotFound if the build does not exist.
	AddResults(ctx context.Context, buildID int64, st Stage, cases []TestCase) (TestCounts, error)
	// ClearResults removes a stage's results before it is run again.
	ClearResults(ctx context.Context, buildID int64, st Stage) error
	// Results lists the test cases of a build, of one stage if st is not
	// empty, in stage order and then insertion order.
	Results(ctx context.Context, buildID int64, st Stage) ([]TestCase, error)
	// ResultsPage returns one page of the test cases of a build (of one
	// stage if q.Stage is not empty) in PageResults' order — failed and
	// errored first, then the rest, each group in stage then insertion
	// order — with Total and Failing counting the whole selection. It
	// reads only the page, not every case. ErrNotFound if the build does
	// not exist.
	ResultsPage(ctx context.Context, buildID int64, q ResultQuery) (ResultPage, error)

	// Audit appends an event to the audit log, setting its ID and, when
	// zero, its time.
	Audit(ctx context.Context, e Event) (Event, error)
	// AuditEvents lists events newest first.
	AuditEvents(ctx context.Context, q AuditQuery) ([]Event, error)

	// ClaimDelivery records a webhook delivery ID (Standard Webhooks
	// webhook-id) seen at time at. It returns false if the ID was claimed
	// already: the delivery is a retry or a replay and must not be applied
	// twice. Claims older than twice the signature window are forgotten.
	ClaimDelivery(ctx context.Context, id string, at time.Time) (bool, error)
	// ReleaseDelivery forgets a claim whose processing failed, so that the
	// sender's retry is applied.
	ReleaseDelivery(ctx context.Context, id string) error

	// PutLock stores l, replacing any lock on l.Env of l.Service.
	PutLock(ctx context.Context, l Lock) error
	// DeleteLock removes the lock on env of service (expired or not) and
	// reports whether there was one.
	DeleteLock(ctx context.Context, service, env string) (bool, error)
	// PutPin stores p, replacing any pin on p.Env of p.Service.
	PutPin(ctx context.Context, p Pin) error
	// DeletePin removes the pin on env of service and reports whether
	// there was one.
	DeletePin(ctx context.Context, service, env string) (bool, error)
	// LocksAndPins lists the locks, expired ones included (see
	// Lock.Active), and the pins of service, of every service if it is
	// empty, ordered by service and environment.
	LocksAndPins(ctx context.Context, service string) ([]Lock, []Pin, error)

	// SavePromotion stores p. With ID 0 it is added and given the next ID
	// (IDs only grow); otherwise it replaces the promotion with that ID,
	// ErrNotFound if there is none. ErrNotFound too if its build does not
	// exist.
	SavePromotion(ctx context.Context, p Promotion) (Promotion, error)
	// Promotions lists promotions newest (largest ID) first.
	Promotions(ctx context.Context, q PromotionQuery) ([]Promotion, error)
}

// PromotionQuery selects promotions. Zero values select everything and
// DefaultLimit of it.
type PromotionQuery struct {
	BuildID int64
	Service string
	Env     string
	State   PromotionState
	// Running keeps only the promotions that have not ended.
	Running bool
	// Runner keeps only the promotions of one replica (Promotion.Runner).
	Runner string
	Limit  int
}

// match reports whether p is selected by q (limit aside).
func (q PromotionQuery) match(p Promotion) bool {
	return (q.BuildID == 0 || p.BuildID == q.BuildID) && (q.Service == "" || p.Service == q.Service) &&
		(q.Env == "" || p.Env == q.Env) && (q.State == "" || p.State == q.State) &&
		(!q.Running || !p.State.Done()) && (q.Runner == "" || p.Runner == q.Runner)
}
