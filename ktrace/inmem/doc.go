// Package inmem is a bounded in-memory ktrace.Store: the store other
// packages' tests use, and a real choice for a small setup that can lose
// its traces on restart (it is not durable, which is the one promise of
// ktrace.Store it does not keep).
//
// It holds at most Config.MaxSpans spans; beyond that it evicts whole
// traces, oldest written first, and answers Expired for them, as it does
// for traces removed by Expire. It remembers at most Config.MaxExpired
// such trace IDs, forgetting the oldest first (they become Unknown).
//
// The package also defines what a trace search means for every backend:
// Normalize checks and completes a ktrace.Query, Matches tests one span
// against it and Summarize builds a search result, so the SQL stores
// filter the candidates their indexes yield with the same code.
//
// It passes the ktrace/storetest conformance suite.
package inmem
