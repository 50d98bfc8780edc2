package headquarter

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// State is what Evaluate remembers about one service between evaluations.
// The zero value is a service seen for the first time: no cooldown, and a
// scale-down must first wait out a whole stabilization window.
type State struct {
	// DownSince is the first evaluation of the current, unbroken
	// scale-down vote; zero when the last evaluation did not vote down.
	DownSince time.Time `json:"downSince,omitzero"`
	// WindowWant is the largest count any metric asked for since
	// DownSince: a scale-down goes no lower than the window's peak.
	WindowWant int `json:"windowWant,omitempty"`
	// LastUp and LastDown are when the last scale-up and scale-down
	// completed (Outcome done).
	LastUp   time.Time `json:"lastUp,omitzero"`
	LastDown time.Time `json:"lastDown,omitzero"`
	// Changes are the completed scalings, oldest first, for flap
	// detection; Evaluate drops those older than the flap window.
	Changes []Change `json:"changes,omitempty"`
	// AtMin is set once a "held at min" decision was made, so that an
	// idle service sitting at min is explained once, not every tick.
	AtMin bool `json:"atMin,omitempty"`
}

// Change is one completed scaling.
type Change struct {
	At     time.Time `json:"at"`
	Action Action    `json:"action"`
}

// maxChanges bounds State.Changes whatever the flap window.
const maxChanges = 16

// Apply returns the state after the Scaler finished d. Only OutcomeDone
// changes it: a no-op, busy or failed call starts no cooldown, so the next
// evaluation may act again. A done scaling starts its cooldown and restarts
// the stabilization window.
func (s State) Apply(d Decision) State {
	if d.Outcome != OutcomeDone || d.Action == Hold {
		return s
	}
	at := d.Finished
	if at.IsZero() {
		at = d.Time
	}
	switch d.Action {
	case Up:
		s.LastUp = at
	case Down:
		s.LastDown = at
	}
	// The count changed: the next scale-down needs a whole window of
	// evidence at the new count.
	s.DownSince, s.WindowWant = time.Time{}, 0
	changes := make([]Change, 0, len(s.Changes)+1)
	if len(s.Changes) >= maxChanges {
		changes = append(changes, s.Changes[len(s.Changes)-maxChanges+1:]...)
	} else {
		changes = append(changes, s.Changes...)
	}
	s.Changes = append(changes, Change{At: at, Action: d.Action})
	return s
}

