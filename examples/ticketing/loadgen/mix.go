package loadgen

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
)

// Op is one kind of request in a mix.
type Op struct {
	Name   string // short label, e.g. "buy"
	Weight int    // relative frequency; ops with weight <= 0 are never sent
	Method string
	Path   string // appended to the target, e.g. "/events"
	Body   string // sent as application/json when not empty
}

// Mix is the requests a run chooses from, by weight.
type Mix []Op

// FlashSaleEvent is the demo event the built-in mixes buy from; it matches
// inventory's seeded flash-sale event.
const FlashSaleEvent = "flash-sale"

// mixes are the built-in mixes by name; see Mixes.
func mixes() map[string]Mix {
	browse := Op{Name: "list", Weight: 7, Method: "GET", Path: "/events"}
	view := Op{Name: "view", Weight: 2, Method: "GET", Path: "/events/" + FlashSaleEvent}
	buy := Op{Name: "buy", Weight: 1, Method: "POST", Path: "/events/" + FlashSaleEvent + "/orders", Body: `{"quantity":1,"buyer":"loadgen"}`}
	return map[string]Mix{
		// A sale page: mostly browsing, some buying.
		"sale":   {browse, view, buy},
		"browse": {browse, view},
		"buy":    {{Name: "buy", Weight: 1, Method: buy.Method, Path: buy.Path, Body: buy.Body}},
		// Gates scanning codes that inventory does not know: every request
		// travels checkpoint → registry → inventory and is refused with
		// 404, which loadgen counts as rejected, not failed.
		"scan": {{Name: "scan", Weight: 1, Method: "POST", Path: "/checkins", Body: `{"code":"LOADGEN-NO-SUCH-TICKET"}`}},
	}
}

// DefaultMix is the mix used when Config.Mix is empty.
const DefaultMix = "sale"

// Mixes lists the names of the built-in mixes.
func Mixes() []string {
	var names []string
	for name := range mixes() {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// NamedMix returns a built-in mix: sale (inventory: browse and buy), browse,
// buy (inventory) or scan (checkpoint).
func NamedMix(name string) (Mix, error) {
	m, ok := mixes()[name]
	if !ok {
		return nil, fmt.Errorf("%w: unknown mix %q: want one of %s", ErrInvalidConfig, name, strings.Join(Mixes(), ", "))
	}
	return m, nil
}

func (m Mix) validate() error {
	total := 0
	for _, op := range m {
		if op.Weight <= 0 {
			continue
		}
		if op.Method == "" || !strings.HasPrefix(op.Path, "/") {
			return fmt.Errorf("%w: mix op %q needs a method and a path starting with /", ErrInvalidConfig, op.Name)
		}
		total += op.Weight
	}
	if total == 0 {
		return fmt.Errorf("%w: mix has no op with a positive weight", ErrInvalidConfig)
	}
	return nil
}

// pick chooses an op by weight.
func (m Mix) pick() Op {
	total := 0
	for _, op := range m {
		total += max(op.Weight, 0)
	}
	n := rand.IntN(total)
	for _, op := range m {
		if op.Weight <= 0 {
			continue
		}
		if n < op.Weight {
			return op
		}
		n -= op.Weight
	}
	return m[len(m)-1] // unreachable with validated weights
}
