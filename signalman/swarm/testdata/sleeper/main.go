// Command sleeper is the instance program of the swarm driver's tests: a
// static binary for a FROM-scratch image that runs until SIGTERM.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
