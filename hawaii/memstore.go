package hawaii

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// MemoryStore is a Store in memory, for tests and for a kplane without a
// SQL store. It keeps everything until the process ends.
type MemoryStore struct {
	now func() time.Time

	mu         sync.Mutex
	builds     []Build // in ID order; ID i+1 is builds[i]
	byGUID     map[string]int64
	stages     map[int64]map[Stage]StageRecord
	cases      map[int64][]TestCase
	nextCase   int64
	events     []Event // in ID order
	deliveries map[string]time.Time
	locks      map[envKey]Lock
	pins       map[envKey]Pin
	promotions []Promotion // in ID order; ID i+1 is promotions[i]
}

type envKey struct{ service, env string }

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty store. now stamps stage updates and audit
// events; nil is time.Now.
func NewMemoryStore(now func() time.Time) *MemoryStore {
	if now == nil {
		now = time.Now
	}
	return &MemoryStore{
		now:        now,
		byGUID:     map[string]int64{},
		stages:     map[int64]map[Stage]StageRecord{},
		cases:      map[int64][]TestCase{},
		deliveries: map[string]time.Time{},
		locks:      map[envKey]Lock{},
		pins:       map[envKey]Pin{},
	}
}

func cloneBuild(b Build) Build {
	b.Changelog = slices.Clone(b.Changelog)
	return b
}

// view builds a BuildView; s.mu is held.
func (s *MemoryStore) view(id int64) BuildView {
	var recs []StageRecord
	for _, st := range Stages {
		if r, ok := s.stages[id][st]; ok {
			r.Steps = slices.Clone(r.Steps)
			recs = append(recs, r)
		}
	}
	return viewOf(cloneBuild(s.builds[id-1]), recs)
}

func (s *MemoryStore) exists(id int64) error {
	if id < 1 || id > int64(len(s.builds)) {
		return fmt.Errorf("build %d: %w", id, ErrNotFound)
	}
	return nil
}

// Report implements Store.
func (s *MemoryStore) Report(ctx context.Context, b Build) (Build, bool, error) {
	if err := ctx.Err(); err != nil {
		return Build{}, false, err
	}
	b = cloneBuild(b.normalize())
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := s.byGUID[b.GUID]; ok {
		return cloneBuild(s.builds[id-1]), false, nil
	}
	b.ID = int64(len(s.builds)) + 1
	s.builds = append(s.builds, b)
	s.byGUID[b.GUID] = b.ID
	return cloneBuild(b), true, nil
}

