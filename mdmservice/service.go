// Package mdmservice runs the MDM check-in and command channels of
// account-driven user enrollments: every request is authenticated (the
// identity certificate from Mdm-Signature or TLS must come from Pomona's
// CA and be bound to the enrollment it speaks for), carries a valid access
// token where Apple sends one (every iOS request; a Mac's user channel),
// and is answered as Apple specifies. It returns plain answers; the HTTP
// handler only copies them out.
package mdmservice

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/pomona-mdm/pomona/auth"
	"github.com/pomona-mdm/pomona/enroll"
	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/opaquetoken"
	"github.com/pomona-mdm/pomona/store"
)

// Store is what the MDM channel needs from storage.
type Store interface {
	store.EnrollmentStore
	store.MDMStore
	store.TokenStore
	// Tombstone tells a deleted user's device it is no longer managed.
	store.TombstoneStore
	// User finds an enrollment's owner (a Mac's device channel carries no
	// bearer: the owner must still be enabled).
	User(ctx context.Context, id string) (*store.User, error)
}

// Service answers check-ins and command polls.
type Service struct {
	Store Store
	Auth  *auth.Service
	CA    *x509.Certificate
	// Topic returns the current push topic (check-ins must match it).
	Topic func(ctx context.Context) (string, error)
	// LoginURL is the sign-in page a 401 sends the person to.
	LoginURL func(tenantID string) string
	Log      *slog.Logger
	Now      func() time.Time
	// Events, when set, hears about check-ins and results (webhooks,
	// inventory, metrics).
	Events func(ctx context.Context, e Event)
	// Tokens answers GetToken (nil: every TokenServiceType is refused).
	Tokens TokenService

	idOnce sync.Once
	ids    *mdm.IdentityChecker
}

func (s *Service) checker() *mdm.IdentityChecker {
	s.idOnce.Do(func() { s.ids = &mdm.IdentityChecker{CA: s.CA, Max: 200_000} })
	return s.ids
}

// Event is something that happened on a channel.
type Event struct {
	Kind       string // authenticate, token-update, checkout, result, unknown-result, identity-expired
	Enrollment *store.Enrollment
	// ChannelID is Pomona's id of the channel (token-update, result), or
	// the channel's kind when no stored channel is concerned
	// (authenticate, checkout).
	ChannelID   string
	CommandUUID string
	Status      string
	RequestType string
	Result      []byte
}

// Request is one device request as the HTTP layer received it.
type Request struct {
	Body          []byte
	Signature     string            // Mdm-Signature header
	ClientCert    *x509.Certificate // from TLS or a trusted proxy header, if any
	Authorization string
}

// Response is what to answer.
type Response struct {
	Status      int
	ContentType string
	Body        []byte
	// Challenge, when set, is the WWW-Authenticate value of a 401.
	Challenge string
	// Reason is for the log only.
	Reason string
}

func (s *Service) now() time.Time { return s.Now().UTC().Truncate(time.Microsecond) }

func plain(status int, reason string) Response {
	return Response{Status: status, ContentType: "text/plain; charset=utf-8", Body: []byte(reason + "\n"), Reason: reason}
}

// unrecognized tells an iOS 17+/macOS 14+ device that the server no longer
// knows it: the device unenrolls.
// sameFingerprint reports whether fp is the SHA-256 of cert's DER: the
// tombstone must name this very certificate, not only its serial.
func sameFingerprint(fp []byte, cert *x509.Certificate) bool {
	sum := sha256.Sum256(cert.Raw)
	return bytes.Equal(sum[:], fp)
}

func unrecognized(reason string) Response {
	return Response{Status: http.StatusForbidden, ContentType: "application/json",
		Body: []byte(`{"code":"com.apple.unrecognized.device"}`), Reason: reason}
}

// authenticated is a request whose identity is established.
type authenticated struct {
	cert *x509.Certificate
	ic   *store.IdentityCert
	enr  *store.Enrollment
}

