package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// traceAPIBody is what GET /api/v1/traces/{id} answers (docs/api.md) for
// a checkpoint request calling inventory, whose clock runs behind.
const traceAPIBody = `{"traceID":"4bf92f3577b34da6a3ce929d0e0e4736","status":"found","spans":[
{"spanID":"0000000000000003","parentSpanID":"0000000000000002","service":"inventory","name":"GET /tickets","kind":"server","start":"2026-03-01T11:59:59.98Z","durationMicros":80000,"tags":{},"annotations":[],"status":"unset","error":false,"process":{}},
{"spanID":"0000000000000001","parentSpanID":"","service":"checkpoint","name":"GET /validate","kind":"server","start":"2026-03-01T12:00:00Z","durationMicros":120000,"tags":{},"annotations":[],"status":"error","error":true,"statusMessage":"inventory failed","process":{}},
{"spanID":"0000000000000002","parentSpanID":"0000000000000001","service":"checkpoint","name":"GET inventory","kind":"client","start":"2026-03-01T12:00:00.01Z","durationMicros":100000,"tags":{},"annotations":[],"status":"unset","error":false,"process":{}},
{"spanID":"0000000000000004","parentSpanID":"0000000000000001","service":"checkpoint","name":"audit","kind":"internal","start":"2026-03-01T12:00:00.001Z","durationMicros":2000,"tags":{},"annotations":[],"status":"unset","error":false,"process":{}}
]}`

func runTraceGet(t *testing.T, answer string, args ...string) (string, error) {
	t.Helper()
	var gotAuth, gotPath string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth, gotPath = r.Header.Get("Authorization"), r.URL.Path
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(answer))
	}))
	t.Cleanup(srv.Close)
	cmd := newRootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(append([]string{"trace", "get", "--addr", srv.URL, "--token", "tok"}, args...))
	err := cmd.ExecuteContext(t.Context())
	if gotAuth != "Bearer tok" || !strings.HasPrefix(gotPath, "/api/v1/traces/") {
		t.Errorf("request to %q with Authorization %q", gotPath, gotAuth)
	}
	return out.String(), err
}

func TestTraceGetPrintsTree(t *testing.T) {
	out, err := runTraceGet(t, traceAPIBody, "4bf92f3577b34da6a3ce929d0e0e4736", "--bar-width", "10")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	want := []string{
		"Trace 4bf92f3577b34da6a3ce929d0e0e4736  120ms  4 spans  checkpoint, inventory  1 failed",
		"checkpoint GET /validate     !*         +0     120ms  |██████████|  inventory failed",
		"├─ checkpoint audit          *     +1.00ms    2.00ms  |█         |",
		"└─ checkpoint GET inventory  *     +10.0ms     100ms  |█████████ |",
		"   └─ inventory GET /tickets *~    +20.0ms    80.0ms  | ███████  |",
	}
	if len(lines) != len(want) {
		t.Fatalf("output:\n%s\nwant %d lines", out, len(want))
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d\n got %q\nwant %q", i, lines[i], want[i])
		}
	}
}

func TestTraceGetJSONAndMissing(t *testing.T) {
	out, err := runTraceGet(t, traceAPIBody, "4bf92f3577b34da6a3ce929d0e0e4736", "--json")
	if err != nil || !strings.Contains(out, `"traceID": "4bf92f3577b34da6a3ce929d0e0e4736"`) || !strings.Contains(out, `"durationMicros": 80000`) {
		t.Errorf("--json: %v\n%s", err, out)
	}
	for status, want := range map[string]string{
		"unknown": "is unknown: no span of it reached kplane",
		"expired": "has expired: kplane had it, and retention removed its spans",
	} {
		_, err := runTraceGet(t, `{"traceID":"0123456789abcdef0123456789abcdef","status":"`+status+`","spans":[]}`, "0123456789abcdef0123456789abcdef")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s trace: error %v, want one saying %q", status, err, want)
		}
	}
}
