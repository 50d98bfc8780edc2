// Package headquarter decides how many instances each service runs: a
// policy per service, a k-of-n vote of QPS per instance, CPU and memory,
// and guards, each decision a value that explains itself and is stored.
//
// Evaluate is the whole decision rule, a pure function of a Policy, the
// service's State, an Input and now: the Loop, the tests and
// `kplane hq replay` all run it. The Loop ticks (default every 5 s): it
// observes every service, evaluates each one with a policy, records the
// decisions that act or were held back by a guard, and hands each scale to
// the Scaler on its own goroutine, so that one slow orchestrator call
// delays nobody; while it is in flight the service is "busy". A Scale that
// changes nothing (no-op) starts no cooldown; a busy one is retried on a
// later tick.
//
// Headquarter must not import scout or signalman: it declares the two small
// interfaces it consumes, Observer and Scaler, and cmd/kplane adapts scout's
// snapshots and signalman's orchestrator to them (a test enforces this).
// Only the leader acts: Leader campaigns through etcd's concurrency.Election,
// runs the Loop while it leads, cancels it the moment it stops leading, and
// Leader.Fenced refuses a deposed leader's Scale calls.
//
// Use:
//
//	store := headquarter.NewSQLStore(db, nil)
//	loop, err := headquarter.NewLoop(headquarter.LoopConfig{
//		Observer:  observer,            // adapts scout
//		Scaler:    leader.Fenced(scaler), // adapts signalman
//		Policies:  store,
//		Decisions: store,
//		Logger:    logger.With("component", "headquarter"),
//	})
//	err = leader.Run(ctx, loop.Run)
package headquarter