// identify checks the identity certificate and finds its enrollment. A
// revoked certificate or an ended enrollment is terminal: every request,
// Authenticate and CheckOut included, is told the device is unknown, and
// coming back takes a new enrollment (new sign-in, new profile).
func (s *Service) identify(ctx context.Context, r Request) (*authenticated, *Response) {
	now := s.now()
	var cert *x509.Certificate
	var err error
	// A present Mdm-Signature is always verified, even beside a client
	// certificate (TLS or a trusted proxy's header): both must then name
	// the same identity, so a signature can never be overridden by, or
	// smuggled past, a certificate that proves nothing by itself.
	if r.Signature != "" || r.ClientCert == nil {
		cert, err = mdm.VerifyDetached(r.Signature, r.Body)
		if err == nil && r.ClientCert != nil && !r.ClientCert.Equal(cert) {
			err = errors.New("the Mdm-Signature signer is not the client certificate")
		}
		if errors.Is(err, mdm.ErrSigningTime) {
			// An expired identity's signing time fails the CMS check first.
			if c := expiredSigner(r.Signature, r.Body); c != nil {
				if resp := s.expiredIdentity(ctx, c, now); resp != nil {
					return nil, resp
				}
			}
		}
	} else {
		cert = r.ClientCert
	}
	if err == nil {
		err = s.checker().Check(cert, now)
		if err != nil {
			if resp := s.expiredIdentity(ctx, cert, now); resp != nil {
				return nil, resp
			}
		}
	}
	if err != nil {
		resp := plain(http.StatusForbidden, err.Error())
		return nil, &resp
	}
	serial := enroll.SerialHex(cert)
	ic, err := s.Store.IdentityCert(ctx, serial)
	if err != nil {
		// The enrollment may have gone with its user or tenant: its
		// tombstone says so, and com.apple.unrecognized.device makes the
		// device remove its profile (docs/lifecycle.md, "Endings").
		if ts, terr := s.Store.Tombstone(ctx, serial); terr == nil && sameFingerprint(ts.SHA256, cert) {
			if s.Log != nil {
				s.Log.Info("request from a device whose enrollment was deleted", "enrollment", ts.EnrollmentID,
					"enrollment_id", ts.AppleEnrollmentID, "user", ts.UserID, "tenant", ts.TenantID, "reason", ts.Reason, "ended", ts.EndedAt)
			}
			resp := unrecognized("the enrollment was deleted: " + ts.Reason)
			return nil, &resp
		}
		resp := plain(http.StatusForbidden, "the identity certificate is not one Pomona issued to an enrollment")
		return nil, &resp
	}
	if !ic.RevokedAt.IsZero() {
		resp := unrecognized("the identity certificate was revoked: " + ic.RevokedReason)
		return nil, &resp
	}
	enr, err := s.Store.Enrollment(ctx, ic.EnrollmentID)
	if err != nil {
		resp := unrecognized("the enrollment of this identity no longer exists")
		return nil, &resp
	}
	if enr.Status == store.EnrollmentUnenrolled {
		resp := unrecognized("the enrollment was ended")
		return nil, &resp
	}
	return &authenticated{cert: cert, ic: ic, enr: enr}, nil
}

// bound checks that the message's EnrollmentID is the one bound to the
// identity's enrollment.
func bound(a *authenticated, id mdm.Identity) *Response {
	if a.enr.AppleEnrollmentID == "" || a.enr.AppleEnrollmentID != id.EnrollmentID {
		resp := plain(http.StatusForbidden, "this identity certificate belongs to another enrollment")
		return &resp
	}
	return nil
}

// admit checks the bearer where the platform sends one and, on a Mac's
// device channel (no bearer), that the enrollment's owner is still enabled.
func (s *Service) admit(ctx context.Context, a *authenticated, id mdm.Identity, header string) *Response {
	if needsToken(a.enr, id) {
		return s.authorize(ctx, a, header, false)
	}
	u, err := s.Store.User(ctx, a.enr.UserID)
	if errors.Is(err, store.ErrNotFound) {
		resp := unrecognized("the enrollment's user no longer exists")
		return &resp
	}
	if err != nil {
		resp := plain(http.StatusInternalServerError, err.Error())
		return &resp
	}
	if !u.Enabled {
		resp := plain(http.StatusForbidden, "the enrollment's user is disabled")
		return &resp
	}
	return nil
}

