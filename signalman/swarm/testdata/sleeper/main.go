// Command sleeper is the instance program of the swarm driver's tests: a
// static binary for a FROM-scratch image that runs until SIGTERM, or
// exits with status 1 at once when one of its arguments is "crash" (a
// version that cannot start).
package main

import (
	"os"
	"os/signal"
	"slices"
	"syscall"
)

func main() {
	if slices.Contains(os.Args[1:], "crash") {
		os.Exit(1)
	}
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
