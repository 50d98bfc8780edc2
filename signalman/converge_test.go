package signalman_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kplane/kplane/registry"
	"github.com/kplane/kplane/signalman"
)

// counting is a Confirmer over a fixed registry view; it waits until ok
// holds or ctx ends, as registry.Watcher does.
type counting struct{ insts []registry.Instance }

func (c counting) WaitInstances(ctx context.Context, _ string, ok func([]registry.Instance) bool) error {
	if ok(c.insts) {
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}

func inEnv(env string, n int) []registry.Instance {
	out := make([]registry.Instance, n)
	for i := range out {
		out[i] = registry.Instance{ID: fmt.Sprint(i), Name: "inventory", Env: env}
	}
	return out
}

func TestConverge(t *testing.T) {
	target := signalman.Target{Service: "inventory", Env: "prod"}
	boom := errors.New("scheduler says no")
	for name, tc := range map[string]struct {
		doneAfter  int // Check reports done from this call on; 0 never
		checkErr   error
		confirmer  signalman.Confirmer
		cancel     bool
		wantErr    error
		wantMsg    string
		wantRevert bool
	}{
		"converges":                          {doneAfter: 3},
		"registered in the env":              {doneAfter: 1, confirmer: counting{append(inEnv("prod", 3), inEnv("qa", 2)...)}},
		"never running is reverted":          {wantErr: signalman.ErrNotConfirmed, wantMsg: "still 1 of 3 within", wantRevert: true},
		"not registered is reverted":         {doneAfter: 1, confirmer: counting{inEnv("prod", 2)}, wantErr: signalman.ErrNotConfirmed, wantMsg: "3 instances of inventory@prod were not registered", wantRevert: true},
		"scheduler error is reverted":        {checkErr: boom, wantErr: boom, wantRevert: true},
		"superseded is not reverted":         {checkErr: fmt.Errorf("%w: 5 now", signalman.ErrSuperseded), wantErr: signalman.ErrSuperseded},
		"cancelled is reverted all the same": {cancel: true, wantErr: context.Canceled, wantRevert: true},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var calls atomic.Int32
			var reverted atomic.Bool
			var revertCtxErr error
			err := signalman.Converge{
				Target: target, Object: "test app", From: 1, N: 3,
				Timeout: 150 * time.Millisecond, Poll: 5 * time.Millisecond, Confirmer: tc.confirmer,
				Check: func(context.Context) (bool, string, error) {
					c := int(calls.Add(1))
					if tc.cancel && c == 2 {
						cancel()
					}
					if tc.checkErr != nil {
						return false, "", tc.checkErr
					}
					return tc.doneAfter > 0 && c >= tc.doneAfter, "still 1 of 3", nil
				},
				Revert: func(ctx context.Context) error {
					reverted.Store(true)
					revertCtxErr = ctx.Err()
					return nil
				},
			}.Run(ctx)
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("Run = %v, want %v", err, tc.wantErr)
			}
			if tc.wantMsg != "" && !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q does not say %q", err, tc.wantMsg)
			}
			if reverted.Load() != tc.wantRevert {
				t.Errorf("reverted = %v, want %v", reverted.Load(), tc.wantRevert)
			}
			if revertCtxErr != nil {
				t.Errorf("revert ran with a dead context: %v", revertCtxErr)
			}
		})
	}
}
