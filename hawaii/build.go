package hawaii

import (
	"strconv"
	"time"
)

// Build is one image build as CI reported it. It is immutable once stored:
// what happens to it afterwards lives in its StageRecords, its test results
// and the audit log.
type Build struct {
	// ID is assigned by the store; IDs increase in report order, so the
	// newest build has the largest ID.
	ID          int64     `json:"id"`
	Service     string    `json:"service"`
	Version     string    `json:"version"`
	Image       string    `json:"image"`
	SCMRevision string    `json:"scmRevision"`
	Committer   string    `json:"committer"`
	Timestamp   time.Time `json:"timestamp"`
	// GUID is CI's identifier of the build: a report repeating a stored
	// GUID returns the stored build.
	GUID      string   `json:"guid"`
	Changelog []Commit `json:"changelog,omitempty"`
	// ReportedAt and ReportedBy are set by the server, never by CI:
	// the time of the report and the user or webhook that made it.
	ReportedAt time.Time `json:"reportedAt"`
	ReportedBy string    `json:"reportedBy"`
}

// Commit is one entry of a build's changelog.
type Commit struct {
	ID      string    `json:"id"`
	Author  string    `json:"author"`
	Message string    `json:"message"`
	Time    time.Time `json:"time"`
}

// Stage is a step of the pipeline a build goes through.
type Stage string

// The stages, in order.
const (
	StageAlpha Stage = "alpha"
	StageQA    Stage = "qa"
	StageProd  Stage = "prod"
)

// Stages lists the stages in pipeline order.
var Stages = []Stage{StageAlpha, StageQA, StageProd}

// Valid reports whether s is one of Stages.
func (s Stage) Valid() bool {
	return s == StageAlpha || s == StageQA || s == StageProd
}

// Status is the state of a stage or of one of its steps. The pipeline
// decides the transitions; the store keeps whatever it is given.
type Status string

// Statuses of stages and steps. A stage with no record is StatusPending.
const (
	StatusPending   Status = "pending"
	StatusRunning   Status = "running"
	StatusPassed    Status = "passed"
	StatusFailed    Status = "failed"
	StatusCancelled Status = "cancelled"
	StatusSkipped   Status = "skipped"
)

// Step is one step of a stage: "create environment", "deploy", a test job,
// "destroy environment".
type Step struct {
	Name     string    `json:"name"`
	Status   Status    `json:"status"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	// Message says why a step failed or was skipped.
	Message string `json:"message,omitempty"`
}

// Duration is how long the step ran, or 0 if it has not finished.
func (s Step) Duration() time.Duration {
	if s.Started.IsZero() || s.Finished.IsZero() {
		return 0
	}
	return s.Finished.Sub(s.Started)
}

// StageRecord is the state of one stage of one build.
type StageRecord struct {
	BuildID  int64     `json:"buildId"`
	Stage    Stage     `json:"stage"`
	Status   Status    `json:"status"`
	Steps    []Step    `json:"steps,omitempty"`
	Started  time.Time `json:"started,omitzero"`
	Finished time.Time `json:"finished,omitzero"`
	// Updated is set by the store on every SetStage.
	Updated time.Time `json:"updated,omitzero"`
	// Tests counts the stage's stored test cases; the store maintains it
	// and SetStage ignores it.
	Tests TestCounts `json:"tests"`
}

// TestCounts counts test cases by status.
type TestCounts struct {
	Passed  int `json:"passed"`
	Failed  int `json:"failed"`
	Skipped int `json:"skipped"`
	Errored int `json:"errored"`
}

// Total is the number of test cases counted.
func (c TestCounts) Total() int { return c.Passed + c.Failed + c.Skipped + c.Errored }

// Add returns the sum of c and d.
func (c TestCounts) Add(d TestCounts) TestCounts {
	return TestCounts{c.Passed + d.Passed, c.Failed + d.Failed, c.Skipped + d.Skipped, c.Errored + d.Errored}
}

func (c *TestCounts) count(s TestStatus) {
	switch s {
	case TestPassed:
		c.Passed++
	case TestFailed:
		c.Failed++
	case TestSkipped:
		c.Skipped++
	case TestError:
		c.Errored++
	}
}

// BuildView is a build with the state of each of its stages, as lists and
// build pages show it.
type BuildView struct {
	Build
	// Stages has one record per stage in pipeline order (alpha, qa, prod);
	// a stage never touched is StatusPending with no steps.
	Stages []StageRecord `json:"stages"`
}

// Stage returns the record of stage st.
func (v BuildView) Stage(st Stage) StageRecord {
	for _, r := range v.Stages {
		if r.Stage == st {
			return r
		}
	}
	return StageRecord{BuildID: v.ID, Stage: st, Status: StatusPending}
}

// viewOf fills in pending records for stages that have none, in order.
func viewOf(b Build, recs []StageRecord) BuildView {
	v := BuildView{Build: b, Stages: make([]StageRecord, 0, len(Stages))}
	for _, st := range Stages {
		r := StageRecord{BuildID: b.ID, Stage: st, Status: StatusPending}
		for _, got := range recs {
			if got.Stage == st {
				r = got
			}
		}
		v.Stages = append(v.Stages, r)
	}
	return v
}

func (r StageRecord) validate() error {
	bad := map[string]string{}
	if !r.Stage.Valid() {
		bad["stage"] = "must be alpha, qa or prod"
	}
	if r.Status == "" {
		bad["status"] = "required"
	}
	for i, s := range r.Steps {
		if s.Name == "" {
			bad["steps["+strconv.Itoa(i)+"].name"] = "required"
		}
	}
	if len(bad) > 0 {
		return &FieldsError{What: "stage record", Fields: bad}
	}
	return nil
}

// normalize returns r with times in UTC, as the stores return it.
func (r StageRecord) normalize() StageRecord {
	r.Started, r.Finished, r.Updated = utc(r.Started), utc(r.Finished), utc(r.Updated)
	if len(r.Steps) == 0 {
		r.Steps = nil
		return r
	}
	steps := make([]Step, len(r.Steps))
	for i, s := range r.Steps {
		s.Started, s.Finished = utc(s.Started), utc(s.Finished)
		steps[i] = s
	}
	r.Steps = steps
	return r
}
