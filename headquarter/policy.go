package headquarter

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"gopkg.in/yaml.v3"
)

// Metric names one of the three signals a policy votes with.
type Metric string

const (
	// QPS is requests per second per registered instance: the service's
	// total rate divided by its registered instances.
	QPS Metric = "qps"
	// CPU is the mean CPU use of the service's instances as a fraction of
	// each instance's CPU limit (1.0 = at the limit).
	CPU Metric = "cpu"
	// Memory is the mean memory use as a fraction of the memory limit.
	Memory Metric = "memory"
)

// Metrics lists every metric in the order decisions report their votes.
var Metrics = [...]Metric{QPS, CPU, Memory}

// Threshold is one metric's band. Above High the metric votes to scale up,
// below Low it votes to scale down, in between it votes to hold.
//
// Target is the per-instance value the proportional step sizes for: the
// new count is ceil(current × value / Target). Zero means High, so a scale
// up lands the metric at its high threshold, not beyond; set it between Low
// and High to buy headroom.
type Threshold struct {
	High     float64 `json:"high" yaml:"high"`
	Low      float64 `json:"low" yaml:"low"`
	Target   float64 `json:"target,omitempty" yaml:"target,omitempty"`
	Disabled bool    `json:"disabled,omitempty" yaml:"disabled,omitempty"`
}

func (t Threshold) target() float64 {
	if t.Target == 0 {
		return t.High
	}
	return t.Target
}

// Default policy values, used by WithDefaults for fields left zero.
const (
	DefaultMin                 = 1
	DefaultMax                 = 10
	DefaultVotes               = 2
	DefaultCooldownUp          = 30 * time.Second
	DefaultCooldownDown        = 2 * time.Minute
	DefaultStabilizationWindow = 2 * time.Minute
	DefaultMaxMetricAge        = 30 * time.Second
	DefaultFlapWindow          = 10 * time.Minute
	DefaultFlapChanges         = 3
)

// Default thresholds, used by WithDefaults for a metric whose High and Low
// are both zero and that is not disabled. The QPS band suits the ticketing
// demo services (each instance serves a few hundred requests per second).
var (
	DefaultQPS    = Threshold{High: 100, Low: 30}
	DefaultCPU    = Threshold{High: 0.7, Low: 0.3}
	DefaultMemory = Threshold{High: 0.8, Low: 0.4}
)

// Policy is how one service scales. The zero value of every field but
// Service has a documented default that WithDefaults fills in; Evaluate
// applies it too, so a stored policy may leave fields out.
//
// Cooldowns are asymmetric on purpose. After a scale-up, CooldownUp holds
// every further action so the new instances show in the metrics before
// anything is decided on them. After a scale-down, CooldownDown holds
// further scale-downs only: a spike right after a scale-down is answered
// at once.
type Policy struct {
	// Service is the service's registry name; it keys the policy.
	Service string
	// Env is the environment the orchestrator scales ("" is the
	// orchestrator's default).
	Env string
	// Min and Max bound the registered instance count. Min is at least 1:
	// a service with no instances reports no metrics to scale it back up.
	Min, Max int
	// QPS, CPU and Memory are the thresholds of each metric.
	QPS, CPU, Memory Threshold
	// Votes is how many enabled metrics must agree to scale (default 2).
	Votes int
	// CooldownUp and CooldownDown: see the type's comment.
	CooldownUp, CooldownDown time.Duration
	// StabilizationWindow is how long the scale-down vote must hold,
	// without a gap or a missing metric, before a scale-down.
	StabilizationWindow time.Duration
	// MaxStep caps how many instances one decision adds or removes. Zero
	// means no cap beyond Min and Max.
	MaxStep int
	// MaxMetricAge is how old a sample may be before it counts as missing.
	MaxMetricAge time.Duration
	// FlapWindow and FlapChanges detect flapping: a scale-down that would
	// make the FlapChanges-th change of direction within FlapWindow is held.
	FlapWindow  time.Duration
	FlapChanges int
	// DryRun evaluates and records decisions without scaling.
	DryRun bool
}

// DefaultPolicy returns the default policy for a service.
func DefaultPolicy(service string) Policy {
	return Policy{Service: service}.WithDefaults()
}

