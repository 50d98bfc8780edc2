package headquarter

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"testing"

	"gopkg.in/yaml.v3"
)

// FuzzParsePolicies checks the policy file parser: no input panics it,
// every refusal is ErrInvalidPolicy, and every policy it accepts is
// valid, has finite thresholds, and survives the two ways kplane writes
// policies back (the JSON of GET /api/v1/policies and YAML) unchanged.
// Seeds are in testdata/fuzz/FuzzParsePolicies, among them
// testdata/policy.yaml; run with
//
//	go test ./headquarter -run '^$' -fuzz '^FuzzParsePolicies$' -fuzztime 60s
func FuzzParsePolicies(f *testing.F) {
	f.Add([]byte("service: inventory\nmin: 2\nmax: 20\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := ParsePolicies(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("refusal is not ErrInvalidPolicy: %v", err)
			}
			return
		}
		if len(ps) == 0 {
			// An empty sequence is a valid document with nothing to apply.
			return
		}
		for i, p := range ps {
			if err := p.Validate(); err != nil {
				t.Fatalf("policy %d accepted but invalid: %v", i, err)
			}
			for _, m := range Metrics {
				th := p.Threshold(m)
				for _, v := range []float64{th.High, th.Low, th.Target} {
					if math.IsNaN(v) || math.IsInf(v, 0) {
						t.Fatalf("policy %d: %s threshold %+v is not finite", i, m, th)
					}
				}
			}
			j, err := json.Marshal(p)
			if err != nil {
				t.Fatalf("policy %d cannot be served as JSON: %v", i, err)
			}
			var back Policy
			if err := json.Unmarshal(j, &back); err != nil {
				t.Fatalf("policy %d: its JSON %s does not decode: %v", i, j, err)
			}
			if !reflect.DeepEqual(back, p) {
				t.Fatalf("policy %d changed through JSON:\n%+v\n%+v", i, p, back)
			}
		}
		y, err := yaml.Marshal(ps)
		if err != nil {
			t.Fatalf("policies cannot be written as YAML: %v", err)
		}
		again, err := ParsePolicies(y)
		if err != nil {
			t.Fatalf("policies written as YAML are refused: %v\n%s", err, y)
		}
		if !reflect.DeepEqual(again, ps) {
			t.Fatalf("policies changed through YAML:\n%+v\n%+v", ps, again)
		}
	})
}
