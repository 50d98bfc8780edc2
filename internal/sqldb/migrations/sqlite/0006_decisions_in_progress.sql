-- Executed autoscaler decisions whose orchestrator call has not returned
-- (package headquarter): the decision is stored in scaling_decisions with
-- outcome in_progress before the call, and its ID here, in the same
-- transaction. Finish removes it with the final outcome; a new leader
-- interrupts those of other terms. Small, so a new term finds them
-- without scanning scaling_decisions.

CREATE TABLE scaling_decisions_in_progress (
	id   INTEGER PRIMARY KEY REFERENCES scaling_decisions(id) ON DELETE CASCADE,
	-- The leadership term (election revision) that started the action.
	term INTEGER NOT NULL
);
