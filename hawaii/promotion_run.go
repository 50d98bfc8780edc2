package hawaii

import (
	"context"
	"fmt"
	"time"

	"github.com/kplane/kplane/auth"
	"github.com/kplane/kplane/signalman"
)

// Promote starts the rollout of build id to prod on behalf of who. It
// refuses with a *BlockedError (ErrBlocked) listing every reason the
// review gives; override asks for an admin override of separation of
// duties, which is audited. It returns the running promotion; its
// DeployID names the signalman deploy whose steps stream live.
func (p *Pipeline) Promote(ctx context.Context, id int64, who auth.Identity, override bool) (Promotion, error) {
	p.prodMu.Lock()
	defer p.prodMu.Unlock()
	r, err := p.Review(ctx, id, who, override)
	if err != nil {
		return Promotion{}, err
	}
	if !r.CanPromote {
		return Promotion{}, &BlockedError{Blockers: r.Blockers}
	}
	b := r.Candidate
	details := map[string]any{"version": b.Version, "image": b.Image, "override": r.Overridden}
	if r.Prod != nil {
		details["from"] = r.Prod.Version
	}
	if r.Overridden {
		p.audit(ctx, Event{Actor: who.User, Action: ActionOverride, Service: b.Service, BuildID: b.ID, Stage: StageProd,
			Details: Details(map[string]string{"committer": b.Committer, "rule": "separation of duties"})})
	}
	p.audit(ctx, Event{Actor: who.User, Action: ActionPromoted, Service: b.Service, BuildID: b.ID, Stage: StageProd, Details: Details(details)})
	return p.rollout(ctx, b, KindPromote, who.User, r.Overridden, nil)
}

// rollout starts the prod deploy of b and follows it in the background;
// after a successful rollback, previous (the build rolled back from) gets
// its prod stage cancelled.
func (p *Pipeline) rollout(ctx context.Context, b Build, kind, by string, override bool, previous *Build) (Promotion, error) {
	run := p.begin(ctx, b, StageProd, kind, by)
	run.promo.Override = override
	run.promo.RunEnv = string(StageProd)
	dep, err := p.dep.Begin(signalman.DeployRequest{Target: signalman.Target{Service: b.Service, Env: string(StageProd)},
		Version: b.Version, By: by})
	if err != nil {
		run.advance(ctx, PromotionFailed, err.Error())
		run.finish(ctx, StatusFailed, err.Error())
		return Promotion{}, fmt.Errorf("start rollout of %s %s: %w", b.Service, b.Version, err)
	}
	p.mu.Lock()
	run.promo.DeployID = dep.ID
	p.mu.Unlock()
	run.advance(ctx, PromotionDeploying, "")
	promo := p.promotion(run.promo)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.follow(context.WithoutCancel(ctx), run, dep.ID, previous)
	}()
	return promo, nil
}

func (p *Pipeline) promotion(pr *Promotion) Promotion {
	p.mu.Lock()
	defer p.mu.Unlock()
	return *pr
}

// follow records the rollout's end in the promotion and the stage.
func (p *Pipeline) follow(ctx context.Context, run *stageRun, deployID string, previous *Build) {
	done := run.step(ctx, "rolling deploy "+deployID)
	changes, cancel, err := p.dep.Subscribe(ctx, deployID)
	var d signalman.Deploy
	if err == nil {
		defer cancel()
		for {
			d, err = p.dep.Get(ctx, deployID)
			if err != nil || d.State.Done() {
				break
			}
			<-changes
		}
	}
	if err == nil && d.State != signalman.DeploySucceeded {
		err = fmt.Errorf("rollout %s ended %s: %s", d.ID, d.State, d.Error)
	}
	done(err)
	switch {
	case err == nil:
		run.advance(ctx, PromotionPassed, "")
		run.finish(ctx, StatusPassed, "")
		p.supersede(ctx, run.promo)
		if previous != nil {
			rec := StageRecord{BuildID: previous.ID, Stage: StageProd, Status: StatusCancelled, Finished: p.now(),
				Steps: []Step{{Name: "rolled back to " + run.promo.Version + " by " + run.promo.By, Status: StatusCancelled, Finished: p.now()}}}
			if _, err := p.store.SetStage(ctx, rec); err != nil {
				p.log.Error("set stage", "build", previous.ID, "err", err)
			}
		}
	case d.State == signalman.DeployRolledBack:
		run.advance(ctx, PromotionRolledBack, err.Error())
		run.finish(ctx, StatusFailed, err.Error())
	default:
		run.advance(ctx, PromotionFailed, err.Error())
		run.finish(ctx, StatusFailed, err.Error())
	}
}

// supersede marks earlier passed promotions into the same environment.
func (p *Pipeline) supersede(ctx context.Context, now *Promotion) {
	p.mu.Lock()
	cur := *now
	p.mu.Unlock()
	prs, err := p.store.Promotions(ctx, PromotionQuery{Service: cur.Service, Env: cur.Env, State: PromotionPassed, Limit: MaxLimit})
	if err != nil {
		p.log.Error("supersede promotions", "service", cur.Service, "env", cur.Env, "err", err)
		return
	}
	for _, pr := range prs {
		if pr.ID == cur.ID || pr.Advance(PromotionSuperseded, p.now(), "") != nil {
			continue
		}
		if _, err := p.store.SavePromotion(ctx, pr); err != nil {
			p.log.Error("supersede promotion", "promotion", pr.ID, "err", err)
		}
	}
}

