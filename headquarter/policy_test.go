package headquarter

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestPolicyValidate(t *testing.T) {
	cases := []struct {
		name   string
		policy Policy
		want   string // "" means valid
	}{
		{name: "defaults are valid", policy: Policy{Service: "inventory"}},
		{name: "no service", policy: Policy{}, want: "service is empty"},
		{name: "max below min", policy: Policy{Service: "s", Min: 4, Max: 2}, want: "max (2) is below min (4)"},
		{name: "low above high", policy: Policy{Service: "s", CPU: Threshold{High: 0.5, Low: 0.6}}, want: "cpu.low (0.6) must be below cpu.high (0.5)"},
		{name: "target outside the band", policy: Policy{Service: "s", QPS: Threshold{High: 100, Low: 30, Target: 200}}, want: "qps.target (200) must lie between"},
		{name: "more votes than metrics", policy: Policy{Service: "s", Votes: 3, Memory: Threshold{Disabled: true}}, want: "votes is 3 but 2 metrics are enabled"},
		{name: "everything disabled", policy: Policy{Service: "s", QPS: Threshold{Disabled: true}, CPU: Threshold{Disabled: true}, Memory: Threshold{Disabled: true}}, want: "every metric is disabled"},
		{name: "negative cooldown", policy: Policy{Service: "s", CooldownDown: -time.Second}, want: "cooldownDown is -1s"},
		{name: "negative step", policy: Policy{Service: "s", MaxStep: -1}, want: "maxStep is -1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.policy.Validate()
			if c.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidPolicy) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Validate: %v, want ErrInvalidPolicy saying %q", err, c.want)
			}
		})
	}
}

func TestPolicyYAMLAndJSON(t *testing.T) {
	src := `
service: inventory
min: 2
max: 20
qps: {high: 100, low: 30, target: 80}
memory: {disabled: true}
votes: 1
cooldownUp: 15s
stabilizationWindow: 1m
maxStep: 8
dryRun: true
`
	ps, err := ParsePolicies([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	p := ps[0]
	if p.Service != "inventory" || p.QPS.Target != 80 || !p.Memory.Disabled || p.CooldownUp != 15*time.Second ||
		p.StabilizationWindow != time.Minute || p.MaxStep != 8 || !p.DryRun || p.CooldownDown != 0 {
		t.Errorf("parsed %+v", p)
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"cooldownUp":"15s"`) {
		t.Errorf("JSON form %s lacks a duration string", b)
	}
	var back Policy
	if err := json.Unmarshal(b, &back); err != nil || back != p {
		t.Errorf("JSON round trip: %+v, %v", back, err)
	}
	y, err := yaml.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var backY Policy
	if err := yaml.Unmarshal(y, &backY); err != nil || backY != p {
		t.Errorf("YAML round trip: %+v, %v\n%s", backY, err, y)
	}
	if _, err := ParsePolicies([]byte("service: s\ncooldownUp: soon\n")); !errors.Is(err, ErrInvalidPolicy) || !strings.Contains(err.Error(), `"soon" is not a duration`) {
		t.Errorf("bad duration: %v", err)
	}
	list, err := ParsePolicies([]byte("- service: a\n- service: b\n"))
	if err != nil || len(list) != 2 {
		t.Errorf("list: %v, %v", list, err)
	}
}
