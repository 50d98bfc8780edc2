package web

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/kplane/kplane/hawaii"
)

// FuzzDecodeReport checks the build report decoder: no input panics it,
// every refusal is one web answers with 400 (hawaii.ErrInvalid naming the
// fields, or errMalformed), and every build it accepts validates, fits the
// SQL store (times as int64 nanoseconds since 1970) and decodes to itself
// when sent again as the API returns it. Seeds are in
// testdata/fuzz/FuzzDecodeReport; run with
//
//	go test ./web -run '^$' -fuzz '^FuzzDecodeReport$' -fuzztime 60s
func FuzzDecodeReport(f *testing.F) {
	f.Add([]byte(`{"service":"inventory","version":"1.4.0","image":"kplane/inventory:1.4.0","scmRevision":"9c1d2e3","committer":"dana","timestamp":"2025-03-01T10:00:00Z","guid":"jenkins-inventory-57"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := decodeReport(body)
		if err != nil {
			if !errors.Is(err, hawaii.ErrInvalid) && !errors.Is(err, errMalformed) {
				t.Fatalf("refusal is not a 400: %v", err)
			}
			var fe *hawaii.FieldsError
			if errors.As(err, &fe) && len(fe.Fields) == 0 {
				t.Fatalf("invalid report names no field: %v", err)
			}
			return
		}
		if err := b.Validate(); err != nil {
			t.Fatalf("accepted a build that does not validate: %v", err)
		}
		if n := b.Timestamp.UnixNano(); n <= 0 || !time.Unix(0, n).Equal(b.Timestamp) {
			t.Fatalf("timestamp %v does not survive the SQL store (nanoseconds %d)", b.Timestamp, n)
		}
		again, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("marshal accepted build: %v", err)
		}
		b2, err := decodeReport(again)
		if err != nil {
			t.Fatalf("the accepted build, sent again, is refused: %v\n%s", err, again)
		}
		if !sameBuild(b, b2) {
			t.Fatalf("build changed on a second decode:\n%+v\n%+v", b, b2)
		}
	})
}

func sameBuild(a, b hawaii.Build) bool {
	if !a.Timestamp.Equal(b.Timestamp) || len(a.Changelog) != len(b.Changelog) {
		return false
	}
	for i := range a.Changelog {
		x, y := a.Changelog[i], b.Changelog[i]
		if !x.Time.Equal(y.Time) {
			return false
		}
		x.Time, y.Time = time.Time{}, time.Time{}
		if x != y {
			return false
		}
	}
	a.Timestamp, b.Timestamp, a.Changelog, b.Changelog = time.Time{}, time.Time{}, nil, nil
	return a.ID == b.ID && a.Service == b.Service && a.Version == b.Version && a.Image == b.Image &&
		a.SCMRevision == b.SCMRevision && a.Committer == b.Committer && a.GUID == b.GUID
}
