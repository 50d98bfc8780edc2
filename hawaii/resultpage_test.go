package hawaii

import (
	"slices"
	"testing"
)

func TestPageResultsFailuresFirst(t *testing.T) {
	var cases []TestCase
	add := func(st Stage, name string, status TestStatus) {
		cases = append(cases, TestCase{ID: int64(len(cases) + 1), Stage: st, Name: name, Status: status})
	}
	add(StageAlpha, "a1", TestPassed)
	add(StageAlpha, "a2", TestFailed)
	add(StageAlpha, "a3", TestSkipped)
	add(StageQA, "q1", TestError)
	add(StageQA, "q2", TestPassed)
	names := func(p ResultPage) []string {
		var out []string
		for _, c := range p.Cases {
			out = append(out, c.Name)
		}
		return out
	}
	for name, tc := range map[string]struct {
		q       ResultQuery
		want    []string
		total   int
		failing int
		next    int
	}{
		"all":          {ResultQuery{}, []string{"a2", "q1", "a1", "a3", "q2"}, 5, 2, -1},
		"first page":   {ResultQuery{Limit: 2}, []string{"a2", "q1"}, 5, 2, 2},
		"second page":  {ResultQuery{Offset: 2, Limit: 2}, []string{"a1", "a3"}, 5, 2, 4},
		"last page":    {ResultQuery{Offset: 4, Limit: 2}, []string{"q2"}, 5, 2, -1},
		"past the end": {ResultQuery{Offset: 9, Limit: 2}, nil, 5, 2, -1},
		"one stage":    {ResultQuery{Stage: StageQA}, []string{"q1", "q2"}, 2, 1, -1},
	} {
		t.Run(name, func(t *testing.T) {
			p := PageResults(cases, tc.q)
			if got := names(p); !slices.Equal(got, tc.want) || p.Total != tc.total || p.Failing != tc.failing || p.Next() != tc.next {
				t.Fatalf("page %v total %d failing %d next %d; want %v %d %d %d", got, p.Total, p.Failing, p.Next(), tc.want, tc.total, tc.failing, tc.next)
			}
		})
	}
	if cases[0].Name != "a1" || cases[1].Name != "a2" {
		t.Fatal("PageResults reordered its input")
	}
}