// Build implements Store.
func (s *MemoryStore) Build(ctx context.Context, id int64) (BuildView, error) {
	if err := ctx.Err(); err != nil {
		return BuildView{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.exists(id); err != nil {
		return BuildView{}, err
	}
	return s.view(id), nil
}

// BuildByGUID implements Store.
func (s *MemoryStore) BuildByGUID(ctx context.Context, guid string) (BuildView, error) {
	if err := ctx.Err(); err != nil {
		return BuildView{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.byGUID[guid]
	if !ok {
		return BuildView{}, fmt.Errorf("build %s: %w", guid, ErrNotFound)
	}
	return s.view(id), nil
}

// Builds implements Store.
func (s *MemoryStore) Builds(ctx context.Context, q BuildQuery) ([]BuildView, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := limit(q.Limit)
	var out []BuildView
	for i := len(s.builds) - 1; i >= 0 && len(out) < n; i-- {
		b := s.builds[i]
		if (q.Before > 0 && b.ID >= q.Before) || (q.Service != "" && b.Service != q.Service) {
			continue
		}
		out = append(out, s.view(b.ID))
	}
	return out, nil
}

// SetStage implements Store.
func (s *MemoryStore) SetStage(ctx context.Context, r StageRecord) (StageRecord, error) {
	if err := ctx.Err(); err != nil {
		return StageRecord{}, err
	}
	if err := r.validate(); err != nil {
		return StageRecord{}, err
	}
	r = r.normalize()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.exists(r.BuildID); err != nil {
		return StageRecord{}, fmt.Errorf("set stage %s: %w", r.Stage, err)
	}
	if s.stages[r.BuildID] == nil {
		s.stages[r.BuildID] = map[Stage]StageRecord{}
	}
	r.Tests = s.stages[r.BuildID][r.Stage].Tests
	r.Updated = time.Unix(0, s.now().UnixNano()).UTC()
	r.Steps = slices.Clone(r.Steps)
	s.stages[r.BuildID][r.Stage] = r
	r.Steps = slices.Clone(r.Steps)
	return r, nil
}

// AddResults implements Store.
func (s *MemoryStore) AddResults(ctx context.Context, buildID int64, st Stage, cases []TestCase) (TestCounts, error) {
	if err := ctx.Err(); err != nil {
		return TestCounts{}, err
	}
	add, err := checkCases(buildID, st, cases)
	if err != nil {
		return TestCounts{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.exists(buildID); err != nil {
		return TestCounts{}, fmt.Errorf("add %s results: %w", st, err)
	}
	for _, c := range cases {
		s.nextCase++
		c.ID = s.nextCase
		s.cases[buildID] = append(s.cases[buildID], c)
	}
	if s.stages[buildID] == nil {
		s.stages[buildID] = map[Stage]StageRecord{}
	}
	r, ok := s.stages[buildID][st]
	if !ok {
		r = StageRecord{BuildID: buildID, Stage: st, Status: StatusPending}
	}
	r.Tests = r.Tests.Add(add)
	s.stages[buildID][st] = r
	return r.Tests, nil
}

// ClearResults implements Store.
func (s *MemoryStore) ClearResults(ctx context.Context, buildID int64, st Stage) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !st.Valid() {
		return &FieldsError{What: "results", Fields: map[string]string{"stage": "must be alpha, qa or prod"}}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.exists(buildID); err != nil {
		return fmt.Errorf("clear %s results: %w", st, err)
	}
	s.cases[buildID] = slices.DeleteFunc(s.cases[buildID], func(c TestCase) bool { return c.Stage == st })
	if r, ok := s.stages[buildID][st]; ok {
		r.Tests = TestCounts{}
		s.stages[buildID][st] = r
	}
	return nil
}

// Results implements Store.
func (s *MemoryStore) Results(ctx context.Context, buildID int64, st Stage) ([]TestCase, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.exists(buildID); err != nil {
		return nil, fmt.Errorf("results: %w", err)
	}
	var out []TestCase
	for _, stage := range Stages {
		if st != "" && stage != st {
			continue
		}
		for _, c := range s.cases[buildID] {
			if c.Stage == stage {
				out = append(out, c)
			}
		}
	}
	return out, nil
}

// ResultsPage implements Store.
func (s *MemoryStore) ResultsPage(ctx context.Context, buildID int64, q ResultQuery) (ResultPage, error) {
	if err := ctx.Err(); err != nil {
		return ResultPage{}, err
	}
	if err := q.validate(); err != nil {
		return ResultPage{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.exists(buildID); err != nil {
		return ResultPage{}, fmt.Errorf("results: %w", err)
	}
	return PageResults(s.cases[buildID], q), nil
}

// Audit implements Store.
func (s *MemoryStore) Audit(ctx context.Context, e Event) (Event, error) {
	if err := ctx.Err(); err != nil {
		return Event{}, err
	}
	if err := e.validate(); err != nil {
		return Event{}, err
	}
	e = e.normalize(s.now)
	e.Time = time.Unix(0, e.Time.UnixNano()).UTC()
	e.Details = slices.Clone(e.Details)
	s.mu.Lock()
	defer s.mu.Unlock()
	e.ID = int64(len(s.events)) + 1
	s.events = append(s.events, e)
	e.Details = slices.Clone(e.Details)
	return e, nil
}

// AuditEvents implements Store.
func (s *MemoryStore) AuditEvents(ctx context.Context, q AuditQuery) ([]Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := limit(q.Limit)
	var out []Event
	for i := len(s.events) - 1; i >= 0 && len(out) < n; i-- {
		e := s.events[i]
		if (q.Before > 0 && e.ID >= q.Before) || (q.Service != "" && e.Service != q.Service) ||
			(q.BuildID != 0 && e.BuildID != q.BuildID) || (q.Actor != "" && e.Actor != q.Actor) ||
			(q.Action != "" && e.Action != q.Action) {
			continue
		}
		e.Details = slices.Clone(e.Details)
		out = append(out, e)
	}
	return out, nil
}

// ClaimDelivery implements Store.
func (s *MemoryStore) ClaimDelivery(ctx context.Context, id string, at time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for d, t := range s.deliveries {
		if t.Before(at.Add(-deliveryMemory)) {
			delete(s.deliveries, d)
		}
	}
	if _, ok := s.deliveries[id]; ok {
		return false, nil
	}
	s.deliveries[id] = at
	return true, nil
}

// ReleaseDelivery implements Store.
func (s *MemoryStore) ReleaseDelivery(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.deliveries, id)
	return nil
}

// storedTime is t as the SQL store gives it back: to the nanosecond, in
// UTC, zero for zero.
func storedTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return time.Unix(0, t.UnixNano()).UTC()
}

// PutLock implements Store.
func (s *MemoryStore) PutLock(ctx context.Context, l Lock) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.Created, l.Expires = storedTime(l.Created), storedTime(l.Expires)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.locks[envKey{l.Service, l.Env}] = l
	return nil
}

// DeleteLock implements Store.
func (s *MemoryStore) DeleteLock(ctx context.Context, service, env string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := envKey{service, env}
	_, ok := s.locks[k]
	delete(s.locks, k)
	return ok, nil
}

// PutPin implements Store.
func (s *MemoryStore) PutPin(ctx context.Context, p Pin) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.Since = storedTime(p.Since)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pins[envKey{p.Service, p.Env}] = p
	return nil
}

// DeletePin implements Store.
func (s *MemoryStore) DeletePin(ctx context.Context, service, env string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := envKey{service, env}
	_, ok := s.pins[k]
	delete(s.pins, k)
	return ok, nil
}

// LocksAndPins implements Store.
func (s *MemoryStore) LocksAndPins(ctx context.Context, service string) ([]Lock, []Pin, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	locks, pins := []Lock{}, []Pin{}
	for k, l := range s.locks {
		if service == "" || k.service == service {
			locks = append(locks, l)
		}
	}
	for k, p := range s.pins {
		if service == "" || k.service == service {
			pins = append(pins, p)
		}
	}
	slices.SortFunc(locks, func(a, b Lock) int { return cmpEnv(a.Service, a.Env, b.Service, b.Env) })
	slices.SortFunc(pins, func(a, b Pin) int { return cmpEnv(a.Service, a.Env, b.Service, b.Env) })
	return locks, pins, nil
}

func cmpEnv(s1, e1, s2, e2 string) int {
	if c := strings.Compare(s1, s2); c != 0 {
		return c
	}
	return strings.Compare(e1, e2)
}

func normalizePromotion(p Promotion) Promotion {
	p.Started, p.Updated, p.Ended = storedTime(p.Started), storedTime(p.Updated), storedTime(p.Ended)
	return p
}

// SavePromotion implements Store.
func (s *MemoryStore) SavePromotion(ctx context.Context, p Promotion) (Promotion, error) {
	if err := ctx.Err(); err != nil {
		return Promotion{}, err
	}
	p = normalizePromotion(p)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.exists(p.BuildID); err != nil {
		return Promotion{}, fmt.Errorf("save promotion: %w", err)
	}
	if p.ID == 0 {
		p.ID = int64(len(s.promotions)) + 1
		s.promotions = append(s.promotions, p)
		return p, nil
	}
	if p.ID < 1 || p.ID > int64(len(s.promotions)) {
		return Promotion{}, fmt.Errorf("promotion %d: %w", p.ID, ErrNotFound)
	}
	s.promotions[p.ID-1] = p
	return p, nil
}

// Promotions implements Store.
func (s *MemoryStore) Promotions(ctx context.Context, q PromotionQuery) ([]Promotion, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := limit(q.Limit)
	var out []Promotion
	for i := len(s.promotions) - 1; i >= 0 && len(out) < n; i-- {
		if q.match(s.promotions[i]) {
			out = append(out, s.promotions[i])
		}
	}
	return out, nil
}
