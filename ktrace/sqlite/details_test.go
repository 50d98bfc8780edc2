package sqlite

import (
	"errors"
	"maps"
	"testing"
	"time"

	"github.com/kplane/kplane/ktrace"
)

func TestDetailsRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 21, 10, 0, 0, 123456789, time.UTC)
	in := ktrace.Span{
		Kind: ktrace.KindClient, Status: ktrace.StatusError, StatusMessage: "boom",
		Tags:        map[string]string{"a": "1", "": "empty key", "long": string(make([]byte, 300))},
		Annotations: []ktrace.Annotation{{Time: at, Value: "cs"}, {Time: at.Add(-time.Hour), Value: "x", Tags: map[string]string{"k": "v"}}},
		Process:     map[string]string{"host": "h"},
	}
	var out ktrace.Span
	if err := DecodeDetails(AppendDetails(nil, &in), &out); err != nil {
		t.Fatal(err)
	}
	if out.Kind != in.Kind || out.Status != in.Status || out.StatusMessage != in.StatusMessage ||
		!maps.Equal(out.Tags, in.Tags) || !maps.Equal(out.Process, in.Process) || len(out.Annotations) != 2 ||
		!out.Annotations[0].Time.Equal(at) || out.Annotations[1].Tags["k"] != "v" {
		t.Fatalf("round trip: got %+v, want %+v", out, in)
	}
}

func TestDetailsCorrupt(t *testing.T) {
	good := AppendDetails(nil, &ktrace.Span{Tags: map[string]string{"key": "value"}})
	tests := map[string][]byte{
		"empty":           nil,
		"unknown version": append([]byte{99}, good[1:]...),
		"truncated":       good[:len(good)-3],
		"trailing bytes":  append(good, 0),
		"huge count":      {detailsVersion, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			var s ktrace.Span
			if err := DecodeDetails(b, &s); !errors.Is(err, errCorrupt) {
				t.Fatalf("DecodeDetails = %v, want errCorrupt", err)
			}
		})
	}
}