// needsToken: iOS sends the access token on every request; a Mac only on
// its user channel.
func needsToken(enr *store.Enrollment, id mdm.Identity) bool {
	return enr.Platform == enroll.IOS || id.Kind() == mdm.UserChannel
}

// authorize checks the bearer for the enrollment. A missing, expired or
// revoked token answers 401 with the full apple-as-web challenge, so the
// device asks the person to sign in again and retries the same request.
func (s *Service) authorize(ctx context.Context, a *authenticated, header string, stale bool) *Response {
	check := s.Auth.Authorize
	if stale {
		check = s.Auth.AuthorizeStale
	}
	g, err := check(ctx, a.enr.TenantID, header)
	if err != nil {
		if errors.Is(err, auth.ErrNoToken) || errors.Is(err, auth.ErrInvalidToken) {
			resp := plain(http.StatusUnauthorized, "sign-in required: "+err.Error())
			resp.Challenge = enroll.Challenge(s.LoginURL(a.enr.TenantID))
			return &resp
		}
		resp := plain(http.StatusInternalServerError, err.Error())
		return &resp
	}
	if g.User.ID != a.enr.UserID {
		resp := plain(http.StatusForbidden, "the access token belongs to another user than this enrollment's")
		return &resp
	}
	if g.Token.EnrollmentID == a.enr.ID {
		return nil // bound already: no write on the hot path
	}
	if g.Token.EnrollmentID != "" {
		resp := plain(http.StatusForbidden, "the access token is already used by another enrollment")
		return &resp
	}
	tok, _ := opaquetoken.FromHeader(header)
	if err := s.Store.BindAccessToken(ctx, opaquetoken.Hash(tok), a.enr.ID); errors.Is(err, store.ErrConflict) {
		resp := plain(http.StatusForbidden, "the access token is already used by another enrollment")
		return &resp
	} else if err != nil {
		resp := plain(http.StatusInternalServerError, err.Error())
		return &resp
	}
	return nil
}

func (s *Service) emit(ctx context.Context, e Event) {
	if s.Events != nil {
		s.Events(ctx, e)
	}
}

