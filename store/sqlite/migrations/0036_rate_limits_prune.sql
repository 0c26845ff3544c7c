-- Session 15 (lane attack7): rate_limits rows were deleted only by a
-- successful sign-in's reset, so every client address (or /64) could add
-- up to 30 account rows per 15-minute window for good. A periodic job
-- (credential.Limits.Prune, through RateLimitPrune) now deletes rows
-- whose window is over, a batch at a time; this index finds them
-- without reading the table. Only a new window writes window_start (a
-- hit in a running window changes count alone), so the index costs one
-- entry per window, not per attempt.
CREATE INDEX rate_limits_window_start ON rate_limits(window_start);
