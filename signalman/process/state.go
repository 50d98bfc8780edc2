package process

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// stateEntry identifies a child across kplane restarts. The process start
// time guards against signalling an unrelated process that reused the PID.
type stateEntry struct {
	PID       int    `json:"pid"`
	ID        string `json:"id"`
	StartTime uint64 `json:"start_time"` // /proc/<pid>/stat field 22
}

func (d *Driver) writeState() {
	if d.cfg.StateFile == "" {
		return
	}
	d.mu.Lock()
	var entries []stateEntry
	for _, g := range d.groups {
		for _, c := range g.children {
			pid := c.cmd.Process.Pid
			st, _ := procStartTime(pid)
			entries = append(entries, stateEntry{PID: pid, ID: c.inst.ID, StartTime: st})
		}
	}
	d.mu.Unlock()

	d.stateMu.Lock()
	defer d.stateMu.Unlock()
	b, _ := json.Marshal(entries)
	tmp := d.cfg.StateFile + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		d.log.Warn("cannot record children", "err", err)
		return
	}
	if err := os.Rename(tmp, d.cfg.StateFile); err != nil {
		d.log.Warn("cannot record children", "err", err)
	}
}

// stopStale stops children recorded by a previous run that are still
// alive, then removes the state file.
func stopStale(path string, timeout time.Duration, log *slog.Logger) {
	b, err := os.ReadFile(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			log.Warn("cannot read state of a previous run", "path", path, "err", err)
		}
		return
	}
	var entries []stateEntry
	if err := json.Unmarshal(b, &entries); err != nil {
		log.Warn("ignoring unreadable state of a previous run", "path", path, "err", err)
		_ = os.Remove(path)
		return
	}
	var alive []stateEntry
	for _, e := range entries {
		if st, err := procStartTime(e.PID); err == nil && st == e.StartTime {
			log.Info("stopping instance left by a previous run", "instance", e.ID, "pid", e.PID)
			_ = syscall.Kill(e.PID, syscall.SIGTERM)
			alive = append(alive, e)
		}
	}
	deadline := time.Now().Add(timeout)
	for _, e := range alive {
		for {
			st, err := procStartTime(e.PID)
			if err != nil || st != e.StartTime {
				break
			}
			if time.Now().After(deadline) {
				_ = syscall.Kill(e.PID, syscall.SIGKILL)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	_ = os.Remove(path)
}

// procStartTime reads a process's start time in clock ticks since boot. A
// zombie or missing process is an error.
func procStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	fields := strings.Fields(s[i+1:])
	// fields[0] is field 3 (state); start time is field 22.
	if len(fields) < 20 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	if fields[0] == "Z" {
		return 0, fmt.Errorf("process %d is a zombie", pid)
	}
	return strconv.ParseUint(fields[19], 10, 64)
}
