package promtest_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/model"

	"github.com/kplane/kplane/internal/promtest"
)

// A target set after start is scraped, and Stop makes the API unreachable.
func TestScrapesTargetsAndStops(t *testing.T) {
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "promtest_answer"})
	g.Set(42)
	reg.MustRegister(g)
	exporter := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer exporter.Close()

	p := promtest.Start(t, promtest.Config{ScrapeInterval: 500 * time.Millisecond})
	p.SetTargets(t, exporter.Listener.Addr().String())
	client, err := api.NewClient(api.Config{Address: p.URL})
	if err != nil {
		t.Fatal(err)
	}
	prom := v1.NewAPI(client)
	deadline := time.Now().Add(15 * time.Second)
	for {
		v, _, _, err := prom.Query(t.Context(), "promtest_answer", time.Now())
		if vec, ok := v.(model.Vector); err == nil && ok && len(vec) == 1 && vec[0].Value == 42 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("promtest_answer not scraped within 15s (last: %v, %v)\n%s", v, err, p.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}

	p.Stop(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/-/ready", p.URL), nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("Prometheus still answers after Stop: %s", resp.Status)
	}
}
