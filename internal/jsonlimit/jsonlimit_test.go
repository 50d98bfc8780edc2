package jsonlimit

import (
	"errors"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	for name, tc := range map[string]struct {
		doc       string
		elements  int
		depth     int
		wantElems bool
		wantDepth bool
	}{
		"small span list":         {`[{"id":"a","tags":{"k":"v"}},{"id":"b"}]`, 10, 4, false, false},
		"object per three bytes":  {"[" + strings.Repeat("{},", 100) + "{}]", 50, 4, true, false},
		"scalars in an array":     {"[" + strings.Repeat("1,", 100) + "1]", 50, 4, true, false},
		"brackets in strings":     {`[{"x":"[[[[{{{{,,,,"}]`, 3, 3, false, false},
		"escaped quote in string": {`[{"x":"\"[[[[[["}]`, 3, 3, false, false},
		"too deep":                {strings.Repeat("[", 20) + strings.Repeat("]", 20), 100, 10, false, true},
		"exactly at depth":        {strings.Repeat("[", 10) + strings.Repeat("]", 10), 100, 10, false, false},
	} {
		t.Run(name, func(t *testing.T) {
			err := Check([]byte(tc.doc), tc.elements, tc.depth)
			var ee *ElementsError
			var de *DepthError
			if got := errors.As(err, &ee); got != tc.wantElems {
				t.Fatalf("elements error = %v, want %v (err %v)", got, tc.wantElems, err)
			}
			if got := errors.As(err, &de); got != tc.wantDepth {
				t.Fatalf("depth error = %v, want %v (err %v)", got, tc.wantDepth, err)
			}
		})
	}
}

func TestCheckDoesNotAllocatePerElement(t *testing.T) {
	doc := []byte("[" + strings.Repeat("{},", 100000) + "{}]")
	allocs := testing.AllocsPerRun(5, func() { _ = Check(doc, 1<<30, 64) })
	if allocs > 2 {
		t.Fatalf("%v allocations for 100k elements, want a constant few", allocs)
	}
}
