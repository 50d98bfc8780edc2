// Package process is the signalman driver that runs instances as local
// child processes: the default of `kplane dev`.
//
// Each instance is one child started from a Spec (executable, arguments
// with placeholders, environment). Children run in their own process group,
// so a Ctrl-C in the terminal reaches kplane alone and kplane stops them in
// order; they also get SIGTERM if kplane dies (Linux parent-death signal),
// and a state file lets the next start stop children a crash left behind.
// A child that exits unexpectedly is restarted by Run with a crash-loop
// backoff, keeping the desired count.
//
// Scale-down drains before it stops: the child gets SIGTERM and is expected
// to deregister, keep serving while callers' registry caches catch up,
// finish its in-flight requests and exit (the ticketing demo does); after
// StopTimeout it is killed. Scale returns once the registry no longer lists
// the stopped instances.
//
// The driver does not decide how many instances to run, and it does not
// probe instances itself: it is told by the registry (Confirmer) that a new
// instance has registered.
package process
