package hawaii

import (
	"fmt"
	"sort"
	"time"

	"github.com/kplane/kplane/auth"
)

// The review before prod.
//
// Review is a pure function of what is known about a candidate build, the
// build in prod, the environment and the person looking: it lists the
// commits in between, the image change, the test diff against prod and
// every reason promotion is blocked, so the page can show all of it before
// anyone clicks, and Promote refuses with the very same reasons.

// CaseResult is one test case's outcome in one stage's run.
type CaseResult struct {
	Stage   Stage  `json:"stage"`
	Class   string `json:"class,omitempty"`
	Name    string `json:"name"`
	Failed  bool   `json:"failed"` // failed or errored
	Message string `json:"message,omitempty"`
}

// CasesOf turns stored test cases into the review's case results.
func CasesOf(cases []TestCase) []CaseResult {
	out := make([]CaseResult, 0, len(cases))
	for _, c := range cases {
		if c.Status == TestSkipped {
			continue
		}
		out = append(out, CaseResult{Stage: c.Stage, Class: c.Class, Name: c.Name,
			Failed: c.Status == TestFailed || c.Status == TestError, Message: c.Message})
	}
	return out
}

func (c CaseResult) key() string { return string(c.Stage) + "\x00" + c.Class + "\x00" + c.Name }

// DiffCase is one test case of the diff against prod.
type DiffCase struct {
	Stage   Stage  `json:"stage"`
	Class   string `json:"class,omitempty"`
	Name    string `json:"name"`
	Message string `json:"message,omitempty"` // the candidate's failure, if any
}

// TestDiff compares the candidate's test cases with the prod build's, case
// by case (same stage, class and name).
type TestDiff struct {
	NewlyFailing  []DiffCase `json:"newlyFailing"`
	Fixed         []DiffCase `json:"fixed"`
	StillFailing  []DiffCase `json:"stillFailing"`
	Passing       int        `json:"passing"`       // pass in both, or new and passing
	ProdHasNoRuns bool       `json:"prodHasNoRuns"` // nothing to compare with
}

// DiffTests computes the test diff of candidate against prod.
func DiffTests(candidate, prod []CaseResult) TestDiff {
	prior := make(map[string]CaseResult, len(prod))
	for _, c := range prod {
		prior[c.key()] = c
	}
	d := TestDiff{ProdHasNoRuns: len(prod) == 0}
	seen := map[string]bool{}
	for _, c := range candidate {
		k := c.key()
		if seen[k] {
			continue
		}
		seen[k] = true
		dc := DiffCase{Stage: c.Stage, Class: c.Class, Name: c.Name, Message: c.Message}
		p, had := prior[k]
		switch {
		case c.Failed && had && p.Failed:
			d.StillFailing = append(d.StillFailing, dc)
		case c.Failed:
			d.NewlyFailing = append(d.NewlyFailing, dc)
		case had && p.Failed:
			d.Fixed = append(d.Fixed, dc)
		default:
			d.Passing++
		}
	}
	for _, l := range [][]DiffCase{d.NewlyFailing, d.Fixed, d.StillFailing} {
		sort.Slice(l, func(i, j int) bool {
			if l[i].Stage != l[j].Stage {
				return stageIndex(l[i].Stage) < stageIndex(l[j].Stage)
			}
			if l[i].Class != l[j].Class {
				return l[i].Class < l[j].Class
			}
			return l[i].Name < l[j].Name
		})
	}
	return d
}

func stageIndex(s Stage) int {
	for i, st := range Stages {
		if st == s {
			return i
		}
	}
	return len(Stages)
}

// Blocker codes: one per kind of reason promotion is refused.
const (
	BlockAlpha     = "alpha_not_green"
	BlockQA        = "qa_not_green"
	BlockLocked    = "locked"
	BlockRunning   = "deploy_running"
	BlockInProd    = "already_in_prod"
	BlockRole      = "role"
	BlockCommitter = "separation_of_duties"
)

// Blocker is one reason promotion is refused.
type Blocker struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Overridable is set when an admin may promote past it.
	Overridable bool `json:"overridable,omitempty"`
}

// ReviewInput is everything the review looks at.
type ReviewInput struct {
	Candidate Build
	// Prod is the build running in prod, nil if none was promoted yet.
	Prod *Build
	// Between are the builds of the service reported after Prod up to and
	// including Candidate, any order; their changelogs are what changes.
	Between []Build
	// Alpha and QA are the candidate's stage statuses.
	Alpha, QA Status
	// CandidateTests and ProdTests are the cases of alpha and qa runs.
	CandidateTests, ProdTests []CaseResult
	Locks                     []Lock
	Pins                      []Pin
	// Running is a promotion into prod that has not ended, if any.
	Running *Promotion
	// Viewer is who looks (and would click); Override asks for an admin
	// override of separation of duties.
	Viewer   auth.Identity
	Override bool
	Now      time.Time
}

