-- Issue 15 item 8: a profile whose rendering differs per device (per-user
-- variables, no SCEP challenge) is queued as ONE shared template command
-- per reconciler batch, rendered when each device fetches it
-- (docs/profiles.md, "Rendered at delivery"). commands.render says how the
-- payload becomes the command: '' = payload is the command plist, ready;
-- 'profile' = payload is the stored profile plist, rendered with the
-- queue row's vars and wrapped in an InstallProfile; 'profile+sign' = the
-- same, then signed with the current profile signer. queue.vars holds the
-- device's values of the variables the template uses (JSON object, '' for
-- a ready command).
ALTER TABLE commands ADD COLUMN render TEXT NOT NULL DEFAULT '';
ALTER TABLE queue ADD COLUMN vars TEXT NOT NULL DEFAULT '';
