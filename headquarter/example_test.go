package headquarter_test

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/kplane/kplane/headquarter"
)

// A tenfold spike is answered in one step, and the decision explains itself.
func ExampleEvaluate() {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	p := headquarter.Policy{Service: "inventory", Min: 2, Max: 20}
	in := headquarter.Input{
		Service:   "inventory",
		Instances: 2,
		QPS:       headquarter.Value(2000, now.Add(-time.Second)), // 1000 per instance: ten times high
		CPU:       headquarter.Value(0.95, now.Add(-time.Second)),
		Memory:    headquarter.MissingSample("no series"),
	}
	d, _ := headquarter.Evaluate(p, headquarter.State{}, in, now)
	fmt.Println(d.Action, d.From, "->", d.To)
	fmt.Println(d.Reason)
	for _, v := range d.Votes {
		if v.Vote == headquarter.VoteMissing {
			fmt.Println(v.Metric, v.Vote, "("+v.Missing+")")
			continue
		}
		fmt.Println(v.Metric, v.Vote, v.Value, "want", v.Want)
	}
	// Output:
	// up 2 -> 20
	// qps 1000 > high 100, cpu 0.95 > high 0.7; 2 metrics needed, want 20
	// qps up 1000 want 20
	// cpu up 0.95 want 3
	// memory missing (no series)
}

// Replay runs the same rules over a recorded sample file.
func ExampleReplay() {
	pf, _ := os.ReadFile("testdata/policy.yaml")
	policies, err := headquarter.ParsePolicies(pf)
	if err != nil {
		fmt.Println(err)
		return
	}
	f, _ := os.Open("testdata/samples.csv")
	defer f.Close()
	obs, err := headquarter.ReadSamples(f)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, d := range headquarter.Replay(policies, obs) {
		line := fmt.Sprint(d.Time.Format("15:04:05"), " ", d.Action, " ", d.From, "->", d.To, " ", d.Guard, " ", d.Outcome)
		fmt.Println(strings.Join(strings.Fields(line), " "))
	}
	// Output:
	// 12:00:30 up 2->12 done
	// 12:00:40 up 2->12 cooldown
	// 12:00:50 up 2->12 cooldown
	// 12:02:00 hold 12->12 missing_data
	// 12:02:10 hold 12->12 missing_data
	// 12:02:20 hold 12->12 missing_data
	// 12:02:30 hold 12->12 missing_data
	// 12:02:40 hold 12->12 missing_data
	// 12:02:50 hold 12->12 missing_data
	// 12:03:00 down 12->5 stabilization
	// 12:03:10 down 12->5 stabilization
	// 12:03:20 down 12->5 stabilization
	// 12:03:30 down 12->5 stabilization
	// 12:03:40 down 12->5 stabilization
	// 12:03:50 down 12->5 stabilization
	// 12:04:00 down 12->5 done
	// 12:04:10 down 12->5 stabilization
	// 12:04:20 down 12->5 stabilization
	// 12:04:30 down 3->2 stabilization
	// 12:04:40 down 3->2 stabilization
	// 12:04:50 down 3->2 stabilization
	// 12:05:00 down 3->2 stabilization
	// 12:05:10 down 3->2 done
	// 12:05:20 down 3->2 stabilization
	// 12:05:30 down 3->2 stabilization
	// 12:05:40 down 3->2 stabilization
	// 12:05:50 down 3->2 stabilization
}
