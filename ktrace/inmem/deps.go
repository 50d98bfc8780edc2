package inmem

import (
	"slices"
	"strings"
	"time"

	"github.com/kplane/kplane/ktrace"
)

// DependencyBucket is the granularity at which edges are counted: an edge
// belongs to the hour of its child span's start.
const DependencyBucket = time.Hour

// Node is what edge counting needs to know of a stored span.
type Node struct {
	SpanID, Parent ktrace.SpanID
	Service        string
	Error          bool
	Start          time.Time
}

// Edge is one parent/child call to count.
type Edge struct {
	Parent, Child string
	Error         bool
	// Hour is the child's start truncated to DependencyBucket.
	Hour time.Time
}

// NewEdges returns the edges that writing added closes within one trace,
// given the spans of that trace stored before (stored, without added) and
// the spans newly stored (added). Every parent/child pair is counted
// exactly once, when the second of the two arrives, whichever it is; a
// pair within one service is not an edge.
func NewEdges(stored, added []Node) []Edge {
	var out []Edge
	byID := make(map[ktrace.SpanID]*Node, len(stored)+len(added))
	for i := range stored {
		byID[stored[i].SpanID] = &stored[i]
	}
	isNew := make(map[ktrace.SpanID]bool, len(added))
	for i := range added {
		byID[added[i].SpanID] = &added[i]
		isNew[added[i].SpanID] = true
	}
	edge := func(p, c *Node) {
		if p.Service != c.Service {
			out = append(out, Edge{Parent: p.Service, Child: c.Service, Error: c.Error, Hour: c.Start.UTC().Truncate(DependencyBucket)})
		}
	}
	// A new child whose parent is known, stored or new.
	for i := range added {
		c := &added[i]
		if p, ok := byID[c.Parent]; ok && !c.Parent.IsZero() {
			edge(p, c)
		}
	}
	// A stored child waiting for a parent that just arrived.
	for i := range stored {
		c := &stored[i]
		if !c.Parent.IsZero() && isNew[c.Parent] {
			edge(byID[c.Parent], c)
		}
	}
	return out
}

// SortDependencies orders edges by parent, then child.
func SortDependencies(deps []ktrace.Dependency) {
	slices.SortFunc(deps, func(a, b ktrace.Dependency) int {
		if c := strings.Compare(a.Parent, b.Parent); c != 0 {
			return c
		}
		return strings.Compare(a.Child, b.Child)
	})
}
