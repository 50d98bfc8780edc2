package web

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/kplane/kplane/internal/browsertest"
	"github.com/kplane/kplane/ktrace"
)

func awaitPromise(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }

// bigTrace is a 10,000-span trace: a root fanning out to 99 calls across
// four services, each with 100 spans below it, some failing.
func bigTrace(t *testing.T) (ktrace.TraceID, []ktrace.Span) {
	id := mustTraceID(t, "b16b16b16b16b16b16b16b16b16b16b1")
	svcs := []string{"gateway", "checkpoint", "inventory", "payments"}
	spans := []ktrace.Span{{TraceID: id, SpanID: ktrace.SpanID{1}, Service: "gateway", Name: "POST /sale/open",
		Kind: ktrace.KindServer, Start: traceBase, Duration: 5 * time.Second}}
	n := uint16(2)
	next := func() ktrace.SpanID {
		n++
		return ktrace.SpanID{2, byte(n >> 8), byte(n)}
	}
	for c := range 99 {
		call := ktrace.Span{TraceID: id, SpanID: next(), ParentSpanID: spans[0].SpanID, Service: svcs[c%4],
			Name: fmt.Sprintf("call-%02d", c), Kind: ktrace.KindInternal,
			Start: traceBase.Add(time.Duration(c) * 45 * time.Millisecond), Duration: 400 * time.Millisecond}
		spans = append(spans, call)
		for k := range 100 {
			s := ktrace.Span{TraceID: id, SpanID: next(), ParentSpanID: call.SpanID, Service: svcs[(c+k)%4],
				Name: fmt.Sprintf("op-%02d-%03d", c, k), Kind: ktrace.KindInternal,
				Start: call.Start.Add(time.Duration(k) * 3 * time.Millisecond), Duration: 90 * time.Millisecond,
				Tags: map[string]string{"k": fmt.Sprint(k)}}
			if k%37 == 0 {
				s.Status = ktrace.StatusError
			}
			spans = append(spans, s)
		}
	}
	return id, spans
}

