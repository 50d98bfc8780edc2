package hawaii

import (
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Bounds on report fields: generous for real CI, small enough that one
// report cannot bloat every list page.
const (
	maxFieldLen     = 256
	maxImageLen     = 512
	maxChangelog    = 1000
	maxCommitMsgLen = 4096
)

var serviceName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// Validate checks a report as CI sends it and names every bad field in a
// *FieldsError (errors.Is ErrInvalid). ID, ReportedAt and ReportedBy are
// the server's and are not checked.
func (b Build) Validate() error {
	bad := map[string]string{}
	required := func(name, v string, max int) {
		switch {
		case strings.TrimSpace(v) == "":
			bad[name] = "required"
		case len(v) > max:
			bad[name] = "longer than " + strconv.Itoa(max) + " bytes"
		case !utf8.ValidString(v):
			bad[name] = "not UTF-8"
		}
	}
	required("service", b.Service, maxFieldLen)
	if _, ok := bad["service"]; !ok && !serviceName.MatchString(b.Service) {
		bad["service"] = "must be lowercase letters, digits, '.', '_' or '-'"
	}
	required("version", b.Version, maxFieldLen)
	required("image", b.Image, maxImageLen)
	required("scmRevision", b.SCMRevision, maxFieldLen)
	required("committer", b.Committer, maxFieldLen)
	required("guid", b.GUID, maxFieldLen)
	switch {
	case b.Timestamp.IsZero():
		bad["timestamp"] = "required (RFC 3339)"
	case !storableTime(b.Timestamp):
		bad["timestamp"] = "must be after 1970 and before 2262"
	}
	if len(b.Changelog) > maxChangelog {
		bad["changelog"] = "more than " + strconv.Itoa(maxChangelog) + " commits"
	}
	for i, c := range b.Changelog {
		name := "changelog[" + strconv.Itoa(i) + "]"
		switch {
		case strings.TrimSpace(c.ID) == "":
			bad[name+".id"] = "required"
		case len(c.ID) > maxFieldLen || len(c.Author) > maxFieldLen:
			bad[name] = "id or author longer than " + strconv.Itoa(maxFieldLen) + " bytes"
		case len(c.Message) > maxCommitMsgLen:
			bad[name+".message"] = "longer than " + strconv.Itoa(maxCommitMsgLen) + " bytes"
		}
		if len(bad) > 20 {
			break
		}
	}
	if len(bad) > 0 {
		return &FieldsError{What: "build", Fields: bad}
	}
	return nil
}

// storableTime says whether the SQL store, which keeps times as int64
// nanoseconds since 1970 with 0 for none, gives t back.
func storableTime(t time.Time) bool {
	n := t.UnixNano()
	return n > 0 && time.Unix(0, n).Equal(t)
}

// normalize returns the build as the store keeps it: times in UTC,
// rounded to what the SQL store keeps (nanoseconds survive), so that
// both stores return equal values.
func (b Build) normalize() Build {
	b.Timestamp = b.Timestamp.UTC()
	b.ReportedAt = b.ReportedAt.UTC()
	if len(b.Changelog) > 0 {
		cl := make([]Commit, len(b.Changelog))
		for i, c := range b.Changelog {
			c.Time = c.Time.UTC()
			cl[i] = c
		}
		b.Changelog = cl
	} else {
		b.Changelog = nil
	}
	return b
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}
