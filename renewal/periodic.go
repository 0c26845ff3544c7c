package renewal

import (
	"context"
	"crypto/x509"
	"time"

	"github.com/pomona-mdm/pomona/jobs"
	"github.com/pomona-mdm/pomona/mdmservice"
	"github.com/pomona-mdm/pomona/pki"
	"github.com/pomona-mdm/pomona/store"
)

// Every is how often one instance of a cluster runs the job.
const Every = time.Hour

// Periodic is the job for jobs.Runner.Run: a pass every hour on one
// instance of a cluster (lease "identity-renewal"), the first a minute
// after start (so that frequent restarts do not starve it).
func (j *Job) Periodic() jobs.Job {
	return jobs.Job{Lease: "identity-renewal", LeaseTTL: Every - 5*time.Minute, First: time.Minute, Interval: Every,
		Run: func(ctx context.Context) {
			if _, err := j.RunLogged(ctx); err != nil && ctx.Err() == nil {
				j.Log.Warn("identity renewal pass failed", "err", err)
			}
		}}
}

// RunLogged is Run with a log line when the pass changed anything (the
// periodic runner, and tests with a moved clock).
func (j *Job) RunLogged(ctx context.Context) (Report, error) {
	rep, err := j.Run(ctx)
	if rep.Queued > 0 || rep.Failed > 0 {
		j.Log.Info("identity renewal pass", "queued", rep.Queued, "failed", rep.Failed)
	}
	return rep, err
}

// DeviceEvent takes the MDM channel's events: a result of an
// InstallProfile may be a renewal's (see Result).
func (j *Job) DeviceEvent(ctx context.Context, e mdmservice.Event) {
	if e.Kind == "result" && e.RequestType == "InstallProfile" {
		j.Result(ctx, e.CommandUUID, e.Status, e.Result)
	}
}

// Issued hears that SCEP issued cert to e's device, renewing the identity
// with serial renews (enroll.Service.Renewed): it is counted and logged.
func (j *Job) Issued(ctx context.Context, e *store.Enrollment, cert *x509.Certificate, renews string) {
	if j.Metrics != nil {
		j.Metrics.Renewals.WithLabelValues("issued").Inc()
	}
	j.Log.Info("identity renewed", "device", e.ID, "enrollment_id", e.AppleEnrollmentID, "serial", pki.SerialHex(cert), "renews", renews,
		"not_after", cert.NotAfter)
}
