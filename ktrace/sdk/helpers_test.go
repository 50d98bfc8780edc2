package sdk

import (
	"context"
	"encoding/hex"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/kplane/kplane/ktrace/sdk/sdktest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newCollector starts an OTLP collector closed at the end of the test.
func newCollector(t *testing.T) *sdktest.Collector {
	t.Helper()
	c := sdktest.NewCollector()
	t.Cleanup(c.Close)
	return c
}

// newTracer builds a tracer exporting to endpoint, shut down at the end of
// the test; its metrics are in the returned registry.
func newTracer(t *testing.T, cfg Config) (*Tracer, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	if cfg.ServiceName == "" {
		cfg.ServiceName = "test"
	}
	cfg.Registerer = reg
	if cfg.HTTPClient == nil {
		// Closing idle connections at the end keeps goleak quiet.
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
		cfg.HTTPClient = client
		t.Cleanup(client.CloseIdleConnections)
	}
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(t.Context()), 5*time.Second)
		defer cancel()
		_ = tr.Shutdown(ctx)
	})
	return tr, reg
}

// shutdown flushes tr, failing the test if it cannot.
func shutdown(t *testing.T, tr *Tracer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := tr.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

func counter(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			for i, l := range m.GetLabel() {
				if i*2+1 >= len(labels) || l.GetName() != labels[i*2] || l.GetValue() != labels[i*2+1] {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
