package sqlite

import (
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/kplane/kplane/ktrace"
)

func chunkFixture() []ktrace.Span {
	at := time.Date(2026, 11, 21, 10, 0, 0, 123456789, time.UTC)
	tid := ktrace.TraceID{0: 1, 15: 9}
	shared := map[string]string{"service.name": "checkpoint", "host.name": "gate-3"}
	return []ktrace.Span{
		{
			TraceID: tid, SpanID: ktrace.SpanID{7: 1}, Service: "checkpoint", Name: "POST /scan",
			Kind: ktrace.KindServer, Start: at, Duration: 42*time.Millisecond + 7,
			Tags:        map[string]string{"http.method": "POST", "": "empty key", "unicode": "äöü ✓", "long": string(make([]byte, 300))},
			Annotations: []ktrace.Annotation{{Time: at.Add(time.Millisecond), Value: "sr"}, {Time: at.Add(-time.Hour), Value: "cache miss", Tags: map[string]string{"key": "ticket:42"}}},
			Process:     shared,
		},
		{
			// A negative duration (a broken clock) survives too.
			TraceID: tid, SpanID: ktrace.SpanID{7: 2}, ParentSpanID: ktrace.SpanID{7: 1}, Service: "checkpoint", Name: "GET /stock",
			Kind: ktrace.KindClient, Start: at.Add(5 * time.Millisecond), Duration: -time.Millisecond,
			Status: ktrace.StatusError, StatusMessage: "stock exhausted",
			Tags:    map[string]string{"http.method": "GET"},
			Process: shared,
		},
		{
			// Equal contents, another map: stored once too.
			TraceID: tid, SpanID: ktrace.SpanID{7: 3}, ParentSpanID: ktrace.SpanID{7: 2}, Service: "inventory", Name: "",
			Start: at.Add(6 * time.Millisecond), Process: maps.Clone(shared),
		},
		{
			TraceID: tid, SpanID: ktrace.SpanID{7: 4}, ParentSpanID: ktrace.SpanID{7: 2}, Service: "inventory", Name: "reserve",
			Status: ktrace.StatusOK, Start: at.Add(7 * time.Millisecond), Process: map[string]string{"host.name": "node-2"},
		},
	}
}

func encodeFixture(spans []ktrace.Span) []byte {
	ptrs := make([]*ktrace.Span, len(spans))
	base := spans[0].Start.UnixNano()
	for i := range spans {
		ptrs[i] = &spans[i]
		base = min(base, spans[i].Start.UnixNano())
	}
	var e chunkEncoder
	// Encode something else first: the encoder's reused state must not
	// leak into the next chunk.
	e.encode(nil, ptrs[3:], spans[3].Start.UnixNano())
	return e.encode([]byte("prefix"), ptrs, base)[len("prefix"):]
}

func TestChunkRoundTrip(t *testing.T) {
	in := chunkFixture()
	b := encodeFixture(in)
	out, err := decodeChunk(nil, in[0].TraceID, b, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("decoded %d spans, want %d", len(out), len(in))
	}
	for i := range in {
		g, w := out[i], in[i]
		if g.TraceID != w.TraceID || g.SpanID != w.SpanID || g.ParentSpanID != w.ParentSpanID ||
			g.Service != w.Service || g.Name != w.Name || g.Kind != w.Kind || !g.Start.Equal(w.Start) ||
			g.Duration != w.Duration || g.Status != w.Status || g.StatusMessage != w.StatusMessage ||
			!maps.Equal(g.Tags, w.Tags) || !maps.Equal(g.Process, w.Process) || len(g.Annotations) != len(w.Annotations) {
			t.Fatalf("span %d: got %+v, want %+v", i, g, w)
		}
		for j := range w.Annotations {
			ga, wa := g.Annotations[j], w.Annotations[j]
			if !ga.Time.Equal(wa.Time) || ga.Value != wa.Value || !maps.Equal(ga.Tags, wa.Tags) {
				t.Fatalf("span %d event %d: got %+v, want %+v", i, j, ga, wa)
			}
		}
	}
	// Decoded maps are the caller's: spans sharing a process do not share
	// the map.
	out[0].Process["host.name"] = "changed"
	if out[1].Process["host.name"] != "gate-3" {
		t.Fatal("decoded spans share a process map")
	}

	nodes, err := decodeNodes(nil, b)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range nodes {
		if n.SpanID != in[i].SpanID || n.Parent != in[i].ParentSpanID || n.Service != in[i].Service ||
			n.Error != in[i].Error() || !n.Start.Equal(in[i].Start) {
			t.Fatalf("node %d = %+v, want span %+v", i, n, in[i])
		}
	}
}

func TestChunkCorrupt(t *testing.T) {
	good := encodeFixture(chunkFixture())
	tests := map[string][]byte{
		"empty":           nil,
		"unknown version": append([]byte{99}, good[1:]...),
		"trailing bytes":  append(good[:len(good):len(good)], 0),
		"huge count":      {chunkVersion, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := decodeChunk(nil, ktrace.TraceID{1}, b, true); !errors.Is(err, errCorrupt) {
				t.Fatalf("decodeChunk = %v, want errCorrupt", err)
			}
		})
	}
	// Every truncation and every single-byte change fails cleanly or
	// decodes: never a panic.
	for n := range good {
		if _, err := decodeChunk(nil, ktrace.TraceID{1}, good[:n], true); err == nil {
			t.Fatalf("truncated to %d of %d bytes: no error", n, len(good))
		}
		bad := append([]byte(nil), good...)
		bad[n] ^= 0xff
		decodeChunk(nil, ktrace.TraceID{1}, bad, true)
		decodeNodes(nil, bad)
	}
}
