package mysql_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/kplane/kplane/auth"
	"github.com/kplane/kplane/internal/mariadbtest"
	"github.com/kplane/kplane/internal/sqldb"
	"github.com/kplane/kplane/ktrace"
	"github.com/kplane/kplane/ktrace/mysql"
	"github.com/kplane/kplane/web"
)

// TestIngestAcrossRestart is issue 7's "restart MariaDB during span
// ingest": the MySQL span store behind the real ingest path, wired as
// `kplane server` wires it (web's POST /api/v2/spans → ktrace.Ingester →
// this store), takes Zipkin batches from several clients while mariadbd is
// killed and, after an outage, started again on the same data dir and
// port. While it is down ingest must answer 503 with Retry-After; no batch
// may get a 2xx unless its spans are stored: afterwards every acknowledged
// span is counted in the store.
func TestIngestAcrossRestart(t *testing.T) {
	const (
		clients       = 4
		spansPerBatch = 10
		before        = 2 * time.Second // ingest before the kill
		outage        = 3 * time.Second // mariadbd down
		after         = 3 * time.Second // ingest after it answers again
	)
	srv := mariadbtest.Start(t)
	store, err := mysql.Open(t.Context(), mysql.Config{DSN: srv.NewDatabase(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	url := ingestServer(t, store)

	var (
		mu        sync.Mutex
		acked     = map[ktrace.TraceID]int{} // trace → spans acknowledged
		ackedAt   []time.Time
		unavail   atomic.Int64 // 503 answers
		killedAt  atomic.Pointer[time.Time]
		restarted atomic.Pointer[time.Time]
		first503  atomic.Pointer[time.Time]
		// firstOK is the first 2xx for a batch sent after the restart.
		firstOK atomic.Pointer[time.Time]
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	hc := &http.Client{Timeout: 30 * time.Second}
	for c := range clients {
		wg.Go(func() {
			for seq := 0; ; seq++ {
				id, body := zipkinBatch(c, seq, spansPerBatch)
				// A client retries its batch on 503 until it is taken,
				// here every 50 ms rather than after Retry-After's 5 s, to
				// see how soon ingest recovers.
				for {
					select {
					case <-stop:
						return
					default:
					}
					sent := time.Now()
					status, retryAfter, err := post(hc, url, body)
					switch {
					case err != nil:
						t.Errorf("client %d: POST: %v", c, err)
						return
					case status/100 == 2:
						now := time.Now()
						mu.Lock()
						acked[id] += spansPerBatch
						ackedAt = append(ackedAt, now)
						mu.Unlock()
						if r := restarted.Load(); r != nil && sent.After(*r) {
							firstOK.CompareAndSwap(nil, &now)
						}
					case status == http.StatusServiceUnavailable:
						unavail.Add(1)
						now := time.Now()
						first503.CompareAndSwap(nil, &now)
						if retryAfter == "" {
							t.Errorf("client %d: 503 without Retry-After", c)
						}
						time.Sleep(50 * time.Millisecond)
						continue
					default:
						t.Errorf("client %d: status %d, want 2xx or 503", c, status)
						return
					}
					break
				}
			}
		})
	}
	ackedBy := func(at time.Time) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, a := range ackedAt {
			if !a.After(at) {
				n++
			}
		}
		return n * spansPerBatch
	}

	time.Sleep(before)
	k := time.Now()
	killedAt.Store(&k)
	srv.Kill(t)
	time.Sleep(outage)
	took := srv.Restart(t)
	r := time.Now()
	restarted.Store(&r)
	time.Sleep(after)
	close(stop)
	wg.Wait()

	total := 0
	for _, n := range acked {
		total += n
	}
	t.Logf("%d clients: %d spans acknowledged (%d before the kill), %d answers 503 during the %s outage; mariadbd ready %s after its start",
		clients, total, ackedBy(*killedAt.Load()), unavail.Load(), outage, took.Round(time.Millisecond))
	if f := first503.Load(); f == nil {
		t.Errorf("no 503 while mariadbd was down")
	} else {
		t.Logf("first 503 %s after the kill", f.Sub(k).Round(time.Millisecond))
	}
	if ok := firstOK.Load(); ok == nil {
		t.Errorf("no batch sent after the restart was acknowledged: ingest did not recover")
	} else {
		t.Logf("first batch acknowledged %s after mariadbd answered again", ok.Sub(r).Round(time.Millisecond))
	}

	// Count: every acknowledged span is stored.
	missing := 0
	for id, n := range acked {
		tr, err := store.Trace(t.Context(), id)
		if err != nil {
			t.Fatalf("trace %s: %v", id, err)
		}
		if len(tr.Spans) != n {
			missing += n - len(tr.Spans)
			if missing < 50 {
				t.Errorf("trace %s: %d spans acknowledged, %d stored", id, n, len(tr.Spans))
			}
		}
	}
	t.Logf("stored: %d of %d acknowledged spans", total-missing, total)
	if missing != 0 {
		t.Errorf("%d acknowledged spans are missing from the store", missing)
	}
}

// ingestServer serves span ingest as cmd/kplane does: web in front of a
// ktrace.Ingester writing to store. It returns the Zipkin endpoint's URL.
func ingestServer(t *testing.T, store ktrace.Store) string {
	t.Helper()
	ctx := t.Context()
	db, err := sqldb.Open(ctx, filepath.Join(t.TempDir(), "kplane.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := sqldb.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(db, auth.Config{BcryptCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	in, err := ktrace.NewIngester(ktrace.IngesterConfig{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(runCtx) }()
	w, err := web.New(web.Config{Auth: a, Traces: store, Ingester: in})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(w.Handler())
	t.Cleanup(func() {
		ts.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ingester: %v", err)
		}
	})
	return ts.URL + "/api/v2/spans"
}

// zipkinBatch is one trace of n spans, a root and its children, with IDs
// unique to (client, seq).
func zipkinBatch(client, seq, n int) (ktrace.TraceID, []byte) {
	var id ktrace.TraceID
	binary.BigEndian.PutUint64(id[0:8], 0x6b706c616e65_0000|uint64(client))
	binary.BigEndian.PutUint64(id[8:16], uint64(seq)+1)
	now := time.Now().UnixMicro()
	type endpoint struct {
		ServiceName string `json:"serviceName"`
	}
	type span struct {
		TraceID   string   `json:"traceId"`
		ID        string   `json:"id"`
		ParentID  string   `json:"parentId,omitempty"`
		Name      string   `json:"name"`
		Timestamp int64    `json:"timestamp"`
		Duration  int64    `json:"duration"`
		Local     endpoint `json:"localEndpoint"`
	}
	spans := make([]span, n)
	for i := range spans {
		spans[i] = span{
			TraceID: fmt.Sprintf("%x", id[:]), ID: fmt.Sprintf("%016x", i+1),
			Name: "get /stock", Timestamp: now + int64(i), Duration: 1000,
			Local: endpoint{"inventory"},
		}
		if i > 0 {
			spans[i].ParentID = fmt.Sprintf("%016x", 1)
		}
	}
	b, _ := json.Marshal(spans)
	return id, b
}

func post(hc *http.Client, url string, body []byte) (status int, retryAfter string, err error) {
	resp, err := hc.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After"), nil
}
