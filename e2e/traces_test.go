package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/kplane/kplane/internal/browsertest"
)

// TestTraceEndToEnd is KTrace as a user meets it, against the real binary:
// an unmodified OpenTelemetry SDK pointed at `kplane dev` by the standard
// environment variable alone sends a trace (one batch gzipped); the API
// returns exactly those spans with their tree; an engineer pastes the ID,
// as copied from a log line, into the console's trace box and reads the
// waterfall, the failed span in red; the demo's own check-in is one trace
// across checkpoint and inventory, in the API and in `kplane trace get`;
// and an ID kplane never saw is told apart as unknown.
func TestTraceEndToEnd(t *testing.T) {
	p := startDev(t, t.TempDir())

	sent := sendCheckoutTrace(t, p.url)
	traceID := sent.traceID

	// The API: found, exactly the spans sent, each under its parent. The
	// exporter's Shutdown returned after kplane acknowledged the batches,
	// and an acknowledged span is stored: no waiting.
	got := traceLookup(t, p, traceID)
	if got.Status != "found" || got.TraceID != traceID {
		t.Fatalf("GET /api/v1/traces/%s: status %q, trace %q; want found", traceID, got.Status, got.TraceID)
	}
	if len(got.Spans) != len(sent.spans) {
		t.Fatalf("API returned %d spans, want the %d sent: %+v", len(got.Spans), len(sent.spans), got.Spans)
	}
	byID := map[string]traceAPISpan{}
	for _, s := range got.Spans {
		byID[s.SpanID] = s
	}
	for _, want := range sent.spans {
		s, ok := byID[want.id]
		if !ok {
			t.Errorf("span %s (%s) missing from the API's answer", want.id, want.name)
			continue
		}
		if s.ParentSpanID != want.parent || s.Service != want.service || s.Name != want.name || s.Kind != want.kind || s.Error != want.err {
			t.Errorf("span %s = parent %q service %q name %q kind %q error %v; want parent %q service %q name %q kind %q error %v",
				want.id, s.ParentSpanID, s.Service, s.Name, s.Kind, s.Error, want.parent, want.service, want.name, want.kind, want.err)
		}
		for k, v := range want.tags {
			if s.Tags[k] != v {
				t.Errorf("span %s (%s): tag %s = %q, want %q", want.id, want.name, k, s.Tags[k], v)
			}
		}
		for _, ev := range want.events {
			if !slices.ContainsFunc(s.Annotations, func(a traceAPIAnnotation) bool { return a.Value == ev }) {
				t.Errorf("span %s (%s): no annotation %q in %+v", want.id, want.name, ev, s.Annotations)
			}
		}
		if want.message != "" && s.StatusMessage != want.message {
			t.Errorf("span %s (%s): status message %q, want %q", want.id, want.name, s.StatusMessage, want.message)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// The console: sign in with the dev token, paste the ID from a log
	// line into the box on the services page.
	ctx := browsertest.New(t)
	err := chromedp.Run(ctx,
		chromedp.Navigate(p.url),
		chromedp.WaitVisible("#token", chromedp.ByID),
		chromedp.SendKeys("#token", p.token, chromedp.ByID),
		chromedp.Click("#token-form button", chromedp.ByQuery),
		chromedp.WaitVisible(`[data-service="checkpoint"]`, chromedp.ByQuery),
		chromedp.WaitVisible("#trace-id-box", chromedp.ByID),
		chromedp.SendKeys("#trace-id-box", "trace_id="+traceID+"\n", chromedp.ByID),
		chromedp.WaitVisible(`#waterfall[data-ready="true"]`, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("signing in and pasting the trace ID into the box on the services page: %v", err)
	}
	var shownID, spanCount string
	var rows int
	var errRows []string
	err = chromedp.Run(ctx,
		chromedp.Text(`[data-testid="trace-id"]`, &shownID, chromedp.ByQuery),
		chromedp.Text(`[data-testid="span-count"]`, &spanCount, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelectorAll(".wf-row:not([hidden])").length`, &rows),
		chromedp.Evaluate(`Array.from(document.querySelectorAll(".wf-row.is-err:not([hidden])")).filter(r => r.querySelector(".wf-bar.err")).map(r => r.dataset.span)`, &errRows),
	)
	if err != nil {
		t.Fatal(err)
	}
	browsertest.Screenshot(t, ctx, "e2e-trace-waterfall.png")
	if shownID != traceID || rows != len(sent.spans) || spanCount != fmt.Sprint(len(sent.spans)) {
		t.Errorf("waterfall of %q shows %d rows (span count %q), want %s with %d", shownID, rows, spanCount, traceID, len(sent.spans))
	}
	if want := []string{sent.failed}; !slices.Equal(errRows, want) {
		t.Errorf("rows marked as errors: %v, want only the failed span %v", errRows, want)
	}

	// An ID kplane never received: the API and the page both say unknown.
	const unknownID = "0123456789abcdef0123456789abcdef"
	if tr := traceLookup(t, p, unknownID); tr.Status != "unknown" || len(tr.Spans) != 0 {
		t.Errorf("GET /api/v1/traces/%s: status %q with %d spans, want unknown and none", unknownID, tr.Status, len(tr.Spans))
	}
	var state string
	err = chromedp.Run(ctx,
		chromedp.SetValue("#trace-id-box", unknownID, chromedp.ByID),
		chromedp.Submit("#trace-id-box", chromedp.ByID),
		chromedp.WaitVisible(`.trace-state[data-state="unknown"]`, chromedp.ByQuery),
		chromedp.AttributeValue(".trace-state", "data-state", &state, nil, chromedp.ByQuery),
	)
	if err != nil || state != "unknown" {
		t.Errorf("pasting an ID kplane never received: state %q (%v), want the unknown page", state, err)
	}

	// The demo traces itself: a check-in at a checkpoint instance is one
	// trace across checkpoint and inventory, found by the ID the response
	// carries.
	demoID := demoCheckin(t, p)
	var demo traceAPI
	deadline := time.Now().Add(10 * time.Second)
	for {
		demo = traceLookup(t, p, demoID)
		if demo.Status == "found" && checkinComplete(demo) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("check-in trace %s after 10 s: status %q, spans %s; want checkpoint's server span, its 2 calls and inventory's 2 server spans",
				demoID, demo.Status, spanList(demo))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("check-in trace %s: %s", demoID, spanList(demo))
	// One tree: one root, every other span under a span of the trace.
	demoIDs := map[string]bool{}
	for _, s := range demo.Spans {
		demoIDs[s.SpanID] = true
	}
	roots := 0
	for _, s := range demo.Spans {
		switch {
		case s.ParentSpanID == "":
			roots++
		case !demoIDs[s.ParentSpanID]:
			t.Errorf("span %s %s has parent %s, which is not in the trace", s.Service, s.Name, s.ParentSpanID)
		}
	}
	if roots != 1 {
		t.Errorf("check-in trace has %d roots, want 1: %s", roots, spanList(demo))
	}

	// The CLI prints the same trace with both services.
	out, err := exec.Command(kplaneBin, "trace", "get", demoID, "--addr", p.url, "--token", p.token).CombinedOutput()
	if err != nil {
		t.Fatalf("kplane trace get %s: %v\n%s", demoID, err, out)
	}
	for _, want := range []string{demoID, "checkpoint", "inventory", "POST /checkins"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("kplane trace get lacks %q:\n%s", want, out)
		}
	}
	t.Logf("kplane trace get %s:\n%s", demoID, out)

	// And the console shows it with both services.
	var services string
	err = chromedp.Run(ctx,
		chromedp.SetValue("#trace-id-box", demoID, chromedp.ByID),
		chromedp.Submit("#trace-id-box", chromedp.ByID),
		chromedp.WaitVisible(`#waterfall[data-ready="true"]`, chromedp.ByQuery),
		chromedp.Text(".trace-stats", &services, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelectorAll(".wf-row:not([hidden])").length`, &rows),
	)
	if err != nil {
		t.Fatalf("opening the check-in trace in the console: %v", err)
	}
	browsertest.Screenshot(t, ctx, "e2e-trace-checkin.png")
	if !strings.Contains(services, "checkpoint") || !strings.Contains(services, "inventory") || rows != len(demo.Spans) {
		t.Errorf("check-in trace page: %d rows, stats %q; want %d rows across checkpoint and inventory", rows, services, len(demo.Spans))
	}
}

// sentSpan is what the test sent, in the API's terms.
type sentSpan struct {
	id, parent, service, name, kind string
	err                             bool
	message                         string
	tags                            map[string]string
	events                          []string
}

type sentTrace struct {
	traceID string
	spans   []sentSpan
	failed  string // the span ID of the one failed span
}

// sendCheckoutTrace sends one trace with the unmodified OpenTelemetry Go
// SDK, configured only by OTEL_EXPORTER_OTLP_ENDPOINT:
//
//	shop      GET /checkout        server
//	shop      ├ load cart          internal (attributes)
//	shop      │ └ SELECT carts     client
//	shop      └ POST /charge       client
//	payments    └ POST /charge     server, failed, with events (gzip batch)
//
// The payments service exports through its own provider with gzip, so the
// trace reaches kplane in two batches, one compressed.
func sendCheckoutTrace(t *testing.T, kplaneURL string) sentTrace {
	t.Helper()
	// Only the standard variable points the SDK at kplane; clear the ones
	// that would override it or the resource from the environment.
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", kplaneURL)
	for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_INSECURE", "OTEL_EXPORTER_OTLP_TRACES_INSECURE",
		"OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"} {
		t.Setenv(k, "")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	provider := func(service string, opts ...otlptracehttp.Option) *sdktrace.TracerProvider {
		exp, err := otlptracehttp.New(ctx, opts...)
		if err != nil {
			t.Fatalf("otlptracehttp.New: %v", err)
		}
		return sdktrace.NewTracerProvider(
			sdktrace.WithBatcher(exp),
			sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", service), attribute.String("host.name", service+"-1"))),
		)
	}
	shopTP := provider("shop")
	payTP := provider("payments", otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
	shop, pay := shopTP.Tracer("e2e/shop"), payTP.Tracer("e2e/payments")

	id := func(s trace.Span) string { return s.SpanContext().SpanID().String() }
	var spans []sentSpan

	rootCtx, root := shop.Start(ctx, "GET /checkout", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", "GET"), attribute.String("url.path", "/checkout")))
	cartCtx, cart := shop.Start(rootCtx, "load cart", trace.WithAttributes(attribute.Int("cart.items", 3), attribute.String("user.id", "u-42")))
	_, sel := shop.Start(cartCtx, "SELECT carts", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("db.system", "sqlite")))
	time.Sleep(2 * time.Millisecond)
	sel.End()
	cart.AddEvent("cart loaded", trace.WithAttributes(attribute.Int("items", 3)))
	cart.End()
	chargeCtx, charge := shop.Start(rootCtx, "POST /charge", trace.WithSpanKind(trace.SpanKindClient))
	_, server := pay.Start(chargeCtx, "POST /charge", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("payment.method", "card")))
	server.AddEvent("card declined", trace.WithAttributes(attribute.String("reason", "insufficient funds")))
	server.SetStatus(codes.Error, "card declined")
	time.Sleep(3 * time.Millisecond)
	server.End()
	charge.End()
	root.End()

	traceID := root.SpanContext().TraceID().String()
	spans = append(spans,
		sentSpan{id: id(root), service: "shop", name: "GET /checkout", kind: "server", tags: map[string]string{"url.path": "/checkout"}},
		sentSpan{id: id(cart), parent: id(root), service: "shop", name: "load cart", kind: "internal",
			tags: map[string]string{"cart.items": "3", "user.id": "u-42"}, events: []string{"cart loaded"}},
		sentSpan{id: id(sel), parent: id(cart), service: "shop", name: "SELECT carts", kind: "client", tags: map[string]string{"db.system": "sqlite"}},
		sentSpan{id: id(charge), parent: id(root), service: "shop", name: "POST /charge", kind: "client"},
		sentSpan{id: id(server), parent: id(charge), service: "payments", name: "POST /charge", kind: "server", err: true, message: "card declined",
			tags: map[string]string{"payment.method": "card"}, events: []string{"card declined"}},
	)
	for _, tp := range []*sdktrace.TracerProvider{payTP, shopTP} {
		if err := tp.ForceFlush(ctx); err != nil {
			t.Fatalf("force flush: %v", err)
		}
		if err := tp.Shutdown(ctx); err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	}
	return sentTrace{traceID: traceID, spans: spans, failed: id(server)}
}

type traceAPI struct {
	TraceID string         `json:"traceID"`
	Status  string         `json:"status"`
	Spans   []traceAPISpan `json:"spans"`
}

type traceAPISpan struct {
	SpanID        string               `json:"spanID"`
	ParentSpanID  string               `json:"parentSpanID"`
	Service       string               `json:"service"`
	Name          string               `json:"name"`
	Kind          string               `json:"kind"`
	Tags          map[string]string    `json:"tags"`
	Annotations   []traceAPIAnnotation `json:"annotations"`
	Error         bool                 `json:"error"`
	StatusMessage string               `json:"statusMessage"`
}

type traceAPIAnnotation struct {
	Value string `json:"value"`
}

func traceLookup(t *testing.T, p *devProcess, id string) traceAPI {
	t.Helper()
	code, b := p.get(t, "/api/v1/traces/"+id, true)
	if code != http.StatusOK {
		t.Fatalf("GET /api/v1/traces/%s: %d %s", id, code, b)
	}
	var tr traceAPI
	if err := json.Unmarshal(b, &tr); err != nil {
		t.Fatalf("trace JSON: %v: %s", err, b)
	}
	return tr
}

// checkinComplete: checkpoint's server span, its two calls (read the
// ticket, check it in) and inventory's server span for each.
func checkinComplete(tr traceAPI) bool {
	n := map[string]int{}
	for _, s := range tr.Spans {
		n[s.Service+" "+s.Kind]++
	}
	return n["checkpoint server"] == 1 && n["checkpoint client"] == 2 && n["inventory server"] == 2
}

func spanList(tr traceAPI) string {
	var l []string
	for _, s := range tr.Spans {
		l = append(l, s.Service+"/"+s.Kind+" "+s.Name)
	}
	sort.Strings(l)
	return "[" + strings.Join(l, ", ") + "]"
}

// demoCheckin buys a ticket from an inventory instance of the demo's env
// (dev), checks it in at a checkpoint instance of it and returns the
// check-in's X-Trace-Id. kplane dev also runs the services in HAWAII's
// environments, whose checkpoints call only their own env's inventory
// (and an alpha env may be torn down at any moment).
func demoCheckin(t *testing.T, p *devProcess) string {
	t.Helper()
	addrs := map[string]string{}
	deadline := time.Now().Add(10 * time.Second)
	for addrs["inventory"] == "" || addrs["checkpoint"] == "" {
		if time.Now().After(deadline) {
			t.Fatalf("no inventory and checkpoint instances registered after 10 s: %v", addrs)
		}
		code, b := p.get(t, "/api/v1/services", true)
		var body servicesBody
		if code == http.StatusOK && json.Unmarshal(b, &body) == nil {
			for _, s := range body.Services {
				for _, in := range s.Instances {
					if in.Env == "dev" && in.Addr != "" {
						addrs[s.Name] = in.Addr
						break
					}
				}
			}
		}
		if addrs["inventory"] == "" || addrs["checkpoint"] == "" {
			time.Sleep(200 * time.Millisecond)
		}
	}
	c := &http.Client{Timeout: 10 * time.Second}
	post := func(url, body string) (*http.Response, []byte) {
		resp, err := c.Post(url, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatalf("POST %s: %v", url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, b := post("http://"+addrs["inventory"]+"/events/flash-sale/orders", `{"quantity":1,"buyer":"e2e"}`)
	var order struct {
		Tickets []string `json:"tickets"`
	}
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(b, &order) != nil || len(order.Tickets) != 1 {
		t.Fatalf("buying a ticket from inventory at %s: %d %s", addrs["inventory"], resp.StatusCode, b)
	}
	resp, b = post("http://"+addrs["checkpoint"]+"/checkins", `{"code":"`+order.Tickets[0]+`"}`)
	id := resp.Header.Get("X-Trace-Id")
	if resp.StatusCode != http.StatusOK || len(id) != 32 {
		t.Fatalf("checking in %s at checkpoint %s: %d, X-Trace-Id %q: %s", order.Tickets[0], addrs["checkpoint"], resp.StatusCode, id, b)
	}
	return id
}
