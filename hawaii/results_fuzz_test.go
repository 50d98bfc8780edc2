package hawaii

import (
	"errors"
	"testing"
	"unicode/utf8"
)

// FuzzParseJUnit checks the JUnit parser: no input panics it, every
// refusal is ErrBadResults (web's 400), and what it accepts can be stored
// as the results of the stage: at least one case, within the bounds, each
// with a known status, a duration that is not negative and UTF-8 text.
// Seeds are in testdata/fuzz/FuzzParseJUnit, among them junit-good.xml
// and what JUnit/Surefire, go-junit-report and pytest write; run with
//
//	go test ./hawaii -run '^$' -fuzz '^FuzzParseJUnit$' -fuzztime 60s
func FuzzParseJUnit(f *testing.F) {
	f.Add([]byte(`<testsuite name="s"><testcase classname="c" name="n" time="0.1"/></testsuite>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		const buildID = 42
		cases, err := ParseJUnit(buildID, StageQA, data)
		if err != nil {
			if !errors.Is(err, ErrBadResults) {
				t.Fatalf("refusal is not ErrBadResults: %v", err)
			}
			return
		}
		if len(cases) == 0 || len(cases) > MaxTestCases {
			t.Fatalf("accepted a report of %d cases", len(cases))
		}
		if _, err := checkCases(buildID, StageQA, cases); err != nil {
			t.Fatalf("parsed cases cannot be stored: %v", err)
		}
		for i, c := range cases {
			if c.Duration < 0 {
				t.Fatalf("case %d has a negative duration %v", i, c.Duration)
			}
			if len(c.Suite) > maxNameLen || len(c.Class) > maxNameLen || len(c.Name) > maxNameLen || len(c.Message) > maxMessageLen {
				t.Fatalf("case %d exceeds the bounds: %d/%d/%d/%d bytes", i, len(c.Suite), len(c.Class), len(c.Name), len(c.Message))
			}
			for _, s := range []string{c.Suite, c.Class, c.Name, c.Message} {
				if !utf8.ValidString(s) {
					t.Fatalf("case %d holds invalid UTF-8 %q", i, s)
				}
			}
		}
	})
}
