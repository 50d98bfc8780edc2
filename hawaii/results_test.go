package hawaii

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseJUnit(t *testing.T) {
	data, err := os.ReadFile("testdata/junit-good.xml")
	if err != nil {
		t.Fatal(err)
	}
	cases, err := ParseJUnit(7, StageAlpha, data)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		class, name string
		status      TestStatus
		d           time.Duration
		msg         string
	}{
		{"inventory.api.OrderTest", "TestReserve", TestPassed, 120 * time.Millisecond, ""},
		{"inventory.api.OrderTest", "TestNoOversell", TestFailed, 500 * time.Millisecond, "sold 101 of 100 seats\nexpected stock 0, got -1\nat OrderTest.java:42"},
		{"inventory.api.OrderTest", "TestRefund", TestSkipped, 0, "refunds not in this release"},
		{"inventory.api.StockTest", "TestRestock", TestError, 250 * time.Millisecond, "connection refused"},
	}
	if len(cases) != len(want) {
		t.Fatalf("%d cases, want %d: %+v", len(cases), len(want), cases)
	}
	for i, w := range want {
		c := cases[i]
		if c.BuildID != 7 || c.Stage != StageAlpha || c.Suite != "inventory.api" || c.Class != w.class || c.Name != w.name ||
			c.Status != w.status || c.Duration != w.d || c.Message != w.msg {
			t.Errorf("case %d = %+v, want %+v", i, c, w)
		}
	}
}

func TestParseJUnitErrors(t *testing.T) {
	for name, tc := range map[string]struct {
		xml, reason string
	}{
		"not XML":       {"this is not xml <", "syntax error"},
		"unclosed":      {`<testsuite name="a"><testcase name="x">`, "closed by"},
		"no test cases": {`<testsuites><testsuite name="empty"/></testsuites>`, "no <testcase>"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseJUnit(1, StageQA, []byte(tc.xml))
			if !errors.Is(err, ErrBadResults) || !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("err = %v, want ErrBadResults with %q", err, tc.reason)
			}
		})
	}
}

func TestValidateNamesFields(t *testing.T) {
	var fe *FieldsError
	err := Build{Service: "Bad Name", Version: "1"}.Validate()
	if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v", err)
	}
	for _, f := range []string{"service", "image", "scmRevision", "committer", "guid", "timestamp"} {
		if _, ok := fe.Fields[f]; !ok || !strings.Contains(err.Error(), f+": ") {
			t.Errorf("%q not named in %v", f, err)
		}
	}
	if _, ok := fe.Fields["version"]; ok {
		t.Errorf("valid version named: %v", err)
	}
	if err := testBuild("inventory", "g").Validate(); err != nil {
		t.Errorf("valid build: %v", err)
	}
}
