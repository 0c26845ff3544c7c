package profiles

import (
	"context"
	"fmt"

	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/profile"
	"github.com/pomona-mdm/pomona/reconcile"
	"github.com/pomona-mdm/pomona/store"
)

// Deliverer turns a template command (store.CommandRecord.Render set:
// an InstallProfile of a profile with per-user variables, queued once per
// reconciler batch, docs/profiles.md "Rendered at delivery") into the
// command plist one device gets, when that device fetches it: the stored
// profile rendered with the queue row's values (the planning renderer's
// bytes, whose hash the device's item holds), signed with the profile
// signer of now when the command is marked profile+sign (no signer now:
// unsigned, as planning does), wrapped as app.Commands.Record wraps it:
// {Command: {RequestType: InstallProfile, Payload: <data>}, CommandUUID}.
// Safe for concurrent use; one per process (its template cache is
// process-wide and bounded).
type Deliverer struct {
	// Signer returns the profile signer (nil, or nil func: unsigned).
	Signer func() *Signer
	cache  reconcile.TemplateCache
}

// Render is mdmservice.Core's Render: the command plist of template
// command q for q's channel. Errors wrapping store.ErrCannotRender, which
// no retry of this queue row can cure: an unknown marker (a row written
// by a newer server), vars that do not decode, a template that does not
// render with them (a value missing, a stored profile that no longer
// parses) — the caller fails the device's item and hands out the next
// command. Any other error (a signing failure) is transient: the caller
// answers the device 5xx and it retries. The template is never handed
// out.
func (d *Deliverer) Render(ctx context.Context, q *store.QueuedCommand) ([]byte, error) {
	switch q.Render {
	case store.RenderProfile, store.RenderProfileSigned:
	default:
		return nil, fmt.Errorf("%w: command %s: unknown render marker %q", store.ErrCannotRender, q.UUID, q.Render)
	}
	values, err := reconcile.DecodeVars(q.Vars)
	if err != nil {
		return nil, fmt.Errorf("%w: command %s: %w", store.ErrCannotRender, q.UUID, err)
	}
	payload, _, err := d.cache.Render(q.Payload, values)
	if err != nil {
		return nil, fmt.Errorf("%w: command %s: render the profile: %w", store.ErrCannotRender, q.UUID, err)
	}
	if q.Render == store.RenderProfileSigned && d.Signer != nil {
		if s := d.Signer(); s != nil {
			if payload, err = profile.Sign(payload, s.Cert, s.Key, s.Chain); err != nil {
				return nil, fmt.Errorf("command %s: sign the profile: %w", q.UUID, err)
			}
		}
	}
	return mdm.Command{CommandUUID: q.UUID, Command: map[string]any{"RequestType": "InstallProfile", "Payload": payload}}.Encode()
}