// WithDefaults returns p with every zero field set to its default.
func (p Policy) WithDefaults() Policy {
	if p.Min == 0 {
		p.Min = DefaultMin
	}
	if p.Max == 0 {
		p.Max = max(DefaultMax, p.Min)
	}
	if p.Votes == 0 {
		p.Votes = DefaultVotes
	}
	if p.CooldownUp == 0 {
		p.CooldownUp = DefaultCooldownUp
	}
	if p.CooldownDown == 0 {
		p.CooldownDown = DefaultCooldownDown
	}
	if p.StabilizationWindow == 0 {
		p.StabilizationWindow = DefaultStabilizationWindow
	}
	if p.MaxMetricAge == 0 {
		p.MaxMetricAge = DefaultMaxMetricAge
	}
	if p.FlapWindow == 0 {
		p.FlapWindow = DefaultFlapWindow
	}
	if p.FlapChanges == 0 {
		p.FlapChanges = DefaultFlapChanges
	}
	p.QPS = defaultThreshold(p.QPS, DefaultQPS)
	p.CPU = defaultThreshold(p.CPU, DefaultCPU)
	p.Memory = defaultThreshold(p.Memory, DefaultMemory)
	return p
}

func defaultThreshold(t, def Threshold) Threshold {
	if t.Disabled || t.High != 0 || t.Low != 0 {
		return t
	}
	def.Target = t.Target
	return def
}

// Threshold returns the thresholds of metric m.
func (p Policy) Threshold(m Metric) Threshold {
	switch m {
	case QPS:
		return p.QPS
	case CPU:
		return p.CPU
	case Memory:
		return p.Memory
	}
	return Threshold{Disabled: true}
}

// Enabled counts the metrics that vote.
func (p Policy) Enabled() int {
	n := 0
	for _, m := range Metrics {
		if !p.Threshold(m).Disabled {
			n++
		}
	}
	return n
}

// Validate reports every problem of the policy after defaults, each with
// what to change. The error wraps ErrInvalidPolicy.
func (p Policy) Validate() error {
	p = p.WithDefaults()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if p.Service == "" {
		bad("service is empty: name the registry service this policy scales")
	}
	if p.Min < 1 {
		bad("min is %d: set it to at least 1 (a service with no instances reports no metrics to scale it back up)", p.Min)
	}
	if p.Max < p.Min {
		bad("max (%d) is below min (%d): raise max or lower min", p.Max, p.Min)
	}
	for _, m := range Metrics {
		t := p.Threshold(m)
		if t.Disabled {
			continue
		}
		switch {
		case !finite(t.High) || !finite(t.Low) || !finite(t.Target):
			// YAML can write .nan and .inf; NaN passes every comparison below.
			bad("%s thresholds must be numbers, not NaN or infinity", m)
		case t.High <= 0:
			bad("%s.high is %g: set it above 0, or set %s.disabled: true", m, t.High, m)
		case t.Low < 0:
			bad("%s.low is %g: set it to 0 or more", m, t.Low)
		case t.Low >= t.High:
			bad("%s.low (%g) must be below %s.high (%g): leave a band between them so the service can settle", m, t.Low, m, t.High)
		case t.Target != 0 && (t.Target < t.Low || t.Target > t.High):
			bad("%s.target (%g) must lie between %s.low (%g) and %s.high (%g), or be left out to mean high", m, t.Target, m, t.Low, m, t.High)
		}
	}
	if n := p.Enabled(); n == 0 {
		bad("every metric is disabled: enable at least one of qps, cpu, memory")
	} else if p.Votes < 1 || p.Votes > n {
		bad("votes is %d but %d metrics are enabled: set votes between 1 and %d", p.Votes, n, n)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"cooldownUp", p.CooldownUp}, {"cooldownDown", p.CooldownDown}, {"stabilizationWindow", p.StabilizationWindow}, {"maxMetricAge", p.MaxMetricAge}, {"flapWindow", p.FlapWindow}} {
		if d.v < 0 {
			bad("%s is %s: durations cannot be negative (leave it out for the default)", d.name, d.v)
		}
	}
	if p.MaxStep < 0 {
		bad("maxStep is %d: set 0 for no cap, or a positive number of instances", p.MaxStep)
	}
	if p.FlapChanges < 0 {
		bad("flapChanges is %d: set a positive number of direction changes", p.FlapChanges)
	}
	if len(errs) == 0 {
		return nil
	}
	name := p.Service
	if name == "" {
		name = "(unnamed)"
	}
	return fmt.Errorf("%w %s: %w", ErrInvalidPolicy, name, errors.Join(errs...))
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// policyWire is the JSON and YAML form: camelCase names, durations as Go
// duration strings ("30s", "2m").
type policyWire struct {
	Service             string    `json:"service" yaml:"service"`
	Env                 string    `json:"env,omitempty" yaml:"env,omitempty"`
	Min                 int       `json:"min" yaml:"min"`
	Max                 int       `json:"max" yaml:"max"`
	QPS                 Threshold `json:"qps" yaml:"qps"`
	CPU                 Threshold `json:"cpu" yaml:"cpu"`
	Memory              Threshold `json:"memory" yaml:"memory"`
	Votes               int       `json:"votes" yaml:"votes"`
	CooldownUp          string    `json:"cooldownUp,omitempty" yaml:"cooldownUp,omitempty"`
	CooldownDown        string    `json:"cooldownDown,omitempty" yaml:"cooldownDown,omitempty"`
	StabilizationWindow string    `json:"stabilizationWindow,omitempty" yaml:"stabilizationWindow,omitempty"`
	MaxStep             int       `json:"maxStep" yaml:"maxStep"`
	MaxMetricAge        string    `json:"maxMetricAge,omitempty" yaml:"maxMetricAge,omitempty"`
	FlapWindow          string    `json:"flapWindow,omitempty" yaml:"flapWindow,omitempty"`
	FlapChanges         int       `json:"flapChanges,omitempty" yaml:"flapChanges,omitempty"`
	DryRun              bool      `json:"dryRun" yaml:"dryRun"`
}

