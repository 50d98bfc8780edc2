package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// WatcherConfig configures a Watcher.
type WatcherConfig struct {
	// Client is the etcd client to watch through. Required.
	Client *clientv3.Client
	// Prefix to watch. "" means DefaultPrefix; a missing trailing '/' is
	// added.
	Prefix string
	// Logger receives watch failures and ignored values. nil discards.
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the jittered wait between failed
	// list/watch attempts. 0 means DefaultMinBackoff and DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
}

// Watcher keeps a local cache of every instance under a prefix, fed by an
// etcd watch. The cache is what callers read, so lookups never touch
// etcd, and it is never emptied because etcd is unreachable: during an
// outage callers keep the last instances known, which are far more likely
// to be alive than no instances at all.
//
// All methods are safe for concurrent use. Run must be called once for
// the cache to fill.
type Watcher struct {
	client     *clientv3.Client
	prefix     string
	log        *slog.Logger
	minBackoff time.Duration
	maxBackoff time.Duration

	ready     chan struct{}
	readyOnce sync.Once

	mu       sync.RWMutex
	services map[string]map[string]entry // name → id → entry
	subs     map[chan struct{}]struct{}
}

// entry is a cached instance with the raw value it was decoded from, so a
// re-list can tell cheaply whether anything changed.
type entry struct {
	inst Instance
	raw  string
}

// NewWatcher returns a Watcher with an empty cache. A nil Client makes Run
// fail at once.
func NewWatcher(cfg WatcherConfig) *Watcher {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Watcher{
		client:     cfg.Client,
		prefix:     normalizePrefix(cfg.Prefix),
		log:        log,
		minBackoff: cfg.MinBackoff,
		maxBackoff: cfg.MaxBackoff,
		ready:      make(chan struct{}),
		services:   map[string]map[string]entry{},
		subs:       map[chan struct{}]struct{}{},
	}
}

// Ready is closed after the first successful list of the prefix: from
// then on the cache reflects etcd (or, during an outage, the last state
// seen).
func (w *Watcher) Ready() <-chan struct{} { return w.ready }

// Run lists the prefix, then watches it from the listed revision, until
// ctx ends. Any watch failure, including a compaction of the revision it
// needed, leads to a fresh list and watch after a backoff. It returns nil
// when ctx ends, and an error only if the config cannot work.
func (w *Watcher) Run(ctx context.Context) error {
	if w.client == nil {
		return fmt.Errorf("watcher: client is nil: %w", ErrInvalidConfig)
	}
	b := newBackoff(w.minBackoff, w.maxBackoff)
	for {
		start := time.Now()
		err := w.listAndWatch(ctx)
		if ctx.Err() != nil {
			return nil
		}
		// A watch that ran a while was healthy; its end is a new incident,
		// not the next failure of a streak.
		if time.Since(start) > b.max {
			b.reset()
		}
		d := b.delay()
		w.log.Warn("registry watch failed; serving cached instances", "prefix", w.prefix, "err", err, "retry_in", d)
		if !sleep(ctx, d) {
			return nil
		}
	}
}

func (w *Watcher) listAndWatch(ctx context.Context) error {
	listCtx, cancel := context.WithTimeout(ctx, opTimeout)
	resp, err := w.client.Get(listCtx, w.prefix, clientv3.WithPrefix())
	cancel()
	if err != nil {
		return fmt.Errorf("list %s: %w", w.prefix, err)
	}
	fresh := map[string]map[string]entry{}
	for _, kv := range resp.Kvs {
		if name, id, e, ok := w.decode(kv.Key, kv.Value); ok {
			if fresh[name] == nil {
				fresh[name] = map[string]entry{}
			}
			fresh[name][id] = e
		}
	}
	w.replace(fresh)
	w.readyOnce.Do(func() { close(w.ready) })

	// Without a leader a member serves a stale view and never says so;
	// requiring one makes the watch fail instead, and we re-list from a
	// member that has one.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := w.client.Watch(wctx, w.prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	for wresp := range wch {
		if err := wresp.Err(); err != nil {
			return fmt.Errorf("watch %s: %w", w.prefix, err)
		}
		changed := false
		w.mu.Lock()
		for _, ev := range wresp.Events {
			switch ev.Type {
			case clientv3.EventTypePut:
				if name, id, e, ok := w.decode(ev.Kv.Key, ev.Kv.Value); ok {
					changed = w.putLocked(name, id, e) || changed
				} else {
					// A key overwritten with garbage no longer describes
					// a reachable instance.
					changed = w.deleteLocked(string(ev.Kv.Key)) || changed
				}
			case clientv3.EventTypeDelete:
				changed = w.deleteLocked(string(ev.Kv.Key)) || changed
			}
		}
		if changed {
			w.notifyLocked()
		}
		w.mu.Unlock()
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.New("watch channel closed")
}

