package sdk_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/kplane/kplane/ktrace/sdk"
	"github.com/kplane/kplane/ktrace/sdk/sdktest"
)

// A service traced end to end: server middleware on the mux, the client
// Transport on outgoing calls, and Shutdown to flush before exiting.
func Example() {
	collector := sdktest.NewCollector() // ktrace's address in real life
	defer collector.Close()

	tracer, err := sdk.New(sdk.Config{
		ServiceName: "checkpoint",
		Version:     "1.0.0",
		Env:         "dev",
		Endpoint:    collector.URL,
		Sampler:     sdk.RatioSampler(1), // keep every trace
	})
	if err != nil {
		panic(err)
	}

	inventory := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer inventory.Close()
	client := &http.Client{Transport: &sdk.Transport{Tracer: tracer, Base: inventory.Client().Transport}}

	mux := http.NewServeMux()
	mux.HandleFunc("POST /checkins", func(w http.ResponseWriter, r *http.Request) {
		// The trace ID to put on log lines.
		_ = sdk.SpanFromContext(r.Context()).TraceID()
		req, _ := http.NewRequestWithContext(r.Context(), "GET", inventory.URL+"/tickets/T1", nil)
		resp, err := client.Do(req)
		if err != nil {
			sdk.SpanFromContext(r.Context()).SetError(err)
			http.Error(w, "inventory unreachable", http.StatusBadGateway)
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	})
	srv := httptest.NewServer(sdk.Middleware(tracer, mux, sdk.HTTPOptions{}))
	defer srv.Close()

	resp, err := srv.Client().Post(srv.URL+"/checkins", "application/json", nil)
	if err != nil {
		panic(err)
	}
	resp.Body.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tracer.Shutdown(ctx); err != nil {
		panic(err)
	}
	for _, s := range collector.Spans() {
		fmt.Println(s.Service, s.GetKind(), s.Attr("url.path").GetStringValue())
	}
	// Output:
	// checkpoint SPAN_KIND_CLIENT /tickets/T1
	// checkpoint SPAN_KIND_SERVER /checkins
}
