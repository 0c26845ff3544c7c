package sqlstore

import (
	"context"
	"strconv"
	"time"

	"github.com/pomona-mdm/pomona/mdm"
	"github.com/pomona-mdm/pomona/store"
)

const microsPerDay = int64(24 * time.Hour / time.Microsecond)

func (s *Store) Dashboard(ctx context.Context, since, idleBefore time.Time) (*store.Dashboard, error) {
	d := &store.Dashboard{}
	rows, err := s.r.QueryContext(ctx, `SELECT platform, os_version, COUNT(*) FROM enrollments WHERE status = ?
		GROUP BY platform, os_version ORDER BY platform, os_version`, store.EnrollmentEnrolled)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var v store.VersionCount
		if err := rows.Scan(&v.Platform, &v.OSVersion, &v.Count); err != nil {
			rows.Close()
			return nil, err
		}
		d.Enrolled = append(d.Enrolled, v)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}

	rows, err = s.r.QueryContext(ctx, `SELECT enrolled_at / `+strconv.FormatInt(microsPerDay, 10)+` AS day, COUNT(*) FROM enrollments
		WHERE enrolled_at >= ? GROUP BY day ORDER BY day`, toMicros(since))
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var day int64
		var n int
		if err := rows.Scan(&day, &n); err != nil {
			rows.Close()
			return nil, err
		}
		d.PerDay = append(d.PerDay, store.DayCount{Day: time.UnixMicro(day * microsPerDay).UTC(), Count: n})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}

	for _, q := range []struct {
		dst  *int
		sql  string
		args []any
	}{
		{&d.Pending, `SELECT COUNT(*) FROM queue WHERE status IN (?, ?, ?)`, []any{store.QueueQueued, store.QueueSent, mdm.NotNow}},
		{&d.PendingDevices, `SELECT COUNT(*) FROM enrollments WHERE status = ? AND last_seen_at < ?`, []any{store.EnrollmentEnrolled, toMicros(idleBefore)}},
		{&d.FailedWebhooks, `SELECT COUNT(*) FROM webhook_deliveries WHERE status = ?`, []any{store.DeliveryFailed}},
		{&d.EnrollmentsOpen, `SELECT COUNT(*) FROM enrollments WHERE status = ?`, []any{store.EnrollmentPending}},
	} {
		if err := s.r.QueryRowContext(ctx, q.sql, q.args...).Scan(q.dst); err != nil {
			return nil, err
		}
	}

	errs, err := collect(ctx, s.r, func(sc scanner) (*store.CommandError, error) {
		var e store.CommandError
		var at int64
		if err := sc.Scan(&e.DeviceID, &e.RequestType, &e.CommandUUID, &e.Status, &at); err != nil {
			return nil, err
		}
		e.At = fromMicros(at)
		return &e, nil
	}, `SELECT ch.enrollment_ref, c.request_type, c.uuid, q.status, q.updated_at FROM queue q
		JOIN commands c ON c.uuid = q.command_uuid JOIN channels ch ON ch.id = q.channel_id
		WHERE q.status IN (?, ?) ORDER BY q.updated_at DESC LIMIT 10`, mdm.Error, mdm.CommandFormatError)
	if err != nil {
		return nil, err
	}
	d.RecentErrors = errs
	return d, nil
}
