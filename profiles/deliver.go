package profiles

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

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
	// Now is the clock that ages unknown markers (nil: time.Now).
	Now func() time.Time
	// Log, when set, gets a warning per command met with an unknown
	// marker; UnknownMarker, when set, is counted once per such meeting
	// (the server's pomona_commands_total{event="render_unknown_marker"}).
	Log           *slog.Logger
	UnknownMarker func(marker string)
	cache         reconcile.TemplateCache
}

// UnknownMarkerGrace is how long a template command with a render marker
// this server does not know stays queued for an instance that knows it:
// during a rolling upgrade a newer instance writes markers the older ones
// meet (answered 5xx, ErrRenderElsewhere: the device asks again and may
// reach a newer instance; the row is neither failed nor skipped, so the
// channel's order holds). An upgrade takes minutes; a command older than
// this was written by a version no longer running (rolled back), and is
// failed as any command that can never render (store.ErrCannotRender: the
// item's bounded retry plans it again with a marker this version writes).
const UnknownMarkerGrace = time.Hour

// ErrRenderElsewhere is Render's error for a recent template command whose
// marker this server does not know (a newer instance's): transient, not
// store.ErrCannotRender — the MDM channel answers 5xx and leaves the row
// queued.
var ErrRenderElsewhere = errors.New("the command's render marker is unknown to this server version (a newer instance wrote it)")

// Render is mdmservice.Core's Render: the command plist of template
// command q for q's channel. An unknown marker on a command younger than
// UnknownMarkerGrace is ErrRenderElsewhere (transient). Errors wrapping
// store.ErrCannotRender, which no retry of this queue row can cure: an
// unknown marker older than UnknownMarkerGrace, vars that do not decode, a template that does not
// render with them (a value missing, a stored profile that no longer
// parses) — the caller fails the device's item and hands out the next
// command. Any other error (a signing failure) is transient: the caller
// answers the device 5xx and it retries. The template is never handed
// out.
func (d *Deliverer) Render(ctx context.Context, q *store.QueuedCommand) ([]byte, error) {
	switch q.Render {
	case store.RenderProfile, store.RenderProfileSigned:
	default:
		return nil, d.unknownMarker(q)
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

// unknownMarker is Render's error for q, whose marker this version does
// not know: ErrRenderElsewhere while q is younger than UnknownMarkerGrace
// (CreatedAt), then store.ErrCannotRender. A CreatedAt more than the
// grace ahead of this clock counts as expired too: no upgrade's clock
// skew is that large, and read as "not yet old" a corrupt or far-future
// time would keep the channel's queue blocked (5xx to every poll) until
// that time, which may be never.
func (d *Deliverer) unknownMarker(q *store.QueuedCommand) error {
	now := time.Now()
	if d.Now != nil {
		now = d.Now()
	}
	if d.UnknownMarker != nil {
		d.UnknownMarker(q.Render)
	}
	age := now.Sub(q.CreatedAt)
	if age >= UnknownMarkerGrace || age <= -UnknownMarkerGrace {
		return fmt.Errorf("%w: command %s: unknown render marker %q, queued %s ago (no instance that knows it came for it)",
			store.ErrCannotRender, q.UUID, q.Render, age.Round(time.Second))
	}
	if d.Log != nil {
		d.Log.Warn("profile: a queued command's render marker is unknown to this version: left queued for a newer instance",
			"command_uuid", q.UUID, "channel", q.ChannelID, "render", q.Render, "age", age.Round(time.Second), "fails_after", UnknownMarkerGrace)
	}
	return fmt.Errorf("command %s: marker %q: %w", q.UUID, q.Render, ErrRenderElsewhere)
}
