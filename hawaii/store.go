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

// Store keeps builds, their stage records and test results, and the audit
// log. SQLStore and MemoryStore implement it and pass the same conformance
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
}
