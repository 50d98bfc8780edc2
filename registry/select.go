package registry

import "fmt"

// Fallback says what Select returns when a tag is asked for and no
// instance of the service carries it.
//
// The case it exists for: a per-build test environment tags the instances
// it starts with its build ID, and its callers select with that tag so the
// build's services call only each other. A dependency the build did not
// redeploy has no instance with the tag, and the caller falls back to the
// shared instances, which carry no tags at all.
type Fallback int

const (
	// FallbackNone returns ErrNoInstances: only tagged instances may be
	// called. The zero value, because calling an instance of the wrong
	// environment is worse than failing loudly.
	FallbackNone Fallback = iota
	// FallbackUntagged returns the instances with no tags at all: the
	// shared pool. Instances tagged for another environment are never
	// chosen.
	FallbackUntagged
	// FallbackAny returns every instance of the service, whatever its
	// tags.
	FallbackAny
)

func (f Fallback) String() string {
	switch f {
	case FallbackNone:
		return "none"
	case FallbackUntagged:
		return "untagged"
	case FallbackAny:
		return "any"
	}
	return fmt.Sprintf("Fallback(%d)", int(f))
}

// Selector chooses among the instances of a service.
//
// A non-empty Env first keeps only the instances registered in that
// environment: the same service runs side by side in dev, alpha, qa and
// prod, and a caller in one must not reach another's instances. Env has no
// fallback. Then, with an empty Tag every instance qualifies. Otherwise the instances
// carrying Tag are chosen; only if there are none does Fallback apply.
// Tagged and fallback instances are never mixed: if one tagged instance
// exists, all traffic goes to it.
type Selector struct {
	Env      string
	Tag      string
	Fallback Fallback
}

// Select returns the cached instances of name chosen by s, sorted by ID.
// It returns an error wrapping ErrNoInstances when none qualify.
func (w *Watcher) Select(name string, s Selector) ([]Instance, error) {
	return s.apply(name, w.Instances(name))
}

func (s Selector) apply(name string, all []Instance) ([]Instance, error) {
	if s.Env != "" {
		all = filter(all, func(in Instance) bool { return in.Env == s.Env })
		if len(all) == 0 {
			return nil, fmt.Errorf("registry: service %q in env %q: %w", name, s.Env, ErrNoInstances)
		}
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("registry: service %q: %w", name, ErrNoInstances)
	}
	if s.Tag == "" {
		return all, nil
	}
	if tagged := filter(all, func(in Instance) bool { return in.HasTag(s.Tag) }); len(tagged) > 0 {
		return tagged, nil
	}
	var out []Instance
	switch s.Fallback {
	case FallbackUntagged:
		out = filter(all, func(in Instance) bool { return len(in.Tags) == 0 })
	case FallbackAny:
		out = all
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("registry: service %q: tag %q (fallback %s): %w", name, s.Tag, s.Fallback, ErrNoInstances)
	}
	return out, nil
}

func filter(in []Instance, keep func(Instance) bool) []Instance {
	var out []Instance
	for _, i := range in {
		if keep(i) {
			out = append(out, i)
		}
	}
	return out
}
