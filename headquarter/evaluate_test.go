package headquarter

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func testPolicy() Policy {
	return Policy{
		Service: "inventory", Min: 2, Max: 40,
		QPS:                 Threshold{High: 100, Low: 30},
		CPU:                 Threshold{High: 0.7, Low: 0.3},
		Memory:              Threshold{High: 0.8, Low: 0.4},
		Votes:               2,
		CooldownUp:          30 * time.Second,
		CooldownDown:        2 * time.Minute,
		StabilizationWindow: 2 * time.Minute,
		MaxMetricAge:        30 * time.Second,
	}
}

// input is a service with n registered instances and fresh samples: qps is
// per instance here, for readable cases; Input carries the total.
func input(n int, qps, cpu, mem float64) Input {
	at := t0.Add(-2 * time.Second)
	return Input{Service: "inventory", Instances: n,
		QPS: Value(qps*float64(n), at), CPU: Value(cpu, at), Memory: Value(mem, at)}
}

func TestEvaluate(t *testing.T) {
	type tc struct {
		name   string
		policy func(*Policy)
		state  State
		in     Input
		action Action
		guard  Guard
		to     int
	}
	quiet := input(6, 60, 0.5, 0.6)
	spike := input(2, 1000, 0.95, 0.5) // ten times the qps high threshold
	low := input(6, 10, 0.1, 0.2)
	longLow := State{DownSince: t0.Add(-3 * time.Minute)}
	cases := []tc{
		{name: "quiet service holds", in: quiet, action: Hold, to: 6},
		{name: "tenfold spike is answered in one step", in: spike, action: Up, to: 20},
		{name: "step capped by maxStep", policy: func(p *Policy) { p.MaxStep = 4 }, in: spike, action: Up, to: 6},
		{name: "step capped by max", policy: func(p *Policy) { p.Max = 10 }, in: spike, action: Up, to: 10},
		{name: "at max the scale-up is held", policy: func(p *Policy) { p.Max = 2 }, in: spike, action: Up, guard: GuardMax, to: 2},
		{name: "one metric above high is not enough", in: input(2, 1000, 0.5, 0.5), action: Hold, to: 2},
		{name: "votes 1 lets one metric scale", policy: func(p *Policy) { p.Votes = 1 }, in: input(2, 1000, 0.5, 0.5), action: Up, to: 20},
		{name: "a missing metric cannot block a scale-up", in: func() Input {
			in := spike
			in.Memory = MissingSample("query failed")
			return in
		}(), action: Up, to: 20},
		{name: "disabled metric does not vote", policy: func(p *Policy) { p.CPU = Threshold{Disabled: true} }, in: spike, action: Hold, to: 2},
		{name: "a target below high buys headroom", policy: func(p *Policy) { p.QPS.Target = 50 }, in: spike, action: Up, to: 40},
		{name: "cooldown after a scale-up holds the next one", state: State{LastUp: t0.Add(-10 * time.Second)}, in: spike, action: Up, guard: GuardCooldown, to: 20},
		{name: "cooldown over", state: State{LastUp: t0.Add(-31 * time.Second)}, in: spike, action: Up, to: 20},
		{name: "a recent scale-down does not delay a scale-up", state: State{LastDown: t0.Add(-5 * time.Second)}, in: spike, action: Up, to: 20},
		{name: "starting instances already cover the step", in: func() Input {
			in := spike
			in.Starting = 18
			return in
		}(), action: Up, guard: GuardStarting, to: 20},
		{name: "busy orchestrator", in: func() Input {
			in := spike
			in.Busy = true
			return in
		}(), action: Up, guard: GuardBusy, to: 20},
		{name: "dry run says what it would do", policy: func(p *Policy) { p.DryRun = true }, in: spike, action: Up, guard: GuardDryRun, to: 20},
		{name: "below min scales up without votes", in: input(1, 10, 0.1, 0.1), action: Up, to: 2},
		{name: "above max scales down to max", policy: func(p *Policy) { p.Max = 4 }, in: quiet, action: Down, to: 4},
		{name: "first low evaluation starts the stabilization window", in: low, action: Down, guard: GuardStabilization, to: 2},
		{name: "low for part of the window", state: State{DownSince: t0.Add(-time.Minute)}, in: low, action: Down, guard: GuardStabilization, to: 2},
		{name: "low for the whole window scales down to the largest want", state: longLow, in: low, action: Down, to: 2},
		{name: "the window's peak want bounds the scale-down", state: State{DownSince: longLow.DownSince, WindowWant: 4}, in: low, action: Down, to: 4},
		{name: "scale-down removes at most maxStep", policy: func(p *Policy) { p.MaxStep = 1 }, state: longLow, in: low, action: Down, to: 5},
		{name: "missing metric never scales down", state: longLow, in: func() Input {
			in := low
			in.Memory = MissingSample("no series")
			return in
		}(), action: Down, guard: GuardMissingData, to: 6},
		{name: "stale metric never scales down", state: longLow, in: func() Input {
			in := low
			in.CPU = Value(0.05, t0.Add(-time.Minute))
			return in
		}(), action: Down, guard: GuardMissingData, to: 6},
		{name: "every metric missing holds with missing data", state: longLow, in: Input{Service: "inventory", Instances: 6,
			QPS: MissingSample("prometheus unreachable"), CPU: MissingSample("prometheus unreachable"), Memory: MissingSample("prometheus unreachable")},
			action: Hold, guard: GuardMissingData, to: 6},
		{name: "unobserved service holds with missing data", state: longLow, in: Input{Service: "inventory", Missing: "observe failed"}, action: Hold, guard: GuardMissingData, to: 0},
		{name: "first evaluation at min is recorded", in: input(2, 10, 0.1, 0.2), action: Down, guard: GuardMin, to: 2},
		{name: "staying at min is not recorded again", state: State{AtMin: true}, in: input(2, 10, 0.1, 0.2), action: Hold, to: 2},
		{name: "cooldown after a scale-down holds the next one", state: State{DownSince: longLow.DownSince, LastDown: t0.Add(-time.Minute)}, in: low, action: Down, guard: GuardCooldown, to: 2},
		{name: "cooldown after a scale-up holds a scale-down", state: State{DownSince: longLow.DownSince, LastUp: t0.Add(-10 * time.Second)}, in: low, action: Down, guard: GuardCooldown, to: 2},
		{name: "flapping holds the scale-down", state: State{DownSince: longLow.DownSince, Changes: []Change{
			{At: t0.Add(-9 * time.Minute), Action: Up}, {At: t0.Add(-7 * time.Minute), Action: Down}, {At: t0.Add(-5 * time.Minute), Action: Up}}},
			in: low, action: Down, guard: GuardFlap, to: 2},
		{name: "changes older than the flap window are forgotten", state: State{DownSince: longLow.DownSince, Changes: []Change{
			{At: t0.Add(-19 * time.Minute), Action: Up}, {At: t0.Add(-17 * time.Minute), Action: Down}, {At: t0.Add(-5 * time.Minute), Action: Up}}},
			in: low, action: Down, to: 2},
		{name: "starting instances hold a scale-down", state: longLow, in: func() Input {
			in := low
			in.Starting = 1
			return in
		}(), action: Down, guard: GuardStarting, to: 2},
		{name: "busy holds a scale-down", state: longLow, in: func() Input {
			in := low
			in.Busy = true
			return in
		}(), action: Down, guard: GuardBusy, to: 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := testPolicy()
			if c.policy != nil {
				c.policy(&p)
			}
			if err := p.Validate(); err != nil {
				t.Fatal(err)
			}
			d, _ := Evaluate(p, c.state, c.in, t0)
			if d.Action != c.action || d.Guard != c.guard || d.To != c.to {
				t.Errorf("got %s/%q to %d, want %s/%q to %d; reason: %s", d.Action, d.Guard, d.To, c.action, c.guard, c.to, d.Reason)
			}
			if d.Noteworthy() && d.Reason == "" {
				t.Errorf("a noteworthy decision has no reason")
			}
			if len(d.Votes) != len(Metrics) {
				t.Errorf("%d votes, want one per metric", len(d.Votes))
			}
		})
	}
}

