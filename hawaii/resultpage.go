package hawaii

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"time"
)

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

func (q ResultQuery) validate() error {
	if q.Stage != "" && !q.Stage.Valid() {
		return &FieldsError{What: "results query", Fields: map[string]string{"stage": "must be alpha, qa or prod"}}
	}
	return nil
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

// failingStatuses and the rest are the two groups of a result page.
var (
	failingStatuses = [2]any{string(TestFailed), string(TestError)}
	passingStatuses = [2]any{string(TestPassed), string(TestSkipped)}
)

// ResultsPage implements Store. The stage records' counts give the size
// of each (group, stage) segment, so only the segments the page overlaps
// are read, each with one range query on test_cases(build_id, stage, id).
func (s *SQLStore) ResultsPage(ctx context.Context, buildID int64, q ResultQuery) (ResultPage, error) {
	if err := q.validate(); err != nil {
		return ResultPage{}, err
	}
	p := ResultPage{Offset: max(q.Offset, 0), Limit: limit(q.Limit), Cases: []TestCase{}}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := buildExists(ctx, tx, buildID); err != nil {
			return err
		}
		counts := map[Stage]TestCounts{}
		rows, err := tx.QueryContext(ctx, `SELECT stage, passed, failed, skipped, errored FROM build_stages WHERE build_id = ?`, buildID)
		if err != nil {
			return err
		}
		for rows.Next() {
			var st Stage
			var n TestCounts
			if err := rows.Scan(&st, &n.Passed, &n.Failed, &n.Skipped, &n.Errored); err != nil {
				rows.Close()
				return err
			}
			counts[st] = n
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		type segment struct {
			stage    Stage
			statuses [2]any
			size     int
		}
		var segs []segment
		for _, failing := range []bool{true, false} {
			for _, st := range Stages {
				if q.Stage != "" && st != q.Stage {
					continue
				}
				n := counts[st]
				seg := segment{stage: st, statuses: passingStatuses, size: n.Passed + n.Skipped}
				if failing {
					seg = segment{stage: st, statuses: failingStatuses, size: n.Failed + n.Errored}
					p.Failing += seg.size
				}
				p.Total += seg.size
				segs = append(segs, seg)
			}
		}
		skip, want := p.Offset, p.Limit
		for _, seg := range segs {
			if want == 0 {
				break
			}
			if skip >= seg.size {
				skip -= seg.size
				continue
			}
			rows, err := tx.QueryContext(ctx, `SELECT id, build_id, stage, suite, class, name, duration_ns, status, message FROM test_cases
				WHERE build_id = ? AND stage = ? AND status IN (?, ?) ORDER BY id LIMIT ? OFFSET ?`,
				buildID, string(seg.stage), seg.statuses[0], seg.statuses[1], min(want, seg.size-skip), skip)
			if err != nil {
				return err
			}
			for rows.Next() {
				var c TestCase
				var d int64
				if err := rows.Scan(&c.ID, &c.BuildID, &c.Stage, &c.Suite, &c.Class, &c.Name, &d, &c.Status, &c.Message); err != nil {
					rows.Close()
					return err
				}
				c.Duration = time.Duration(d)
				p.Cases = append(p.Cases, c)
				want--
			}
			if err := errors.Join(rows.Err(), rows.Close()); err != nil {
				return err
			}
			skip = 0
		}
		return nil
	})
	if err != nil {
		return ResultPage{}, fmt.Errorf("results of build %d: %w", buildID, err)
	}
	return p, nil
}