// decode turns a key/value into a cache entry, or logs why it is ignored.
// The key is the authority on name and id, since deletions carry only it.
func (w *Watcher) decode(k, v []byte) (name, id string, e entry, ok bool) {
	key := string(k)
	name, id, ok = w.splitKey(key)
	if !ok {
		w.log.Warn("ignoring registry key outside /<name>/<id>", "key", key)
		return "", "", entry{}, false
	}
	var inst Instance
	if err := json.Unmarshal(v, &inst); err != nil {
		w.log.Warn("ignoring registry value that is not instance JSON", "key", key, "err", err)
		return "", "", entry{}, false
	}
	if err := inst.Validate(); err != nil {
		w.log.Warn("ignoring invalid instance", "key", key, "err", err)
		return "", "", entry{}, false
	}
	if inst.Name != name || inst.ID != id {
		w.log.Warn("ignoring instance whose name or id differs from its key", "key", key, "name", inst.Name, "id", inst.ID)
		return "", "", entry{}, false
	}
	return name, id, entry{inst: inst, raw: string(v)}, true
}

func (w *Watcher) splitKey(key string) (name, id string, ok bool) {
	rest, ok := strings.CutPrefix(key, w.prefix)
	if !ok {
		return "", "", false
	}
	name, id, ok = strings.Cut(rest, "/")
	if !ok || name == "" || id == "" || strings.Contains(id, "/") {
		return "", "", false
	}
	return name, id, true
}

// replace swaps in a freshly listed cache, notifying only on a difference
// so a re-list after a blip does not wake every subscriber.
func (w *Watcher) replace(fresh map[string]map[string]entry) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if equalCache(w.services, fresh) {
		return
	}
	w.services = fresh
	w.notifyLocked()
}

func equalCache(a, b map[string]map[string]entry) bool {
	if len(a) != len(b) {
		return false
	}
	for name, ai := range a {
		bi, ok := b[name]
		if !ok || len(ai) != len(bi) {
			return false
		}
		for id, ae := range ai {
			if be, ok := bi[id]; !ok || be.raw != ae.raw {
				return false
			}
		}
	}
	return true
}

func (w *Watcher) putLocked(name, id string, e entry) bool {
	ids := w.services[name]
	if ids == nil {
		ids = map[string]entry{}
		w.services[name] = ids
	}
	if old, ok := ids[id]; ok && old.raw == e.raw {
		return false
	}
	ids[id] = e
	return true
}

func (w *Watcher) deleteLocked(key string) bool {
	name, id, ok := w.splitKey(key)
	if !ok {
		return false
	}
	ids := w.services[name]
	if _, ok := ids[id]; !ok {
		return false
	}
	delete(ids, id)
	if len(ids) == 0 {
		delete(w.services, name)
	}
	return true
}

func (w *Watcher) notifyLocked() {
	for ch := range w.subs {
		select {
		case ch <- struct{}{}:
		default: // a signal is already pending; coalesce
		}
	}
}

// Subscribe returns a channel that receives a value after every change of
// the cache, and a func that ends the subscription. The channel has a
// buffer of one and changes coalesce: a slow reader sees one signal for
// many changes and should re-read the state it cares about.
func (w *Watcher) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	w.mu.Lock()
	w.subs[ch] = struct{}{}
	w.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			w.mu.Lock()
			delete(w.subs, ch)
			w.mu.Unlock()
		})
	}
}

// Services returns every cached service, sorted by name, each with its
// instances sorted by ID. The result is a copy the caller may keep.
func (w *Watcher) Services() []Service {
	w.mu.RLock()
	defer w.mu.RUnlock()
	out := make([]Service, 0, len(w.services))
	for name, ids := range w.services {
		out = append(out, Service{Name: name, Instances: sortedCopy(ids)})
	}
	slices.SortFunc(out, func(a, b Service) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Instances returns the cached instances of one service, sorted by ID; nil
// if there are none. The result is a copy the caller may keep.
func (w *Watcher) Instances(name string) []Instance {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return sortedCopy(w.services[name])
}

func sortedCopy(ids map[string]entry) []Instance {
	if len(ids) == 0 {
		return nil
	}
	out := make([]Instance, 0, len(ids))
	for _, e := range ids {
		in := e.inst
		in.Tags = slices.Clone(in.Tags)
		out = append(out, in)
	}
	slices.SortFunc(out, func(a, b Instance) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// WaitInstances blocks until ok returns true for the current instances of
// name, re-checking after every cache change, or until ctx ends (then it
// returns ctx's error). ok must not block; it may keep its argument.
func (w *Watcher) WaitInstances(ctx context.Context, name string, ok func([]Instance) bool) error {
	ch, cancel := w.Subscribe()
	defer cancel()
	for {
		if ok(w.Instances(name)) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}
