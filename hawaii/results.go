package hawaii

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/joshdk/go-junit"
)

// TestStatus is the outcome of one test case.
type TestStatus string

// Test case outcomes, as JUnit reports them.
const (
	TestPassed  TestStatus = "passed"
	TestFailed  TestStatus = "failed"
	TestSkipped TestStatus = "skipped"
	TestError   TestStatus = "error"
)

// Bounds on what one test report may store.
const (
	// MaxTestCases bounds the cases of one report.
	MaxTestCases = 20000
	// maxMessageLen bounds a failure message; longer ones are cut, since
	// the interesting part of a stack trace is its start.
	maxMessageLen = 8192
	maxNameLen    = 1024
)

// TestCase is one test case of one run of a stage's test jobs.
type TestCase struct {
	// ID is assigned by the store, in insertion order.
	ID       int64         `json:"id"`
	BuildID  int64         `json:"buildId"`
	Stage    Stage         `json:"stage"`
	Suite    string        `json:"suite"`
	Class    string        `json:"class"`
	Name     string        `json:"name"`
	Duration time.Duration `json:"durationNanos"`
	Status   TestStatus    `json:"status"`
	// Message is the failure or error message (and its text), or the
	// reason a case was skipped.
	Message string `json:"message,omitempty"`
}

// Key identifies a test across builds, for the test diff against prod.
func (c TestCase) Key() string { return c.Suite + "\x00" + c.Class + "\x00" + c.Name }

// ParseJUnit parses a JUnit XML report (a <testsuites> or <testsuite>
// document, as JUnit, Surefire, go-junit-report and pytest write them) into
// test cases for stage st of build id. Malformed XML is ErrBadResults with
// the parser's reason; a document with no test case at all is too, since a
// test job that ran nothing has not passed. A negative time (a broken
// clock, or a hand-written report) is stored as zero.
func ParseJUnit(buildID int64, st Stage, data []byte) ([]TestCase, error) {
	suites, err := junit.Ingest(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadResults, err)
	}
	var out []TestCase
	var walk func(prefix string, ss []junit.Suite) error
	walk = func(prefix string, ss []junit.Suite) error {
		for _, s := range ss {
			name := s.Name
			if prefix != "" {
				name = prefix + "/" + name
			}
			for _, t := range s.Tests {
				if len(out) >= MaxTestCases {
					return fmt.Errorf("%w: more than %d test cases in one report", ErrBadResults, MaxTestCases)
				}
				out = append(out, TestCase{
					BuildID:  buildID,
					Stage:    st,
					Suite:    cut(name, maxNameLen),
					Class:    cut(t.Classname, maxNameLen),
					Name:     cut(t.Name, maxNameLen),
					Duration: max(t.Duration, 0),
					Status:   TestStatus(t.Status),
					Message:  cut(message(t), maxMessageLen),
				})
			}
			if err := walk(name, s.Suites); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk("", suites); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no <testcase> elements found", ErrBadResults)
	}
	return out, nil
}

func message(t junit.Test) string {
	if t.Error == nil {
		return t.Message
	}
	msg := t.Error.Error()
	if e, ok := t.Error.(junit.Error); ok {
		msg = e.Message
		if e.Body != "" {
			if msg != "" {
				msg += "\n"
			}
			msg += e.Body
		}
	}
	if msg == "" {
		msg = t.Message
	}
	return msg
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	// Cut on a rune boundary: a split character would not be valid UTF-8.
	return strings.ToValidUTF8(s[:n], "")
}

// checkCases checks that cases can be stored as results of stage st of
// build buildID and counts them.
func checkCases(buildID int64, st Stage, cases []TestCase) (TestCounts, error) {
	var n TestCounts
	if !st.Valid() {
		return n, &FieldsError{What: "results", Fields: map[string]string{"stage": "must be alpha, qa or prod"}}
	}
	for i, c := range cases {
		if c.BuildID != buildID || c.Stage != st {
			return n, &FieldsError{What: "results", Fields: map[string]string{
				"cases[" + strconv.Itoa(i) + "]": "belongs to another build or stage"}}
		}
		switch c.Status {
		case TestPassed, TestFailed, TestSkipped, TestError:
		default:
			return n, &FieldsError{What: "results", Fields: map[string]string{
				"cases[" + strconv.Itoa(i) + "].status": "must be passed, failed, skipped or error"}}
		}
		n.count(c.Status)
	}
	return n, nil
}
