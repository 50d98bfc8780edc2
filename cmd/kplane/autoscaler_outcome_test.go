package main

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/kplane/kplane/headquarter"
	"github.com/kplane/kplane/signalman"
)

// resultOrchestrator answers every Scale with the same result and error.
type resultOrchestrator struct {
	res signalman.Result
	err error
}

func (o resultOrchestrator) Scale(context.Context, signalman.Target, int) (signalman.Result, error) {
	return o.res, o.err
}

func (o resultOrchestrator) Instances(context.Context, signalman.Target) ([]signalman.Instance, error) {
	return nil, nil
}

// TestScaleOutcomes: how an orchestrator's answer is recorded in the
// decision. An engine error (issue 7's Docker faults, see
// signalman/docker's fault tests) is "failed", which the autoscaler tries
// again at its next tick; only a change already in progress is "busy".
func TestScaleOutcomes(t *testing.T) {
	started := signalman.Result{From: 1, To: 2, Started: []string{"inventory-dev-2"}}
	for _, tc := range []struct {
		name string
		o    resultOrchestrator
		want headquarter.Outcome
	}{
		{"done", resultOrchestrator{res: started}, headquarter.OutcomeDone},
		{"no-op", resultOrchestrator{res: signalman.Result{From: 2, To: 2}}, headquarter.OutcomeNoOp},
		{"busy", resultOrchestrator{err: fmt.Errorf("%w: inventory@dev is being changed", signalman.ErrBusy)}, headquarter.OutcomeBusy},
		{"engine error", resultOrchestrator{err: errors.New("docker: start inventory-dev-2: Error response from daemon: boom")}, headquarter.OutcomeFailed},
		{"not confirmed", resultOrchestrator{err: fmt.Errorf("%w: inventory-dev-2", signalman.ErrNotConfirmed)}, headquarter.OutcomeFailed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := orchestratorScaler{orch: tc.o, defaultEnv: "dev"}
			got, err := s.Scale(t.Context(), headquarter.ScaleRequest{Service: "inventory", Instances: 2})
			if got != tc.want {
				t.Errorf("outcome %q (%v), want %q", got, err, tc.want)
			}
			if (got == headquarter.OutcomeFailed) != (err != nil) {
				t.Errorf("outcome %q with error %v: only failed carries one", got, err)
			}
		})
	}
}
