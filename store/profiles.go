package store

import (
	"context"
	"time"
)

// Group sources. A static group's members are managed in Pomona; the
// implicit "all users" group of a tenant holds every user of it (no
// member rows). A later identity-provider sync will add its own source,
// whose membership is read-only here.
const (
	GroupStatic   = "static"
	GroupAllUsers = "all"
)

// AllUsersName is the name of a tenant's implicit group.
const AllUsersName = "All users"

// Group is a set of a tenant's users; their devices follow them.
type Group struct {
	ID        string
	TenantID  string
	Name      string // unique per tenant
	Source    string // GroupStatic, GroupAllUsers
	Members   int    // member count (GroupAllUsers: the tenant's users)
	CreatedAt time.Time
	UpdatedAt time.Time
}

// ConfigProfile is a configuration profile in a tenant's library.
type ConfigProfile struct {
	ID         string
	TenantID   string
	Identifier string // PayloadIdentifier, unique per tenant
	Name       string // PayloadDisplayName or the identifier
	// Platforms it applies to (iOS, macOS); empty: both.
	Platforms []string
	MinOS     string // "" or a dotted version
	// Sign: Pomona signs it with its profile signer at delivery.
	Sign bool
	// Version is the current version; Hash its content hash (of the
	// stored plist, placeholders kept).
	Version      int
	Hash         string
	PayloadTypes []string
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// ProfileVersion is one uploaded version of a profile.
type ProfileVersion struct {
	ProfileID string
	Version   int
	Plist     []byte // XML, placeholders kept
	Hash      string
	Signed    bool // the upload was signed
	CreatedAt time.Time
}

// Assignment puts a profile on a group's devices (or keeps it off them:
// Exclude wins over any include).
type Assignment struct {
	ProfileID string
	GroupID   string
	Exclude   bool
	CreatedAt time.Time
}

// CandidateProfile is a profile assigned to (or excluded from) one of a
// user's groups, with its current version: the reconciler's input.
type CandidateProfile struct {
	ProfileID  string
	Identifier string
	Version    int
	Platforms  []string
	MinOS      string
	Sign       bool
	Plist      []byte
	Included   bool
	Excluded   bool
}

// ProfileItem is the state of one profile on one enrollment.
type ProfileItem struct {
	DeviceID     string
	ProfileID    string
	Identifier   string
	State        string // reconcile.Pending, Installing, Installed, Failed, Removing
	Version      int
	Hash         string // content hash after substitution
	CommandUUID  string
	Acknowledged bool
	Attempts     int
	Error        string // Apple's error chain, or why the profile cannot be made
	NextRetry    time.Time
	UpdatedAt    time.Time
}

// ProfileDevice is a ProfileItem with its device, for status pages.
type ProfileDevice struct {
	ProfileItem
	UserID     string
	UserEmail  string // the device's user's email
	Platform   string
	DeviceName string
}

// DirtyEnrollment is an enrollment the reconciler must look at.
type DirtyEnrollment struct {
	DeviceID string
	// Verify: send ProfileList (periodic verification or after installs).
	Verify bool
	// Gen counts markings; FinishDirty compares it to see later ones.
	Gen int64
}

// GroupStore keeps groups and their members.
type GroupStore interface {
	// CreateGroup stores g (ID set by the caller); a name taken in the
	// tenant gives ErrConflict, an unknown tenant ErrNotFound.
	CreateGroup(ctx context.Context, g *Group) error
	// AllUsersGroup returns the tenant's implicit group, creating it on
	// first use (ErrNotFound: no such tenant).
	AllUsersGroup(ctx context.Context, tenantID string, now time.Time) (*Group, error)
	Group(ctx context.Context, id string) (*Group, error)
	Groups(ctx context.Context, tenantID string) ([]Group, error)
	// RenameGroup renames a static group (ErrConflict: name taken).
	RenameGroup(ctx context.Context, id, name string, now time.Time) (*Group, error)
	// DeleteGroup deletes the group with its memberships and assignments;
	// the devices that may lose or gain profiles are marked dirty.
	DeleteGroup(ctx context.Context, id string, now time.Time) error
	// AddGroupMembers adds users (of the group's tenant: another tenant's
	// user gives ErrNotFound and adds nothing) and marks their enrolled
	// devices dirty; members already in are skipped. Returns how many were
	// added.
	AddGroupMembers(ctx context.Context, groupID string, userIDs []string, now time.Time) (int, error)
	// RemoveGroupMember removes one member and marks their devices dirty
	// (ErrNotFound: not a member).
	RemoveGroupMember(ctx context.Context, groupID, userID string, now time.Time) error
	// GroupMembers lists members by email after the given email.
	GroupMembers(ctx context.Context, groupID, after string, limit int) ([]User, error)
	// UserGroups lists the static groups a user is in.
	UserGroups(ctx context.Context, userID string) ([]Group, error)
}

// ProfileStore keeps the profile library, assignments and per-device
// state, and the reconciler's queue of enrollments to look at. Every
// change that can alter a device's desired set marks exactly the enrolled
// devices it concerns dirty in the same transaction, so the reconciler's
// work follows what changed, never the fleet's size.
type ProfileStore interface {
	// CreateProfile stores p with its first version v (IDs set by the
	// caller). An identifier taken in the tenant gives ErrConflict.
	CreateProfile(ctx context.Context, p *ConfigProfile, v *ProfileVersion) error
	// AddProfileVersion stores v as the next version of its profile
	// (v.Version is set), makes it current and marks the devices the
	// profile is assigned to dirty. Returns the updated profile.
	AddProfileVersion(ctx context.Context, v *ProfileVersion) (*ConfigProfile, error)
	ConfigProfile(ctx context.Context, id string) (*ConfigProfile, error)
	ConfigProfiles(ctx context.Context, tenantID string) ([]ConfigProfile, error)
	ProfileVersions(ctx context.Context, profileID string) ([]ProfileVersion, error)
	// Assign adds or changes an assignment; the profile and the group
	// must be of one tenant (ErrNotFound otherwise). The group's devices
	// are marked dirty.
	Assign(ctx context.Context, a *Assignment, now time.Time) error
	// Unassign removes it (ErrNotFound: none) and marks the devices dirty.
	Unassign(ctx context.Context, profileID, groupID string, now time.Time) error
	Assignments(ctx context.Context, profileID string) ([]Assignment, error)

	// CandidateProfiles lists the profiles assigned to or excluded from
	// the groups of the enrollment's user (the tenant's all-users group
	// included), with their current versions.
	CandidateProfiles(ctx context.Context, enrollmentID string) ([]CandidateProfile, error)
	// ProfileItems lists an enrollment's items.
	ProfileItems(ctx context.Context, enrollmentID string) ([]ProfileItem, error)
	// PutProfileItem stores (inserts or replaces) an item.
	PutProfileItem(ctx context.Context, it *ProfileItem) error
	// DeleteProfileItem forgets an item (absent: not an error) and, in the
	// same transaction, revokes the user certificates issued through that
	// profile to that enrollment (the profile left the device). The batch's
	// DelItems in ApplyReconcile do the same.
	DeleteProfileItem(ctx context.Context, enrollmentID, profileID string) error
	// PutProfileItemForCommand replaces the enrollment's item for
	// it.ProfileID with it only while the stored item's command is still
	// commandUUID, in one conditional statement: a device's answer to an
	// older command read the item, and a reconciler pass may have replaced
	// it since (a new version, a new CommandUUID) — that newer item stays.
	// ErrNotFound: no item, or one carrying another command.
	PutProfileItemForCommand(ctx context.Context, it *ProfileItem, commandUUID string) error
	// FailProfileItemForCommand is PutProfileItemForCommand for an item
	// entering state it.State (the profile engine's failed) because of
	// commandUUID: it writes only while the stored item still carries
	// commandUUID and is not in it.State already, in the same one
	// conditional statement, so that of several copies of one answer
	// handled at once (a device's replay beside the original, two
	// instances) exactly one records the failure and the others see
	// ErrNotFound (as does an answer to a superseded command).
	FailProfileItemForCommand(ctx context.Context, it *ProfileItem, commandUUID string) error
	// DeleteProfileItemForCommand is DeleteProfileItem only while the
	// item's command is still commandUUID (as PutProfileItemForCommand);
	// ErrNotFound otherwise, and then no certificate is revoked.
	DeleteProfileItemForCommand(ctx context.Context, enrollmentID, profileID, commandUUID string) error
	// ProfileStatus counts a profile's items by state and lists those in
	// state (all when ""), by enrollment id after after, at most limit.
	ProfileStatus(ctx context.Context, profileID, state, after string, limit int) (map[string]int, []ProfileDevice, error)

	// MarkDirty queues enrollments for the reconciler at due (an earlier
	// due stands); verify asks for a ProfileList.
	MarkDirty(ctx context.Context, enrollmentIDs []string, due time.Time, verify bool) error
	// ClaimDirty claims up to limit due enrollments for holder until
	// now+lease: no other holder gets them meanwhile (on PostgreSQL too:
	// the claim is one serializable transaction). They come earliest due
	// first, and among equal dues by enrollment id (a batch is then a
	// contiguous range of ids: its writes touch neighbouring pages).
	ClaimDirty(ctx context.Context, holder string, now time.Time, lease time.Duration, limit int) ([]DirtyEnrollment, error)
	// FinishDirty ends holder's claim: with next zero the entry goes, else
	// it is due again at next (verify as given) — unless it was marked
	// again since the claim (Gen changed), which keeps it due as marked.
	FinishDirty(ctx context.Context, d DirtyEnrollment, holder string, next time.Time, verify bool) error
	// DirtyCount is the number of queued enrollments due by now (metrics,
	// tests).
	DirtyCount(ctx context.Context, now time.Time) (int, error)

	// ReconcileInputs reads what planning needs for a claimed batch of
	// enrollments in a few set-based queries (no per-device round trips):
	// each enrollment with its device channel, user, tenant, candidate
	// profiles (resolved once per distinct set of groups, as
	// CandidateProfiles gives them) and items. Enrollments that no longer
	// exist are left out. At most a few thousand ids per call.
	ReconcileInputs(ctx context.Context, enrollmentIDs []string) ([]ReconcileInput, error)
	// ClaimReconcile is ClaimDirty (same claims, same order, same
	// guarantees) and then ReconcileInputs of the claimed ids: what one
	// reconciler pass starts with. A backend may read the inputs in the
	// claim's own transaction (SQLite: on the writer's warm page cache);
	// inputs then come from the same snapshot as the claims. No claims:
	// both empty; an error: nothing was claimed, or the claims expire
	// after the lease as any unfinished claim does.
	ClaimReconcile(ctx context.Context, holder string, now time.Time, lease time.Duration, limit int) ([]DirtyEnrollment, []ReconcileInput, error)
	// ApplyReconcile writes a planned batch in ONE transaction: commands
	// and their queue rows, the SCEP challenges filled into them, items
	// put and deleted, and the claims finished (each as FinishDirty).
	// Either all of it is durable or nothing is. Before writing, the same
	// transaction checks that b.Holder still holds every claim in
	// b.Finished (and, where the backend has row locks, locks them): a
	// pass that outlived its lease may have lost them to another holder,
	// who plans those enrollments anew, and writing both would deliver
	// twice. ErrClaimLost then, and nothing is written.
	ApplyReconcile(ctx context.Context, b *ReconcileBatch) error
	// ProfileItemForCommand finds the enrollment's item whose current
	// command is uuid (ErrNotFound: none). A command shared by many
	// devices (identical rendered profile) has one item per device.
	ProfileItemForCommand(ctx context.Context, enrollmentID, commandUUID string) (*ProfileItem, error)
}

// ReconcileInput is what planning one enrollment needs.
//
// Only what planning, the push and the profile webhooks read is filled
// (issue 15 item 8: 1,000 of these per batch, read in a few statements):
// Enrollment's ID, TenantID, UserID, Platform, OSVersion, Status and
// AppleEnrollmentID; Channel's ID, DeviceID, Kind, PushToken, PushMagic
// and PushDead; User's ID, TenantID, Email, ManagedAppleID and Name;
// Tenant's ID and Name. Everything else is zero.
type ReconcileInput struct {
	Enrollment Enrollment
	// Channel is the device channel (nil: none yet; its first
	// TokenUpdate marks the enrollment again).
	Channel    *Channel
	User       User
	Tenant     Tenant
	Candidates []CandidateProfile // by identifier; shared read-only between enrollments of one group set
	Items      []ProfileItem      // by identifier
}

// BatchQueueEntry queues one command of a batch for one channel. Vars
// are the channel's values for a template command (QueuedCommand.Vars;
// "" for a ready one).
type BatchQueueEntry struct{ ChannelID, CommandUUID, Vars string }

// NewProfileChallenge is a SCEP challenge filled into a profile.
type NewProfileChallenge struct {
	Challenge SCEPChallenge
	ProfileID string
	// CommandUUID is the InstallProfile that carries it; the certificate
	// it issues records it (ProfileResultStore.AcknowledgeProfileItem).
	CommandUUID string
}

// FinishedClaim ends one claim of a batch (see FinishDirty).
type FinishedClaim struct {
	Dirty  DirtyEnrollment
	Next   time.Time
	Verify bool
}

// DeletedItem names an item to forget.
type DeletedItem struct{ DeviceID, ProfileID string }

// ReconcileBatch is everything one reconciler pass writes.
type ReconcileBatch struct {
	Holder string
	// Commands are stored once each; Queue queues them, a channel's
	// entries in the order its device gets them. A command whose content
	// is identical for many devices (no per-device values) is one row
	// queued for each of their channels, as a bulk command is.
	Commands   []CommandRecord
	Queue      []BatchQueueEntry
	Challenges []NewProfileChallenge
	PutItems   []ProfileItem
	DelItems   []DeletedItem
	Finished   []FinishedClaim
}

// ChallengeProfile is the kind of a SCEP challenge filled into a
// configuration profile's SCEP payload at delivery: it issues a user
// certificate (ProfileCert), never an MDM identity.
const ChallengeProfile = "profile"

// ProfileCert is a user certificate Pomona's CA issued through a
// profile's SCEP payload.
type ProfileCert struct {
	Serial    string // hex
	DeviceID  string
	ProfileID string
	Subject   string
	Email     string // the rfc822Name SAN
	SHA256    []byte
	NotBefore time.Time
	NotAfter  time.Time
	IssuedAt  time.Time
	RevokedAt time.Time
	RevokedBy string
}

// ProfileCertStore keeps the one-time challenges of profiles' SCEP
// payloads and the certificates they issued.
type ProfileCertStore interface {
	// AddProfileChallenge stores ch (Kind ChallengeProfile) for
	// enrollment ch.EnrollmentID and profileID.
	AddProfileChallenge(ctx context.Context, ch *SCEPChallenge, profileID string) error
	// ProfileChallenge returns a profile challenge and its profile
	// (ErrNotFound: none, or of another kind).
	ProfileChallenge(ctx context.Context, hash []byte) (*SCEPChallenge, string, error)
	// ConsumeProfileChallenge marks the challenge used and records c, in
	// one transaction: ErrChallengeUsed, ErrExpired, ErrNotFound, or
	// ErrConflict when c is for another enrollment or profile.
	ConsumeProfileChallenge(ctx context.Context, hash []byte, now time.Time, c *ProfileCert) error
	// ProfileCerts lists an enrollment's certificates, newest first.
	ProfileCerts(ctx context.Context, enrollmentID string) ([]ProfileCert, error)
	// RevokeProfileCert marks one of the enrollment's certificates revoked
	// (ErrNotFound: not the enrollment's; revoking twice keeps the first).
	RevokeProfileCert(ctx context.Context, enrollmentID, serial, by string, now time.Time) error
}