// Evaluate decides what to do about one service. It is a pure function of
// the policy, the state, the input and now: it does no I/O and reads no
// clock, so the Loop, the tests and `kplane hq replay` run the same rules.
// The returned State replaces st; hand the decision's outcome to
// State.Apply once the Scaler returns.
//
// The rules, in order:
//
//   - Below Min (registered), scale up to Min; above Max, scale down to Max.
//   - Scale up when at least Votes metrics are above High. The new count is
//     the largest ceil(instances × value / target) among the metrics voting
//     up, so a tenfold spike is answered in one step, capped by MaxStep
//     and Max. A missing metric does not prevent it: the metrics that are
//     present and voting up are enough.
//   - Scale down when at least Votes metrics are below Low, no enabled
//     metric is missing, and that has held at every evaluation of the whole
//     StabilizationWindow. Missing metrics never vote for a scale-down and
//     block it: the metric that cannot be seen may be the one that needs
//     the capacity. The new count is the window's largest per-metric want,
//     at least one fewer than now, removing at most MaxStep, never below Min.
//   - Otherwise hold. When missing metrics could have tipped the vote either
//     way, the hold is guarded by missing data and so is recorded.
//
// Guards, each with its reason: max, min (recorded once per stay at min),
// starting, cooldown, stabilization, missing data, flap (a scale-down that
// would be the FlapChanges-th reversal within FlapWindow; the service stays
// at the higher count), busy, dry run.
func Evaluate(p Policy, st State, in Input, now time.Time) (Decision, State) {
	p = p.WithDefaults()
	from := in.Instances
	d := Decision{
		Time: now, Service: p.Service, Env: p.Env, Action: Hold,
		From: from, To: from, Starting: in.Starting, DryRun: p.DryRun,
		Votes: make([]MetricVote, 0, len(Metrics)),
	}
	if d.Service == "" {
		d.Service = in.Service
	}
	st.Changes = recentChanges(st.Changes, now, p.FlapWindow)
	if in.Missing != "" {
		d.Guard = GuardMissingData
		d.Reason = "not observed: " + in.Missing
		st.DownSince, st.WindowWant, st.AtMin = time.Time{}, 0, false
		for _, m := range Metrics {
			v := MetricVote{Metric: m, Vote: VoteMissing, Missing: in.Missing}
			if p.Threshold(m).Disabled {
				v = MetricVote{Metric: m, Vote: VoteDisabled}
			}
			d.Votes = append(d.Votes, v)
		}
		return d, st
	}

	var up, down, missing, wantUp, wantAll int
	for _, m := range Metrics {
		v := vote(m, p, in, now)
		d.Votes = append(d.Votes, v)
		switch v.Vote {
		case VoteUp:
			up++
			wantUp = max(wantUp, v.Want)
		case VoteDown:
			down++
		case VoteMissing:
			missing++
		}
		if v.Vote != VoteMissing && v.Vote != VoteDisabled {
			wantAll = max(wantAll, v.Want)
		}
	}
	if down < p.Votes || missing > 0 || from <= p.Min {
		st.DownSince, st.WindowWant = time.Time{}, 0
	}
	atMin := st.AtMin
	st.AtMin = false

	switch {
	case from < p.Min:
		d.Action, d.To = Up, p.Min
		d.Reason = fmt.Sprintf("%d registered, below min %d", from, p.Min)
		guardUp(&d, p, st, in, now, false)
	case from > p.Max:
		d.Action, d.To = Down, p.Max
		d.Reason = fmt.Sprintf("%d registered, above max %d", from, p.Max)
		switch {
		case in.Busy:
			d.Guard = GuardBusy
		case p.DryRun:
			d.Guard = GuardDryRun
		}
	case up >= p.Votes:
		d.Action = Up
		to := max(wantUp, from+1)
		if p.MaxStep > 0 {
			to = min(to, from+p.MaxStep)
		}
		to = min(to, p.Max)
		d.To = to
		d.Reason = fmt.Sprintf("%s; %d metrics needed, want %d", summary(d.Votes, VoteUp), p.Votes, max(wantUp, from+1))
		if from >= p.Max {
			d.Guard, d.To = GuardMax, from
			d.Reason += fmt.Sprintf(", at max %d", p.Max)
			break
		}
		if to < max(wantUp, from+1) {
			d.Reason += fmt.Sprintf(", capped to %d by max %d / maxStep %d", to, p.Max, p.MaxStep)
		}
		guardUp(&d, p, st, in, now, true)
	case down >= p.Votes:
		d.Action = Down
		d.Reason = fmt.Sprintf("%s; %d metrics needed", summary(d.Votes, VoteDown), p.Votes)
		if from <= p.Min {
			d.Reason += fmt.Sprintf(", at min %d", p.Min)
			if atMin {
				d.Action = Hold
			} else {
				d.Guard = GuardMin
			}
			st.AtMin = true
			break
		}
		if missing > 0 {
			d.Guard = GuardMissingData
			d.Reason += "; " + summary(d.Votes, VoteMissing) + ": missing metrics never vote for a scale-down"
			break
		}
		if st.DownSince.IsZero() {
			st.DownSince = now
		}
		st.WindowWant = max(st.WindowWant, wantAll)
		to := min(st.WindowWant, from-1)
		floor := p.Min
		if p.MaxStep > 0 {
			floor = max(floor, from-p.MaxStep)
		}
		d.To = max(to, floor)
		switch held := now.Sub(st.DownSince); {
		case in.Starting > 0:
			d.Guard = GuardStarting
			d.Reason += fmt.Sprintf("; %d instances still starting", in.Starting)
		case held < p.StabilizationWindow:
			d.Guard = GuardStabilization
			d.Reason += fmt.Sprintf("; below low for %s of the %s stabilization window", roundReason(held), p.StabilizationWindow)
		case cooling(st.LastUp, now, p.CooldownUp):
			d.Guard = GuardCooldown
			d.Reason += fmt.Sprintf("; scaled up %s ago, cooldownUp %s", roundReason(now.Sub(st.LastUp)), p.CooldownUp)
		case cooling(st.LastDown, now, p.CooldownDown):
			d.Guard = GuardCooldown
			d.Reason += fmt.Sprintf("; scaled down %s ago, cooldownDown %s", roundReason(now.Sub(st.LastDown)), p.CooldownDown)
		case p.FlapChanges > 0 && reversals(st.Changes, Down) >= p.FlapChanges:
			d.Guard = GuardFlap
			d.Reason += fmt.Sprintf("; flapping: this would be direction change %d within %s, holding the higher count", reversals(st.Changes, Down), p.FlapWindow)
		case in.Busy:
			d.Guard = GuardBusy
			d.Reason += "; a previous scale is still in flight"
		case p.DryRun:
			d.Guard = GuardDryRun
			d.Reason += "; dry run"
		}
	default:
		d.Reason = "within thresholds"
		if up > 0 || down > 0 {
			d.Reason = fmt.Sprintf("%d up and %d down votes, %d needed", up, down, p.Votes)
		}
		if missing > 0 && (missing+up >= p.Votes || missing+down >= p.Votes) {
			d.Guard = GuardMissingData
			d.Reason = fmt.Sprintf("not enough data to decide: %s; %d up and %d down votes, %d needed", summary(d.Votes, VoteMissing), up, down, p.Votes)
		}
	}
	return d, st
}