func durString(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

func (p Policy) wire() policyWire {
	return policyWire{
		Service: p.Service, Env: p.Env, Min: p.Min, Max: p.Max,
		QPS: p.QPS, CPU: p.CPU, Memory: p.Memory, Votes: p.Votes,
		CooldownUp: durString(p.CooldownUp), CooldownDown: durString(p.CooldownDown),
		StabilizationWindow: durString(p.StabilizationWindow), MaxStep: p.MaxStep,
		MaxMetricAge: durString(p.MaxMetricAge), FlapWindow: durString(p.FlapWindow),
		FlapChanges: p.FlapChanges, DryRun: p.DryRun,
	}
}

func (w policyWire) policy() (Policy, error) {
	p := Policy{
		Service: w.Service, Env: w.Env, Min: w.Min, Max: w.Max,
		QPS: w.QPS, CPU: w.CPU, Memory: w.Memory, Votes: w.Votes,
		MaxStep: w.MaxStep, FlapChanges: w.FlapChanges, DryRun: w.DryRun,
	}
	var errs []error
	for _, d := range []struct {
		name string
		s    string
		dst  *time.Duration
	}{
		{"cooldownUp", w.CooldownUp, &p.CooldownUp},
		{"cooldownDown", w.CooldownDown, &p.CooldownDown},
		{"stabilizationWindow", w.StabilizationWindow, &p.StabilizationWindow},
		{"maxMetricAge", w.MaxMetricAge, &p.MaxMetricAge},
		{"flapWindow", w.FlapWindow, &p.FlapWindow},
	} {
		if d.s == "" {
			continue
		}
		v, err := time.ParseDuration(d.s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %q is not a duration: write it like \"30s\" or \"2m\"", d.name, d.s))
			continue
		}
		*d.dst = v
	}
	if len(errs) > 0 {
		return Policy{}, fmt.Errorf("%w: %w", ErrInvalidPolicy, errors.Join(errs...))
	}
	return p, nil
}

// MarshalJSON writes the policy with camelCase names and duration strings.
func (p Policy) MarshalJSON() ([]byte, error) { return json.Marshal(p.wire()) }

// UnmarshalJSON reads the form MarshalJSON writes. Unknown fields are
// ignored; call Validate afterwards.
func (p *Policy) UnmarshalJSON(b []byte) error {
	var w policyWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	v, err := w.policy()
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// MarshalYAML writes the same names as the JSON form.
func (p Policy) MarshalYAML() (any, error) { return p.wire(), nil }

// UnmarshalYAML reads the same names as the JSON form.
func (p *Policy) UnmarshalYAML(n *yaml.Node) error {
	var w policyWire
	if err := n.Decode(&w); err != nil {
		return err
	}
	v, err := w.policy()
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// ParsePolicies reads one policy, or a YAML sequence of policies, from a
// YAML (or JSON, which YAML accepts) document, and validates each.
func ParsePolicies(b []byte) ([]Policy, error) {
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidPolicy, err)
	}
	if len(n.Content) == 0 {
		return nil, fmt.Errorf("%w: the document is empty", ErrInvalidPolicy)
	}
	var ps []Policy
	if n.Content[0].Kind == yaml.SequenceNode {
		if err := n.Content[0].Decode(&ps); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidPolicy, err)
		}
	} else {
		var p Policy
		if err := n.Content[0].Decode(&p); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidPolicy, err)
		}
		ps = []Policy{p}
	}
	for _, p := range ps {
		if err := p.Validate(); err != nil {
			return nil, err
		}
	}
	return ps, nil
}
