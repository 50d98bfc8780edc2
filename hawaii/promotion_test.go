package hawaii

import (
	"errors"
	"testing"
	"time"
)

// TestPromotionTransitionsEveryPair checks every (from, to) pair of states
// against the allowed edges written out here independently of the table.
func TestPromotionTransitionsEveryPair(t *testing.T) {
	allowed := map[string]bool{
		"pending→deploying":     true,
		"pending→cancelled":     true,
		"pending→failed":        true,
		"deploying→testing":     true,
		"deploying→passed":      true,
		"deploying→rolled_back": true,
		"deploying→failed":      true,
		"testing→passed":        true,
		"testing→failed":        true,
		"passed→superseded":     true,
	}
	states := PromotionStates()
	if len(states) != 8 {
		t.Fatalf("PromotionStates() = %v, want 8 states", states)
	}
	seen := 0
	for _, from := range states {
		for _, to := range states {
			key := string(from) + "→" + string(to)
			want := allowed[key]
			if want {
				seen++
			}
			if got := CanAdvance(from, to); got != want {
				t.Errorf("CanAdvance(%s) = %v, want %v", key, got, want)
			}
			p := Promotion{ID: 7, BuildID: 1, Env: "qa", State: from}
			err := p.Advance(to, time.Unix(100, 0), "")
			switch {
			case want && err != nil:
				t.Errorf("Advance(%s) = %v, want nil", key, err)
			case want && p.State != to:
				t.Errorf("Advance(%s) left state %s", key, p.State)
			case !want && !errors.Is(err, ErrTransition):
				t.Errorf("Advance(%s) = %v, want ErrTransition", key, err)
			case !want && p.State != from:
				t.Errorf("refused Advance(%s) changed state to %s", key, p.State)
			}
		}
	}
	if seen != len(allowed) {
		t.Fatalf("allowed edges name states that do not exist: %d of %d matched", seen, len(allowed))
	}
}

func TestPromotionAdvanceRecordsEndAndReason(t *testing.T) {
	start := time.Unix(100, 0)
	p := Promotion{BuildID: 1, Env: "alpha", State: PromotionPending, Started: start}
	if err := p.Advance(PromotionDeploying, start.Add(time.Second), ""); err != nil {
		t.Fatal(err)
	}
	if !p.Ended.IsZero() {
		t.Fatalf("deploying set Ended = %v", p.Ended)
	}
	if err := p.Advance(PromotionTesting, start.Add(2*time.Second), ""); err != nil {
		t.Fatal(err)
	}
	if err := p.Advance(PromotionFailed, start.Add(3*time.Second), "2 of 5 tests failed"); err != nil {
		t.Fatal(err)
	}
	if !p.Ended.Equal(start.Add(3*time.Second)) || p.Error != "2 of 5 tests failed" {
		t.Fatalf("failed promotion = %+v, want Ended at +3s with the reason", p)
	}
	for _, s := range PromotionStates() {
		if s.Green() != (s == PromotionPassed || s == PromotionSuperseded) {
			t.Errorf("%s.Green() = %v", s, s.Green())
		}
		if s.Done() == (s == PromotionPending || s == PromotionDeploying || s == PromotionTesting) {
			t.Errorf("%s.Done() = %v", s, s.Done())
		}
	}
}
