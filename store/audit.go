package store

import (
	"context"
	"time"
)

// AuditEntry is one admin action.
type AuditEntry struct {
	ID     int64
	At     time.Time
	Actor  string // key:<id> or bootstrap
	Action string // e.g. "POST /api/v1/users"
	Target string // the object the path names, if any
	Status int    // HTTP status of the outcome
	Remote string
}

// AuditFilter selects entries; zero fields match everything.
type AuditFilter struct {
	Actor, Action, Target string
	Before                int64 // ID cursor
	Limit                 int
}

// AuditStore keeps the audit log.
type AuditStore interface {
	AppendAudit(ctx context.Context, e *AuditEntry) error
	Audit(ctx context.Context, f AuditFilter) ([]AuditEntry, error)
}
