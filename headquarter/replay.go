package headquarter

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Observation is one recorded Input and when it was observed.
type Observation struct {
	Time  time.Time
	Input Input
}

// sampleColumns is the header a sample file starts with.
var sampleColumns = []string{"time", "service", "instances", "qps", "cpu", "memory"}

// ReadSamples reads a recorded sample file: CSV with the header
//
//	time,service,instances,qps,cpu,memory
//
// then one row per service per observation, in time order. time is RFC 3339;
// instances is the registered count; qps is the service's total requests per
// second; cpu and memory are fractions of the instances' limits. An empty
// metric is missing (reason "empty in the sample file"). Lines starting with
// # are comments. Every sample is taken as measured at its row's time.
func ReadSamples(r io.Reader) ([]Observation, error) {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.FieldsPerRecord = -1 // checked below, with a better message
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: the file is empty; it starts with the header %s", ErrBadSamples, strings.Join(sampleColumns, ","))
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSamples, err)
	}
	if strings.Join(header, ",") != strings.Join(sampleColumns, ",") {
		return nil, fmt.Errorf("%w: header is %q, want %q", ErrBadSamples, strings.Join(header, ","), strings.Join(sampleColumns, ","))
	}
	var out []Observation
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadSamples, err)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != len(sampleColumns) {
			return nil, fmt.Errorf("%w: line %d has %d fields, want %d (%s)", ErrBadSamples, line, len(rec), len(sampleColumns), strings.Join(sampleColumns, ","))
		}
		o, err := parseObservation(rec)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrBadSamples, line, err)
		}
		if len(out) > 0 && o.Time.Before(out[len(out)-1].Time) {
			return nil, fmt.Errorf("%w: line %d: time %s is before the previous row's; sort the file by time", ErrBadSamples, line, rec[0])
		}
		out = append(out, o)
	}
}

func parseObservation(rec []string) (Observation, error) {
	at, err := time.Parse(time.RFC3339, rec[0])
	if err != nil {
		return Observation{}, fmt.Errorf("time %q is not RFC 3339 (2026-03-01T12:00:00Z)", rec[0])
	}
	if rec[1] == "" {
		return Observation{}, errors.New("service is empty")
	}
	n, err := strconv.Atoi(rec[2])
	if err != nil || n < 0 {
		return Observation{}, fmt.Errorf("instances %q is not a count", rec[2])
	}
	in := Input{Service: rec[1], Instances: n}
	for i, dst := range []*Sample{&in.QPS, &in.CPU, &in.Memory} {
		s := rec[3+i]
		if s == "" {
			*dst = MissingSample("empty in the sample file")
			continue
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return Observation{}, fmt.Errorf("%s %q is not a number (leave it empty for missing)", sampleColumns[3+i], s)
		}
		*dst = Value(v, at)
	}
	return Observation{Time: at, Input: in}, nil
}

// Replay runs Evaluate over recorded observations, each service under its
// policy (services without one are skipped), and returns the noteworthy
// decisions it would have made. Every decision that acts is taken as done
// when it is made, so cooldowns and windows run as they would have; the
// instance counts stay those recorded. Dry run is ignored: a replay is a
// dry run.
func Replay(policies []Policy, obs []Observation) []Decision {
	byService := make(map[string]Policy, len(policies))
	for _, p := range policies {
		p.DryRun = false
		byService[p.Service] = p
	}
	states := map[string]State{}
	var out []Decision
	for _, o := range obs {
		p, ok := byService[o.Input.Service]
		if !ok {
			continue
		}
		d, st := Evaluate(p, states[p.Service], o.Input, o.Time)
		if d.Executes() {
			d.Outcome, d.Finished = OutcomeDone, o.Time
			st = st.Apply(d)
		}
		states[p.Service] = st
		if d.Noteworthy() {
			out = append(out, d)
		}
	}
	return out
}