func TestEvaluateExplains(t *testing.T) {
	in := input(2, 1000, 0.95, 0.5)
	in.Memory = Value(0.5, t0.Add(-time.Hour))
	d, _ := Evaluate(testPolicy(), State{}, in, t0)
	want := []MetricVote{
		{Metric: QPS, Vote: VoteUp, Value: 1000, High: 100, Low: 30, AgeMillis: 2000, Want: 20},
		{Metric: CPU, Vote: VoteUp, Value: 0.95, High: 0.7, Low: 0.3, AgeMillis: 2000, Want: 3},
		{Metric: Memory, Vote: VoteMissing, High: 0.8, Low: 0.4, AgeMillis: 3600000, Missing: "stale: 1h0m0s old, maxMetricAge 30s"},
	}
	for i, w := range want {
		if d.Votes[i] != w {
			t.Errorf("vote %d:\n got %+v\nwant %+v", i, d.Votes[i], w)
		}
	}
	for _, s := range []string{"qps 1000 > high 100", "cpu 0.95 > high 0.7", "want 20"} {
		if !strings.Contains(d.Reason, s) {
			t.Errorf("reason %q does not say %q", d.Reason, s)
		}
	}
}

// TestOutcomes runs Evaluate, a Scaler outcome and State.Apply in
// sequence, the way the Loop does.
func TestOutcomes(t *testing.T) {
	cases := []struct {
		name    string
		outcome Outcome
		// next is the guard of the evaluation one tick later.
		next Guard
	}{
		{name: "done starts the cooldown", outcome: OutcomeDone, next: GuardCooldown},
		{name: "no-op starts no cooldown", outcome: OutcomeNoOp, next: GuardNone},
		{name: "busy is retried on the next tick", outcome: OutcomeBusy, next: GuardNone},
		{name: "failed is retried on the next tick", outcome: OutcomeFailed, next: GuardNone},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := testPolicy()
			d, st := Evaluate(p, State{}, input(2, 1000, 0.95, 0.5), t0)
			if !d.Executes() {
				t.Fatalf("first evaluation does not act: %+v", d)
			}
			d.Outcome, d.Finished = c.outcome, t0.Add(time.Second)
			st = st.Apply(d)
			next, _ := Evaluate(p, st, input(2, 1000, 0.95, 0.5), t0.Add(5*time.Second))
			if next.Action != Up || next.Guard != c.next {
				t.Errorf("next tick: %s/%q, want up/%q (%s)", next.Action, next.Guard, c.next, next.Reason)
			}
		})
	}
}

