package otlp

import (
	"os"
	"testing"
)

// The fuzz targets check that no input makes a decoder panic and that a
// decoded batch only holds storable spans. Seeds are in
// testdata/fuzz/<target>; run one with
//
//	go test ./ktrace/otlp -run '^$' -fuzz FuzzDecodeProto -fuzztime 30s

func FuzzDecodeProto(f *testing.F) {
	req := readRequest(f)
	seed, err := req.MarshalProto()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		checkStorable(t, data, Protobuf)
	})
}

func FuzzDecodeJSON(f *testing.F) {
	seed, err := os.ReadFile("testdata/request.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkStorable(t, data, JSON)
	})
}

func checkStorable(t *testing.T, data []byte, enc Encoding) {
	b, err := Decode(data, enc)
	if err != nil {
		return
	}
	for _, s := range b.Spans {
		if s.TraceID.IsZero() || s.SpanID.IsZero() || s.Start.IsZero() || s.Duration < 0 || s.Service == "" {
			t.Fatalf("decoded an unstorable span: %+v", s)
		}
		if s.SpanID == s.ParentSpanID {
			t.Fatalf("span %s is its own parent", s.SpanID)
		}
	}
	if _, err := EncodeResponse(enc, b); err != nil {
		t.Fatalf("encode response: %v", err)
	}
}
