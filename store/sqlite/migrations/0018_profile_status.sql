-- The status page of a profile lists its devices in enrollment order
-- (ProfileStatus: WHERE profile_id = ? AND enrollment_id > ? ORDER BY
-- enrollment_id LIMIT n). profile_items_profile (profile_id, state,
-- enrollment_id) serves it only with a state filter; without one a
-- planner without fresh statistics (right after a batch of 100,000 items)
-- read and sorted every item of the profile. This index makes the first
-- page an index range of n entries at any fleet size; state is in it so
-- that the per-state counts stay a covering index scan whichever of the
-- two indexes a planner without statistics picks.
CREATE INDEX profile_items_profile_device ON profile_items(profile_id, enrollment_id, state);
