package hawaii

import "sort"

// ResultQuery selects one page of a build's test cases. Stage "" means
// every stage; Limit 0 means DefaultLimit, over MaxLimit is MaxLimit.
type ResultQuery struct {
	Stage  Stage
	Offset int
	Limit  int
}

// ResultPage is one page of a build's test cases, failures first.
type ResultPage struct {
	Cases []TestCase `json:"cases"`
	// Total counts the cases selected (all pages); Failing those failed
	// or errored, which come first.
	Total   int `json:"total"`
	Failing int `json:"failing"`
	Offset  int `json:"offset"`
	Limit   int `json:"limit"`
}

// Next is the offset of the following page, or -1 on the last page.
func (p ResultPage) Next() int {
	if p.Offset+len(p.Cases) >= p.Total {
		return -1
	}
	return p.Offset + len(p.Cases)
}

// PageResults orders cases (as Store.Results returns them) failed and
// errored first, then the rest, each group in stage then insertion
// order, and returns the page q asks for. It does not modify cases.
func PageResults(cases []TestCase, q ResultQuery) ResultPage {
	sel := make([]TestCase, 0, len(cases))
	for _, c := range cases {
		if q.Stage == "" || c.Stage == q.Stage {
			sel = append(sel, c)
		}
	}
	failing := func(c TestCase) bool { return c.Status == TestFailed || c.Status == TestError }
	sort.SliceStable(sel, func(i, j int) bool {
		fi, fj := failing(sel[i]), failing(sel[j])
		if fi != fj {
			return fi
		}
		if si, sj := stageIndex(sel[i].Stage), stageIndex(sel[j].Stage); si != sj {
			return si < sj
		}
		return sel[i].ID < sel[j].ID
	})
	p := ResultPage{Total: len(sel), Offset: max(q.Offset, 0), Limit: limit(q.Limit)}
	for _, c := range sel {
		if failing(c) {
			p.Failing++
		}
	}
	lo := min(p.Offset, len(sel))
	hi := min(lo+p.Limit, len(sel))
	p.Cases = sel[lo:hi:hi]
	if p.Cases == nil {
		p.Cases = []TestCase{}
	}
	return p
}
