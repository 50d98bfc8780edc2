package elasticsearch_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/kplane/kplane/registry"
	"github.com/kplane/kplane/scout"
	"github.com/kplane/kplane/scout/elasticsearch"
)

var update = flag.Bool("update", false, "rewrite the golden request bodies in testdata")

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var (
	t0    = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	fleet = []registry.Service{
		{Name: "checkpoint", Instances: []registry.Instance{{ID: "c1"}}},
		{Name: "inventory", Instances: []registry.Instance{{ID: "i1"}, {ID: "i2"}}},
		{Name: "ktv", Instances: []registry.Instance{{ID: "k1"}}},
	}
)

// fakeES replays recorded Elasticsearch 7 responses: the root info for
// anything at /, and the given status and file for searches, whose bodies
// it keeps.
type fakeES struct {
	mu       sync.Mutex
	searches []string // request bodies
	paths    []string // every request, "METHOD path"
	srv      *httptest.Server
}

func newFakeES(t *testing.T, status int, file string, delay time.Duration) *fakeES {
	f := &fakeES{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		f.paths = append(f.paths, r.Method+" "+r.URL.Path)
		if strings.HasSuffix(r.URL.Path, "/_search") {
			f.searches = append(f.searches, string(body))
		}
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json; charset=UTF-8")
		w.Header().Set("X-Elastic-Product", "Elasticsearch")
		if r.URL.Path == "/" {
			w.Write(readFile(t, "info.json"))
			return
		}
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		w.WriteHeader(status)
		w.Write(readFile(t, file))
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func readFile(t *testing.T, name string) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Error(err)
	}
	return b
}

// golden compares got (JSON) with testdata/name, or rewrites it with
// -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, []byte(got), "", "  "); err != nil {
		t.Fatalf("request body is not JSON: %v\n%s", err, got)
	}
	buf.WriteByte('\n')
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("request body differs from %s (go test -update rewrites it):\n got: %s\nwant: %s", path, buf.String(), want)
	}
}

func TestSearch(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		file      string
		delay     time.Duration
		wantQPS   map[string]string // value, or "missing: <reason>"
		wantErrIs error
		wantErr   string
	}{
		{
			name: "counts per service over the window", status: 200, file: "search_ok.json",
			wantQPS: map[string]string{"inventory": "30.5", "checkpoint": "0", "ktv": "missing: no access-log lines for ktv"},
		},
		{name: "index missing", status: 404, file: "index_missing.json", wantErr: "index_not_found_exception"},
		{name: "server error", status: 503, file: "unavailable.json", wantErr: "503"},
		{name: "timeout", status: 200, file: "search_ok.json", delay: 2 * time.Second, wantErr: "deadline exceeded"},
		{name: "no aggregation", status: 200, file: "info.json", wantErrIs: elasticsearch.ErrUnexpectedResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es := newFakeES(t, tt.status, tt.file, tt.delay)
			src, err := elasticsearch.New(elasticsearch.Config{URL: es.srv.URL, Timeout: 500 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			got, err := src.Collect(t.Context(), fleet, t0)
			switch {
			case tt.wantErrIs != nil:
				if !errors.Is(err, tt.wantErrIs) {
					t.Fatalf("err = %v, want %v", err, tt.wantErrIs)
				}
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
			case err != nil:
				t.Fatal(err)
			}
			for svc, want := range tt.wantQPS {
				s := got[svc][scout.QPS]
				if reason, ok := strings.CutPrefix(want, "missing: "); ok {
					if !s.Missing || !strings.Contains(s.Reason, reason) {
						t.Errorf("%s QPS = %s, want missing: %s", svc, s, reason)
					}
				} else if s.Missing || s.String() != want || !s.Time.Equal(t0) {
					t.Errorf("%s QPS = %s at %v, want %s at %v", svc, s, s.Time, want, t0)
				}
				if len(got[svc]) != 1 {
					t.Errorf("%s has %v, want QPS only", svc, got[svc])
				}
			}
			es.mu.Lock()
			defer es.mu.Unlock()
			// One request per tick: no ping, sniff or health check.
			if len(es.paths) != 1 || len(es.searches) != 1 {
				t.Fatalf("requests = %v, want exactly one search", es.paths)
			}
			if es.paths[0] != "POST /access-logs-*/_search" {
				t.Errorf("request = %s, want POST /access-logs-*/_search", es.paths[0])
			}
			golden(t, "search_request.golden.json", es.searches[0])
		})
	}
}

// Through scout, a failing Elasticsearch is missing QPS with its reason.
func TestFailureIsMissingInSnapshot(t *testing.T) {
	es := newFakeES(t, 404, "index_missing.json", 0)
	src, err := elasticsearch.New(elasticsearch.Config{URL: es.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	s, err := scout.New(scout.Config{Sources: []scout.Source{src}, Registry: staticRegistry(fleet)})
	if err != nil {
		t.Fatal(err)
	}
	q := s.Collect(t.Context()).Services["inventory"].Metrics[scout.QPS]
	if !q.Missing || !strings.Contains(q.Reason, "no such index") {
		t.Errorf("QPS = %s, want missing: no such index", q)
	}
}

type staticRegistry []registry.Service

func (r staticRegistry) Services() []registry.Service { return r }

func TestNewRejectsUnusableConfig(t *testing.T) {
	for name, cfg := range map[string]elasticsearch.Config{
		"no url":          {},
		"negative window": {URL: "http://127.0.0.1:9200", Window: -time.Second},
	} {
		if _, err := elasticsearch.New(cfg); !errors.Is(err, elasticsearch.ErrInvalidConfig) {
			t.Errorf("%s: err = %v, want ErrInvalidConfig", name, err)
		}
	}
}