// Checkin answers a PUT to the check-in URL.
func (s *Service) Checkin(ctx context.Context, r Request) Response {
	a, resp := s.identify(ctx, r)
	if resp != nil {
		return *resp
	}
	msg, err := mdm.DecodeCheckin(r.Body)
	if err != nil {
		return plain(http.StatusBadRequest, err.Error())
	}
	if msg.Topic != "" {
		topic, err := s.Topic(ctx)
		if err != nil {
			return plain(http.StatusServiceUnavailable, "no push certificate")
		}
		if msg.Topic != topic {
			return plain(http.StatusBadRequest, fmt.Sprintf("topic %q is not this server's push topic", msg.Topic))
		}
	}
	now := s.now()
	switch msg.MessageType {
	case mdm.Authenticate:
		if msg.Kind() != mdm.DeviceChannel {
			return plain(http.StatusBadRequest, "Authenticate comes on the device channel")
		}
		if resp := s.admit(ctx, a, msg.Identity, r.Authorization); resp != nil {
			return *resp
		}
		err := s.Store.BindAppleEnrollment(ctx, a.enr.ID, msg.EnrollmentID, store.DeviceInfo{OSVersion: msg.OSVersion, BuildVersion: msg.BuildVersion,
			ProductName: msg.ProductName, DeviceName: msg.DeviceName, Model: msg.Model, ModelName: msg.ModelName}, now)
		if errors.Is(err, store.ErrConflict) {
			return plain(http.StatusForbidden, err.Error())
		}
		if err != nil {
			return plain(http.StatusInternalServerError, err.Error())
		}
		a.enr.AppleEnrollmentID = msg.EnrollmentID
		s.emit(ctx, Event{Kind: "authenticate", Enrollment: a.enr, ChannelID: msg.Kind()})
		return Response{Status: http.StatusOK, Reason: "authenticated"}
	case mdm.TokenUpdate:
		if resp := bound(a, msg.Identity); resp != nil {
			return *resp
		}
		if resp := s.admit(ctx, a, msg.Identity, r.Authorization); resp != nil {
			return *resp
		}
		if resp := s.userChannelAllowed(ctx, a.enr, msg.Identity); resp != nil {
			return *resp
		}
		// The channel belongs to the authenticated enrollment; the device's
		// EnrollmentUserID only tells its user channels apart. A new
		// channel gets a random id (an existing one keeps its own).
		ch := &store.Channel{ID: newChannelID(), EnrollmentRef: a.enr.ID, Kind: msg.Kind(), EnrollmentUserID: msg.EnrollmentUserID,
			UserShortName: msg.UserShortName, UserLongName: msg.UserLongName, PushToken: msg.Token, PushMagic: msg.PushMagic,
			CreatedAt: now, UpdatedAt: now, LastSeenAt: now}
		if err := s.Store.PutChannel(ctx, ch); err != nil {
			return plain(http.StatusInternalServerError, err.Error())
		}
		s.emit(ctx, Event{Kind: "token-update", Enrollment: a.enr, ChannelID: ch.ID})
		return Response{Status: http.StatusOK, Reason: "token updated"}
	case mdm.CheckOut:
		if resp := bound(a, msg.Identity); resp != nil {
			return *resp
		}
		// Never 401 here: the device is leaving and cannot sign in again.
		// A stale token still has to belong to this enrollment's user.
		if r.Authorization != "" {
			if g, err := s.Auth.AuthorizeStale(ctx, a.enr.TenantID, r.Authorization); err != nil || g.User.ID != a.enr.UserID {
				return plain(http.StatusForbidden, "the access token does not belong to this enrollment")
			}
		}
		if msg.Kind() == mdm.DeviceChannel {
			if err := s.Store.EndEnrollment(ctx, a.enr.ID, "the device checked out", now); err != nil {
				return plain(http.StatusInternalServerError, err.Error())
			}
			a.enr.Status, a.enr.UnenrolledAt = store.EnrollmentUnenrolled, now
		}
		s.emit(ctx, Event{Kind: "checkout", Enrollment: a.enr, ChannelID: msg.Kind()})
		return Response{Status: http.StatusOK, Reason: "checked out"}
	case mdm.UserAuthenticate:
		// Forbidden for user enrollments; 410 tells the Mac not to ask again.
		return plain(http.StatusGone, "UserAuthenticate is not used with user enrollments")
	case mdm.GetBootstrapToken, mdm.SetBootstrapToken:
		return plain(http.StatusBadRequest, msg.MessageType+" is not available for user enrollments")
	case mdm.GetToken:
		return s.getToken(ctx, a, msg, r.Authorization)
	case mdm.DeclarativeManagement:
		return plain(http.StatusBadRequest, "declarative management is not enabled on this server")
	}
	return plain(http.StatusBadRequest, "unknown MessageType "+msg.MessageType)
}

// MaxUserChannels bounds the user channels of one enrollment. A user
// enrollment manages the person who enrolled: an iPhone or iPad has only
// the device channel, a Mac the device channel and that person's user
// channel (Apple, "User Enrollment into MDM": on macOS only the enrolling
// user is managed). Without the bound, each TokenUpdate with a new
// EnrollmentUserID stored one more channel — a command queue and a push
// target — for as long as the device kept sending them.
const MaxUserChannels = 1

// userChannelAllowed refuses a TokenUpdate that would add a user channel
// where the enrollment may have none (iOS) or has its one already (macOS):
// 403, the device keeps its existing channels. A repeated TokenUpdate of
// an existing channel is always allowed. Two concurrent first TokenUpdates
// with different EnrollmentUserIDs can both pass this check (one-time, at
// most the requests in flight); every later new one is refused.
func (s *Service) userChannelAllowed(ctx context.Context, enr *store.Enrollment, id mdm.Identity) *Response {
	if id.Kind() != mdm.UserChannel {
		return nil
	}
	if enr.Platform == enroll.IOS {
		resp := plain(http.StatusForbidden, "an iPhone or iPad user enrollment has no user channel")
		return &resp
	}
	chs, err := s.Store.Channels(ctx, enr.ID)
	if err != nil {
		resp := plain(http.StatusInternalServerError, err.Error())
		return &resp
	}
	users := 0
	for _, ch := range chs {
		if ch.Kind != mdm.UserChannel {
			continue
		}
		if ch.EnrollmentUserID == id.EnrollmentUserID {
			return nil
		}
		users++
	}
	if users >= MaxUserChannels {
		resp := plain(http.StatusForbidden, fmt.Sprintf("this enrollment has its user channel already (at most %d): a user enrollment manages only the user who enrolled", MaxUserChannels))
		return &resp
	}
	return nil
}