// Rollback rolls prod of service back to the build that was there before
// the current one, and pins prod to it until Unpin.
func (p *Pipeline) Rollback(ctx context.Context, service string, who auth.Identity, reason string) (Promotion, error) {
	if !who.Role.Allows(auth.Releaser) {
		return Promotion{}, fmt.Errorf("rolling prod back needs the releaser role: %w", auth.ErrForbidden)
	}
	p.prodMu.Lock()
	defer p.prodMu.Unlock()
	h, err := p.prodHistory(ctx, service)
	if err != nil {
		return Promotion{}, err
	}
	if len(h) < 2 {
		return Promotion{}, &BlockedError{Blockers: []Blocker{{Code: "no_previous", Message: "no previous prod build of " + service + " to roll back to"}}}
	}
	r, err := p.runningProd(ctx, service)
	if err != nil {
		return Promotion{}, err
	}
	if r != nil {
		return Promotion{}, &BlockedError{Blockers: []Blocker{{Code: BlockRunning, Message: fmt.Sprintf("a %s of %s into prod is still running", r.Kind, r.Version)}}}
	}
	cur, prev := h[0].Build, h[1].Build
	if reason == "" {
		reason = "rollback from " + cur.Version
	}
	pin := Pin{Service: service, Env: string(StageProd), BuildID: prev.ID, Version: prev.Version, By: who.User, Reason: reason, Since: p.now()}
	if err := p.store.PutPin(ctx, pin); err != nil {
		return Promotion{}, err
	}
	p.audit(ctx, Event{Actor: who.User, Action: ActionRolledBack, Service: service, BuildID: prev.ID, Stage: StageProd,
		Details: Details(map[string]string{"from": cur.Version, "to": prev.Version, "reason": reason})})
	p.audit(ctx, Event{Actor: who.User, Action: ActionPinned, Service: service, BuildID: prev.ID, Stage: StageProd,
		Details: Details(map[string]string{"version": prev.Version})})
	return p.rollout(ctx, prev, KindRollback, who.User, false, &cur)
}

// Unpin lifts the pin a rollback left on env of service.
func (p *Pipeline) Unpin(ctx context.Context, service, env string, who auth.Identity) error {
	if !who.Role.Allows(auth.Releaser) {
		return fmt.Errorf("unpinning needs the releaser role: %w", auth.ErrForbidden)
	}
	removed, err := p.store.DeletePin(ctx, service, env)
	if err != nil {
		return err
	}
	if !removed {
		return fmt.Errorf("%s of %s is not pinned: %w", env, service, ErrNotFound)
	}
	p.audit(ctx, Event{Actor: who.User, Action: ActionUnpinned, Service: service, Stage: Stage(env)})
	return nil
}

// Lock locks env of service for d on behalf of who (a developer may lock
// alpha and qa; prod needs a releaser).
func (p *Pipeline) Lock(ctx context.Context, service, env, reason string, d time.Duration, who auth.Identity) (Lock, error) {
	if err := lockRole(env, who); err != nil {
		return Lock{}, err
	}
	l, err := NewLock(service, env, who.User, reason, d, p.now())
	if err != nil {
		return Lock{}, err
	}
	if err := p.store.PutLock(ctx, l); err != nil {
		return Lock{}, err
	}
	p.audit(ctx, Event{Actor: who.User, Action: ActionLocked, Service: service, Stage: Stage(env),
		Details: Details(map[string]string{"reason": l.Reason, "expires": l.Expires.UTC().Format(time.RFC3339)})})
	return l, nil
}

// Unlock removes the lock on env of service.
func (p *Pipeline) Unlock(ctx context.Context, service, env string, who auth.Identity) error {
	if err := lockRole(env, who); err != nil {
		return err
	}
	removed, err := p.store.DeleteLock(ctx, service, env)
	if err != nil {
		return err
	}
	if !removed {
		return fmt.Errorf("%s of %s is not locked: %w", env, service, ErrNotFound)
	}
	p.audit(ctx, Event{Actor: who.User, Action: ActionUnlocked, Service: service, Stage: Stage(env)})
	return nil
}

func lockRole(env string, who auth.Identity) error {
	need := auth.Developer
	if env == string(StageProd) {
		need = auth.Releaser
	}
	if !who.Role.Allows(need) {
		return fmt.Errorf("locking %s needs the %s role: %w", env, need, auth.ErrForbidden)
	}
	return nil
}

// Locks returns the active locks and the pins of service ("" for all).
func (p *Pipeline) Locks(ctx context.Context, service string) ([]Lock, []Pin, error) {
	all, pins, err := p.store.LocksAndPins(ctx, service)
	if err != nil {
		return nil, nil, err
	}
	now := p.now()
	locks := []Lock{}
	for _, l := range all {
		if l.Active(now) {
			locks = append(locks, l)
		}
	}
	return locks, pins, nil
}

// Promotions returns the promotions of build id (0: the latest of all),
// newest first.
func (p *Pipeline) Promotions(ctx context.Context, id int64) ([]Promotion, error) {
	return p.store.Promotions(ctx, PromotionQuery{BuildID: id, Limit: MaxLimit})
}