// guardUp applies the guards of a scale-up to d.
func guardUp(d *Decision, p Policy, st State, in Input, now time.Time, cooldown bool) {
	switch {
	case in.Instances+in.Starting >= d.To:
		d.Guard = GuardStarting
		d.Reason += fmt.Sprintf("; %d instances already starting cover it", in.Starting)
	case cooldown && cooling(st.LastUp, now, p.CooldownUp):
		d.Guard = GuardCooldown
		d.Reason += fmt.Sprintf("; scaled up %s ago, cooldownUp %s", roundReason(now.Sub(st.LastUp)), p.CooldownUp)
	case in.Busy:
		d.Guard = GuardBusy
		d.Reason += "; a previous scale is still in flight"
	case p.DryRun:
		d.Guard = GuardDryRun
		d.Reason += "; dry run"
	}
}

// roundReason rounds a measured duration for a reason people read: the
// real clock makes "below low for 643.334539ms" out of a 500 ms tick.
func roundReason(d time.Duration) time.Duration {
	if d < 10*time.Second {
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}

func cooling(last, now time.Time, cooldown time.Duration) bool {
	return !last.IsZero() && now.Sub(last) < cooldown
}

// vote reads one metric of in against the policy.
func vote(m Metric, p Policy, in Input, now time.Time) MetricVote {
	t := p.Threshold(m)
	v := MetricVote{Metric: m, High: t.High, Low: t.Low}
	if t.Disabled {
		v.Vote, v.High, v.Low = VoteDisabled, 0, 0
		return v
	}
	s := in.Sample(m)
	miss := func(reason string) MetricVote {
		v.Vote, v.Missing = VoteMissing, reason
		return v
	}
	if s.Missing != "" {
		return miss(s.Missing)
	}
	if s.At.IsZero() {
		return miss("no sample")
	}
	age := max(now.Sub(s.At), 0)
	v.AgeMillis = age.Milliseconds()
	if age > p.MaxMetricAge {
		return miss(fmt.Sprintf("stale: %s old, maxMetricAge %s", age.Round(time.Millisecond), p.MaxMetricAge))
	}
	if math.IsNaN(s.Value) || math.IsInf(s.Value, 0) || s.Value < 0 {
		return miss(fmt.Sprintf("not a usable value: %g", s.Value))
	}
	cur := in.Instances
	value := s.Value
	switch {
	case m == QPS && cur > 0:
		value /= float64(cur)
	case m != QPS && cur == 0:
		return miss("no registered instances to measure")
	}
	v.Value = value
	v.Want = int(math.Ceil(float64(max(cur, 1)) * value / t.target()))
	switch {
	case value > t.High:
		v.Vote = VoteUp
	case value < t.Low:
		v.Vote = VoteDown
	default:
		v.Vote = VoteHold
	}
	return v
}

// summary lists the metrics with vote want, for a reason.
func summary(votes []MetricVote, want Vote) string {
	var parts []string
	for _, v := range votes {
		if v.Vote != want {
			continue
		}
		switch want {
		case VoteUp:
			parts = append(parts, fmt.Sprintf("%s %.4g > high %.4g", v.Metric, v.Value, v.High))
		case VoteDown:
			parts = append(parts, fmt.Sprintf("%s %.4g < low %.4g", v.Metric, v.Value, v.Low))
		case VoteMissing:
			parts = append(parts, fmt.Sprintf("%s missing (%s)", v.Metric, v.Missing))
		}
	}
	return strings.Join(parts, ", ")
}

// recentChanges returns the changes within window of now, sharing no
// memory with cs when it drops any.
func recentChanges(cs []Change, now time.Time, window time.Duration) []Change {
	i := 0
	for i < len(cs) && now.Sub(cs[i].At) > window {
		i++
	}
	if i == 0 {
		return cs
	}
	return append([]Change(nil), cs[i:]...)
}

// reversals counts direction changes in cs followed by next.
func reversals(cs []Change, next Action) int {
	n := 0
	for i := range cs {
		following := next
		if i+1 < len(cs) {
			following = cs[i+1].Action
		}
		if cs[i].Action != following {
			n++
		}
	}
	return n
}