// TestBrowserTraceWaterfall is the main use of KTrace: paste a trace ID
// from a log line into the box, read the waterfall, fold a subtree, look
// at one span; and a 10,000-span trace still renders and scrolls.
func TestBrowserTraceWaterfall(t *testing.T) {
	e, store := traceEnv(t)
	bigID, big := bigTrace(t)
	if len(big) != 10000 {
		t.Fatalf("big trace has %d spans", len(big))
	}
	if err := store.WriteSpans(t.Context(), big); err != nil {
		t.Fatal(err)
	}
	token, err := e.auth.EnsureAdmin(t.Context(), "admin", "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := browsertest.New(t)
	err = chromedp.Run(ctx,
		chromedp.Navigate(e.ts.URL+"/services"),
		chromedp.WaitVisible("#token", chromedp.ByID),
		chromedp.SendKeys("#token", token, chromedp.ByID),
		chromedp.Click("#token-form button", chromedp.ByQuery),
		chromedp.WaitVisible("#trace-id-box", chromedp.ByID),
		// As copied from a log line, prefix and all.
		chromedp.SendKeys("#trace-id-box", "trace_id="+checkoutTrace+"\n", chromedp.ByID),
		chromedp.WaitVisible(`#waterfall[data-ready="true"]`, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatal(err)
	}
	var rows int
	var id string
	err = chromedp.Run(ctx,
		chromedp.Text(`[data-testid="trace-id"]`, &id, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelectorAll(".wf-row:not([hidden])").length`, &rows),
	)
	if err != nil {
		t.Fatal(err)
	}
	if id != checkoutTrace || rows != 4 {
		t.Fatalf("waterfall of %q shows %d rows, want %s with 4", id, rows, checkoutTrace)
	}
	browsertest.Screenshot(t, ctx, "trace-waterfall.png")

	// Fold the client call: its server span and the query below it go.
	var rowNames, detail string
	err = chromedp.Run(ctx,
		chromedp.Click(`.wf-row[data-span="0000000000000002"] .wf-toggle`, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelectorAll(".wf-row:not([hidden])").length`, &rows),
		chromedp.Evaluate(`Array.from(document.querySelectorAll(".wf-row:not([hidden]) .wf-op")).map(e => e.textContent).join("|")`, &rowNames),
	)
	if err != nil {
		t.Fatal(err)
	}
	if rows != 2 || rowNames != "GET /validate|GET inventory" {
		t.Fatalf("after folding GET inventory: %d rows %q, want the root and the folded call", rows, rowNames)
	}
	// Unfold, open the adjusted server span's details.
	err = chromedp.Run(ctx,
		chromedp.Click(`.wf-row[data-span="0000000000000002"] .wf-toggle`, chromedp.ByQuery),
		chromedp.Click(`.wf-row[data-span="0000000000000003"] .wf-op`, chromedp.ByQuery),
		chromedp.WaitVisible("#wf-detail", chromedp.ByID),
		chromedp.Text("#wf-detail", &detail, chromedp.ByID),
		chromedp.Evaluate(`document.querySelectorAll(".wf-row:not([hidden])").length`, &rows),
	)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"inventory", "GET /tickets/{id}", "sr · Server Receive", "ss · Server Send", "Shifted +40.0ms", "node-2", "critical path"} {
		if !strings.Contains(detail, want) {
			t.Errorf("span details lack %q:\n%s", want, detail)
		}
	}
	if rows != 4 {
		t.Errorf("after unfolding: %d rows, want 4", rows)
	}
	browsertest.Screenshot(t, ctx, "trace-detail.png")

	// The search page: the scatter plot's points lead to their trace.
	err = chromedp.Run(ctx,
		chromedp.Navigate(e.ts.URL+"/traces?lookback=24h"),
		chromedp.WaitVisible(`.scatter a[data-trace="`+checkoutTrace+`"]`, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatal(err)
	}
	browsertest.Screenshot(t, ctx, "trace-search.png")
	err = chromedp.Run(ctx,
		chromedp.Click(`.scatter a[data-trace="`+checkoutTrace+`"] circle`, chromedp.ByQuery),
		chromedp.WaitVisible(`#waterfall[data-ready="true"]`, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("clicking a point of the scatter plot: %v", err)
	}

	// 10,000 spans: the page renders, only a window of rows is in the
	// DOM, and scrolling reaches the last span.
	start := time.Now()
	err = chromedp.Run(ctx,
		chromedp.Navigate(e.ts.URL+"/traces/"+bigID.String()),
		chromedp.WaitVisible(`#waterfall[data-ready="true"]`, chromedp.ByQuery),
	)
	if err != nil {
		t.Fatal(err)
	}
	loaded := time.Since(start)
	var timing map[string]float64
	var domRows int
	err = chromedp.Run(ctx,
		chromedp.Evaluate(`Object.assign({readyAtMs: performance.now()}, window.kplaneWaterfall.timing)`, &timing),
		chromedp.Evaluate(`document.querySelectorAll(".wf-row").length`, &domRows),
	)
	if err != nil {
		t.Fatal(err)
	}
	var scrollMs float64
	var lastName string
	err = chromedp.Run(ctx,
		chromedp.Evaluate(`new Promise(function (done) {
			var s = document.getElementById("wf-scroll"), t = performance.now();
			s.scrollTop = s.scrollHeight;
			requestAnimationFrame(function () { requestAnimationFrame(function () { done(performance.now() - t); }); });
		})`, &scrollMs, awaitPromise),
		chromedp.Evaluate(`Array.from(document.querySelectorAll(".wf-row:not([hidden]) .wf-op")).map(e => e.textContent).sort().pop()`, &lastName),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("10,000-span trace: page load to ready %v (navigation start to ready %.0f ms; JSON parse %.0f ms, build %.0f ms, first frame %.0f ms after the script started); scroll to the end and paint %.1f ms; %d rows in the DOM",
		loaded, timing["readyAtMs"], timing["parseMs"], timing["buildMs"], timing["firstFrameMs"], scrollMs, domRows)
	if domRows > 200 {
		t.Errorf("%d rows in the DOM for a 10,000-span trace: rows are not windowed", domRows)
	}
	if lastName != "op-98-099" {
		t.Errorf("scrolled to the end, the last row shown is %q, want op-98-099", lastName)
	}
	var spanCount string
	if err := chromedp.Run(ctx, chromedp.Text(`[data-testid="span-count"]`, &spanCount, chromedp.ByQuery)); err != nil {
		t.Fatal(err)
	}
	if spanCount != "10000" {
		t.Errorf("span count %q, want 10000", spanCount)
	}
	browsertest.Screenshot(t, ctx, "trace-10k.png")

	// The states a pasted ID can end in are told apart.
	for id, want := range map[string]string{
		"0123456789abcdef0123456789abcdef": "unknown",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa": "expired",
		"not-a-trace":                      "invalid",
	} {
		var state string
		err := chromedp.Run(ctx,
			chromedp.SetValue("#trace-id-box", id, chromedp.ByID),
			chromedp.Submit("#trace-id-box", chromedp.ByID),
			chromedp.WaitVisible(`.trace-state[data-state="`+want+`"]`, chromedp.ByQuery),
			chromedp.AttributeValue(".trace-state", "data-state", &state, nil, chromedp.ByQuery),
		)
		if err != nil || state != want {
			t.Errorf("pasting %s: state %q (%v), want %s", id, state, err, want)
		}
		browsertest.Screenshot(t, ctx, "trace-"+want+".png")
	}
}
