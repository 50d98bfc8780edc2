package signalman_test

import (
	"testing"

	"github.com/kplane/kplane/signalman"
)

func TestLocksOnePerTarget(t *testing.T) {
	var l signalman.Locks
	inv, chk := signalman.Target{Service: "inventory", Env: "dev"}, signalman.Target{Service: "checkpoint", Env: "dev"}
	if !l.TryLock(inv) || !l.TryLock(chk) {
		t.Fatal("free targets must lock")
	}
	if l.TryLock(inv) {
		t.Fatal("a second change to the same target must be refused")
	}
	l.Unlock(inv)
	if !l.TryLock(inv) {
		t.Fatal("an unlocked target must lock again")
	}
}