// TestSpikeAndCalm plays a sale opening and the calm after it through
// Evaluate, tick by tick, applying every action as done. Per-instance CPU
// and memory follow per-instance load, memory above a 0.3 baseline.
func TestSpikeAndCalm(t *testing.T) {
	p := testPolicy()
	var st State
	n := 2
	var actions []string
	now := t0
	tick := func(total float64) {
		q := total / float64(n)
		in := Input{Service: "inventory", Instances: n,
			QPS: Value(total, now), CPU: Value(min(1, q/150), now), Memory: Value(0.3+q/1000, now)}
		d, next := Evaluate(p, st, in, now)
		st = next
		if d.Executes() {
			d.Outcome, d.Finished = OutcomeDone, now
			st = st.Apply(d)
			n = d.To
			actions = append(actions, fmt.Sprintf("%s at %s to %d", d.Action, now.Sub(t0), n))
		}
		now = now.Add(5 * time.Second)
	}
	for range 6 {
		tick(100) // steady
	}
	for range 24 {
		tick(2000) // a sale opens: tenfold
	}
	for range 120 {
		tick(100) // over
	}
	want := []string{"up at 30s to 20", "down at 4m30s to 8", "down at 6m35s to 4", "down at 8m40s to 2"}
	if fmt.Sprint(actions) != fmt.Sprint(want) {
		t.Errorf("actions:\n got %v\nwant %v", actions, want)
	}
}
