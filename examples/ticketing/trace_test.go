package ticketing

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/kplane/kplane/examples/ticketing/api"
	"github.com/kplane/kplane/examples/ticketing/instrument"
	"github.com/kplane/kplane/examples/ticketing/inventory"
	"github.com/kplane/kplane/internal/etcdtest"
	"github.com/kplane/kplane/ktrace/sdk/sdktest"
)

// A check-in at the gate is one trace across both services, through the
// registry: checkpoint's server span, its client span, inventory's server
// span for each call, with the trace ID on every access log line.
func TestCheckinIsOneTraceAcrossServices(t *testing.T) {
	collector := sdktest.NewCollector()
	defer collector.Close()
	etcd := etcdtest.Start(t)
	w := watch(t, etcd)
	eps := etcd.Endpoints()
	var invLog, cpLog syncBuffer
	inv := start(t, Config{Service: Inventory, Etcd: eps, DB: filepath.Join(t.TempDir(), "inventory.db"),
		KTrace: collector.URL, Version: "2.0.0", AccessLog: &invLog})
	waitInstances(t, w, Inventory, 1)
	cp := start(t, Config{Service: Checkpoint, Etcd: eps, KTrace: collector.URL, AccessLog: &cpLog})
	waitInstances(t, w, Checkpoint, 1)

	c := client(t)
	var order api.Order
	if s := call(t, c, "POST", "http://"+inv.addr+"/events/"+inventory.FlashSaleEventID+"/orders", `{"quantity":1,"buyer":"ann"}`, &order); s != 201 {
		t.Fatalf("buy: %d", s)
	}
	req, _ := http.NewRequestWithContext(t.Context(), "POST", "http://"+cp.addr+"/checkins", strings.NewReader(`{"code":"`+order.Tickets[0]+`"}`))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	traceID := resp.Header.Get(instrument.TraceIDHeader)
	if resp.StatusCode != 200 || len(traceID) != 32 {
		t.Fatalf("check in: %d, trace %q", resp.StatusCode, traceID)
	}
	// Stopping flushes each service's spans.
	if err := cp.stop(); err != nil {
		t.Fatal(err)
	}
	if err := inv.stop(); err != nil {
		t.Fatal(err)
	}

	var trace []sdktest.Span
	for _, s := range collector.Spans() {
		if s.TraceID() == traceID {
			trace = append(trace, s)
		}
	}
	byID := map[string]sdktest.Span{}
	for _, s := range trace {
		byID[s.SpanID()] = s
	}
	var root *sdktest.Span
	var clients, invServers int
	for _, s := range trace {
		switch {
		case s.Service == Checkpoint && s.GetKind() == tracepb.Span_SPAN_KIND_SERVER:
			root = &s
			if s.GetName() != "POST /checkins" || len(s.GetParentSpanId()) != 0 {
				t.Errorf("checkpoint server span %q with parent %s, want a root POST /checkins", s.GetName(), s.ParentSpanID())
			}
		case s.Service == Checkpoint && s.GetKind() == tracepb.Span_SPAN_KIND_CLIENT:
			clients++
			if p := byID[s.ParentSpanID()]; p.Service != Checkpoint || p.GetKind() != tracepb.Span_SPAN_KIND_SERVER {
				t.Errorf("client span %q has parent %q/%v, want checkpoint's server span", s.GetName(), p.Service, p.GetKind())
			}
		case s.Service == Inventory && s.GetKind() == tracepb.Span_SPAN_KIND_SERVER:
			invServers++
			if p := byID[s.ParentSpanID()]; p.Service != Checkpoint || p.GetKind() != tracepb.Span_SPAN_KIND_CLIENT {
				t.Errorf("inventory span %q has parent %q/%v, want checkpoint's client span", s.GetName(), p.Service, p.GetKind())
			}
			if !strings.HasPrefix(s.GetName(), "GET /tickets/") && !strings.HasPrefix(s.GetName(), "POST /tickets/") {
				t.Errorf("inventory span named %q, want a ticket route pattern", s.GetName())
			}
		default:
			t.Errorf("unexpected span %s %v %q", s.Service, s.GetKind(), s.GetName())
		}
	}
	// Checkpoint reads the ticket, then checks it in: two calls.
	if root == nil || clients != 2 || invServers != 2 {
		t.Fatalf("trace %s has root %v, %d client and %d inventory spans; want 1, 2, 2 (spans: %v)", traceID, root != nil, clients, invServers, collector.Spans())
	}

	// The same trace ID is on the access log lines of both services.
	for name, log := range map[string]*syncBuffer{Checkpoint: &cpLog, Inventory: &invLog} {
		n := 0
		for _, l := range log.lines() {
			var line instrument.AccessLine
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
			if line.TraceID == traceID {
				n++
			}
		}
		if want := map[string]int{Checkpoint: 1, Inventory: 2}[name]; n != want {
			t.Errorf("%s: %d access log lines with trace %s, want %d", name, n, traceID, want)
		}
	}
}
