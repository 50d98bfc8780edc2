package process

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/kplane/kplane/signalman"
)

// Spec says how to start one instance of a service.
//
// Args and Env may contain placeholders, expanded per instance:
// {id} (instance ID), {service}, {env}, {version}, {n} (instance number).
type Spec struct {
	Path    string   // executable
	Args    []string // arguments, with placeholders
	Env     []string // extra KEY=VALUE entries, with placeholders
	Version string   // reported version of the instances
}

type launch struct {
	id     string
	n      int
	target signalman.Target
	spec   Spec
}

func instanceID(t signalman.Target, n int) string {
	if t.Env == "" {
		return t.Service + "-" + strconv.Itoa(n)
	}
	return t.Service + "-" + t.Env + "-" + strconv.Itoa(n)
}

func (l launch) expand(s string) string {
	return strings.NewReplacer(
		"{id}", l.id,
		"{service}", l.target.Service,
		"{env}", l.target.Env,
		"{version}", l.spec.Version,
		"{n}", strconv.Itoa(l.n),
	).Replace(s)
}

func (l launch) args() []string {
	out := make([]string, len(l.spec.Args))
	for i, a := range l.spec.Args {
		out[i] = l.expand(a)
	}
	return out
}

func (l launch) env() []string {
	out := make([]string, len(l.spec.Env))
	for i, e := range l.spec.Env {
		out[i] = l.expand(e)
	}
	return out
}

func (s Spec) validate(service string) error {
	if s.Path == "" {
		return fmt.Errorf("process: service %q: spec has no executable path", service)
	}
	return nil
}