// lastSeenEvery limits last-seen writes to one per channel per minute.
const lastSeenEvery = time.Minute

// Command answers a PUT to the server URL: it records a result (if any)
// and hands out the next queued command.
func (s *Service) Command(ctx context.Context, r Request) Response {
	a, resp := s.identify(ctx, r)
	if resp != nil {
		return *resp
	}
	res, err := mdm.DecodeResult(r.Body)
	if err != nil {
		return plain(http.StatusBadRequest, err.Error())
	}
	if resp := bound(a, res.Identity); resp != nil {
		return *resp
	}
	// Before recording anything: a 401 makes the device sign in again and
	// repeat this very request, result included.
	if resp := s.admit(ctx, a, res.Identity, r.Authorization); resp != nil {
		return *resp
	}
	// Only the authenticated enrollment's own channels can be found, and
	// every read and write below is scoped to it again in the store.
	ch, err := s.Store.Channel(ctx, a.enr.ID, res.Kind(), res.EnrollmentUserID)
	if errors.Is(err, store.ErrNotFound) {
		return plain(http.StatusBadRequest, "no TokenUpdate has been received for this channel")
	}
	if err != nil {
		return plain(http.StatusInternalServerError, err.Error())
	}
	channel := ch.ID
	now := s.now()
	if now.Sub(ch.LastSeenAt) > lastSeenEvery {
		s.Store.TouchChannel(ctx, a.enr.ID, channel, now)
	}
	afterIdle := res.Status == mdm.Idle
	if !afterIdle {
		// What the answer reveals goes into the inventory in the same
		// transaction as the result.
		inv := func(rt string) (string, any, *store.DeviceInfo, bool) {
			section, data, f, ok := mdm.InventoryOf(rt, res.Doc)
			if !ok {
				return "", nil, nil, false
			}
			var info *store.DeviceInfo
			if f != nil {
				info = &store.DeviceInfo{OSVersion: f.OSVersion, BuildVersion: f.BuildVersion, DeviceName: f.DeviceName, Model: f.Model, ModelName: f.ModelName}
			}
			return section, data, info, true
		}
		rt, err := s.Store.RecordResult(ctx, a.enr.ID, channel, res.CommandUUID, res.Status, res.Raw, now, inv)
		switch {
		case errors.Is(err, store.ErrNotFound):
			// Not 400: a device holding such a result would resend it on
			// every poll. Acknowledge it and hand out the next command.
			s.unknownResult(ctx, a.enr, channel, res)
		case err != nil:
			return plain(http.StatusInternalServerError, err.Error())
		default:
			s.emit(ctx, Event{Kind: "result", Enrollment: a.enr, ChannelID: channel, CommandUUID: res.CommandUUID, Status: res.Status,
				RequestType: rt, Result: res.Raw})
		}
	}
	q, err := s.Store.NextCommand(ctx, a.enr.ID, channel, afterIdle, now)
	if errors.Is(err, store.ErrNotFound) {
		return Response{Status: http.StatusOK, Reason: "no command"}
	}
	if err != nil {
		return plain(http.StatusInternalServerError, err.Error())
	}
	return Response{Status: http.StatusOK, ContentType: "application/xml; charset=utf-8", Body: q.Payload, Reason: "command " + q.UUID}
}

// newChannelID names a new channel: random, so that nothing a device sends
// can name (or collide with) a channel.
func newChannelID() string {
	t, _ := opaquetoken.New()
	return "ch_" + strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(t))[:24]
}
