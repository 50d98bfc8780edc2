package sdk

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// The collector is down in every benchmark: the request path must cost the
// same whatever the collector does. Figures are in docs/benchmarks.md.

func benchTracer(b *testing.B, endpoint string, sampler Sampler) *Tracer {
	b.Helper()
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{}}
	tr, err := New(Config{ServiceName: "bench", Endpoint: endpoint, Sampler: sampler, HTTPClient: client})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_ = tr.Shutdown(ctx)
		client.CloseIdleConnections()
	})
	return tr
}

func deadBenchEndpoint(b *testing.B) string {
	b.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	return url
}

func BenchmarkStartEnd(b *testing.B) {
	for _, bc := range []struct {
		name    string
		sampler Sampler
		export  bool
	}{
		{"sampled", AlwaysSample(), true},
		{"unsampled", NeverSample(), true},
		{"no-endpoint", AlwaysSample(), false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			endpoint := ""
			if bc.export {
				endpoint = deadBenchEndpoint(b)
			}
			tr := benchTracer(b, endpoint, bc.sampler)
			ctx := context.Background()
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					_, s := tr.Start(ctx, "op", WithKind(KindServer))
					s.SetTag("http.route", "GET /events/{id}")
					s.SetTag("http.response.status_code", 200)
					s.End()
				}
			})
		})
	}
}

func BenchmarkMiddleware(b *testing.B) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /events/{id}", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) })
	for _, bc := range []struct {
		name    string
		sampler Sampler // nil: no middleware at all
	}{
		{"none", nil},
		{"sampled", AlwaysSample()},
		{"unsampled", NeverSample()},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var h http.Handler = mux
			if bc.sampler != nil {
				h = Middleware(benchTracer(b, deadBenchEndpoint(b), bc.sampler), mux, HTTPOptions{})
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req := httptest.NewRequest("GET", "/events/flash-sale", nil)
				req.Header.Set("Traceparent", "00-"+tid128+"-"+sid+"-01")
				if bc.sampler != nil && bc.name == "unsampled" {
					req.Header.Del("Traceparent") // the local sampler decides
				}
				w := httptest.NewRecorder()
				for pb.Next() {
					w.Body.Reset()
					h.ServeHTTP(w, req)
				}
			})
		})
	}
}

func BenchmarkPropagation(b *testing.B) {
	h := http.Header{"Traceparent": {"00-" + tid128 + "-" + sid + "-01"}}
	b.Run("extract", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := Extract(h); !ok {
				b.Fatal("not extracted")
			}
		}
	})
	sc, _ := Extract(h)
	b.Run("inject", func(b *testing.B) {
		out := http.Header{}
		b.ReportAllocs()
		for b.Loop() {
			Inject(sc, out, 0)
		}
	})
}
