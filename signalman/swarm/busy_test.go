package swarm

import (
	"context"
	"errors"
	"testing"

	"github.com/docker/docker/api/types/swarm"

	"github.com/kplane/kplane/signalman"
)

// updatingAPI holds one service whose rolling update has not converged.
type updatingAPI struct {
	state   swarm.UpdateState
	updates int
}

func (a *updatingAPI) service() swarm.Service {
	r := uint64(2)
	return swarm.Service{
		ID: "svc1",
		Spec: swarm.ServiceSpec{
			Annotations: swarm.Annotations{Name: "inventory-prod", Labels: map[string]string{LabelService: "inventory", LabelEnv: "prod"}},
			Mode:        swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &r}},
		},
		UpdateStatus: &swarm.UpdateStatus{State: a.state},
	}
}

func (a *updatingAPI) ServiceList(context.Context, swarm.ServiceListOptions) ([]swarm.Service, error) {
	return []swarm.Service{a.service()}, nil
}

func (a *updatingAPI) ServiceInspectWithRaw(context.Context, string, swarm.ServiceInspectOptions) (swarm.Service, []byte, error) {
	return a.service(), nil, nil
}

func (a *updatingAPI) ServiceUpdate(context.Context, string, swarm.Version, swarm.ServiceSpec, swarm.ServiceUpdateOptions) (swarm.ServiceUpdateResponse, error) {
	a.updates++
	return swarm.ServiceUpdateResponse{}, nil
}

func (a *updatingAPI) ServiceCreate(context.Context, swarm.ServiceSpec, swarm.ServiceCreateOptions) (swarm.ServiceCreateResponse, error) {
	return swarm.ServiceCreateResponse{}, errors.New("not in this test")
}

func (a *updatingAPI) ServiceRemove(context.Context, string) error {
	return errors.New("not in this test")
}

func (a *updatingAPI) TaskList(context.Context, swarm.TaskListOptions) ([]swarm.Task, error) {
	return nil, nil
}

func TestScaleDuringRolloutIsBusy(t *testing.T) {
	for _, state := range []swarm.UpdateState{swarm.UpdateStateUpdating, swarm.UpdateStateRollbackStarted} {
		api := &updatingAPI{state: state}
		d, err := New(Config{API: api})
		if err != nil {
			t.Fatal(err)
		}
		_, err = d.Scale(context.Background(), signalman.Target{Service: "inventory", Env: "prod"}, 4)
		if !errors.Is(err, signalman.ErrBusy) {
			t.Errorf("%s: Scale = %v, want ErrBusy", state, err)
		}
		if api.updates != 0 {
			t.Errorf("%s: the service was updated %d times during a rollout", state, api.updates)
		}
	}
}