// Review is what the page shows and what Promote enforces.
type Review struct {
	Candidate  Build     `json:"candidate"`
	Prod       *Build    `json:"prod,omitempty"`
	Commits    []Commit  `json:"commits"`
	ImageFrom  string    `json:"imageFrom,omitempty"`
	ImageTo    string    `json:"imageTo"`
	Alpha      Status    `json:"alpha"`
	QA         Status    `json:"qa"`
	Diff       TestDiff  `json:"testDiff"`
	Blockers   []Blocker `json:"blockers"`
	CanPromote bool      `json:"canPromote"`
	// Overridden is set when the viewer's admin override lifts separation
	// of duties; the promotion is audited as an override.
	Overridden bool `json:"overridden,omitempty"`
	// WhoMay says in words who may promote this build.
	WhoMay string `json:"whoMay"`
}

// Reasons lists the blockers' messages.
func (r Review) Reasons() []string {
	out := make([]string, len(r.Blockers))
	for i, b := range r.Blockers {
		out[i] = b.Message
	}
	return out
}

// MakeReview reviews a candidate for prod.
func MakeReview(in ReviewInput) Review {
	c := in.Candidate
	r := Review{Candidate: c, Prod: in.Prod, ImageTo: c.Image, Alpha: orPending(in.Alpha), QA: orPending(in.QA),
		Diff: DiffTests(in.CandidateTests, in.ProdTests)}
	if in.Prod != nil {
		r.ImageFrom = in.Prod.Image
	}
	r.Commits = commitsBetween(in.Between, in.Prod, c)
	r.WhoMay = fmt.Sprintf("releasers and admins other than %s; %s only with an admin override", c.Committer, c.Committer)
	if c.Committer == "" {
		r.WhoMay = "releasers and admins"
	}

	add := func(code, msg string, overridable bool) {
		r.Blockers = append(r.Blockers, Blocker{Code: code, Message: msg, Overridable: overridable})
	}
	if r.Alpha != StatusPassed {
		add(BlockAlpha, fmt.Sprintf("alpha is %s: promotion needs green alpha tests", r.Alpha), false)
	}
	if r.QA != StatusPassed {
		add(BlockQA, fmt.Sprintf("QA is %s: promotion needs green QA tests", r.QA), false)
	}
	for _, h := range Holds(in.Locks, in.Pins, c.Service, string(StageProd), in.Now) {
		add(BlockLocked, h, false)
	}
	if in.Running != nil {
		add(BlockRunning, fmt.Sprintf("a %s of %s into prod is still running: wait for it to end", in.Running.Kind, in.Running.Version), false)
	}
	if in.Prod != nil && in.Prod.ID == c.ID {
		add(BlockInProd, "this build is already in prod", false)
	}
	if !in.Viewer.Role.Allows(auth.Releaser) {
		who := in.Viewer.User
		if who == "" {
			who = "you"
		}
		add(BlockRole, fmt.Sprintf("promoting to prod needs the releaser role; %s has %s", who, roleName(in.Viewer.Role)), false)
	}
	if c.Committer != "" && in.Viewer.User == c.Committer {
		if in.Override && in.Viewer.Role.Allows(auth.Admin) {
			r.Overridden = true
		} else {
			add(BlockCommitter, fmt.Sprintf("%s committed this build and cannot promote it: another releaser must, or an admin overrides", c.Committer), true)
		}
	}
	r.CanPromote = len(r.Blockers) == 0
	if r.Blockers == nil {
		r.Blockers = []Blocker{}
	}
	return r
}

func roleName(r auth.Role) string {
	if !r.Valid() {
		return "no role"
	}
	return "the " + r.String() + " role"
}

func orPending(s Status) Status {
	if s == "" {
		return StatusPending
	}
	return s
}

// commitsBetween gathers the changelogs of the builds after prod up to the
// candidate, newest build first, each commit once.
func commitsBetween(between []Build, prod *Build, c Build) []Commit {
	bs := append([]Build(nil), between...)
	sort.Slice(bs, func(i, j int) bool { return bs[i].ID > bs[j].ID })
	seen := map[string]bool{}
	out := []Commit{}
	for _, b := range bs {
		if b.ID > c.ID || (prod != nil && b.ID <= prod.ID) || b.Service != c.Service {
			continue
		}
		for _, cm := range b.Changelog {
			if seen[cm.ID] {
				continue
			}
			seen[cm.ID] = true
			out = append(out, cm)
		}
	}
	return out
}
