// Package storetest is the conformance suite of the ktrace span store: one
// set of tests that every ktrace.Store backend runs, so that the in-memory
// store used by other packages' tests behaves like SQLite and MariaDB.
//
// A backend's test calls Run with a function that returns a fresh, empty
// store for each subtest:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) ktrace.Store { return inmem.New(inmem.Config{}) })
//	}
//
// The suite pins down what ktrace.Store's doc comment leaves to the
// backends:
//
//   - A span with a zero trace ID, a zero span ID or a zero start time is
//     ErrInvalid, and the whole batch is rejected.
//   - Returned times are compared with time.Equal at nanosecond precision;
//     a nil map and an empty map are the same value.
//   - FindTraces matches a trace when one of its spans satisfies every
//     condition at once (service, operation, duration bounds, start in the
//     time range, all tags), as Jaeger does; results are newest first by
//     the trace's start.
//   - A dependency edge is counted once per parent/child span pair whose
//     services differ, when the second of the two is stored, in the hour
//     of the child's start; Dependencies returns the hours that overlap
//     [start, end).
//
// The suite does not test durability across a restart; backends with a
// disk do that in their own tests.
package storetest
