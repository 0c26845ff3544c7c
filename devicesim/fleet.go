package devicesim

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pomona-mdm/pomona/push/apnsstub"
)

// Fleet keeps simulated devices enrolled and answering: each device waits
// for a push through the local APNs stand-in the server sends to, then
// checks in and answers every queued command, as a real device does.
type Fleet struct {
	Server  string // Pomona's public URL (discovery is asked there)
	RootCAs *x509.CertPool
	APNs    *apnsstub.Server
	// Poll, when set, also checks in every Poll without a push (a device
	// that missed one).
	Poll time.Duration

	mu      sync.Mutex
	devices []*Device
	wg      sync.WaitGroup

	enrolled, pushes, answered, errs atomic.Int64
	lastErr                          atomic.Value
}

// FleetStats counts what the fleet did.
type FleetStats struct {
	Enrolled, Pushes, Answered, Errors int64
	LastError                          string
}

// Stats returns the counters.
func (f *Fleet) Stats() FleetStats {
	s := FleetStats{Enrolled: f.enrolled.Load(), Pushes: f.pushes.Load(), Answered: f.answered.Load(), Errors: f.errs.Load()}
	s.LastError, _ = f.lastErr.Load().(string)
	return s
}

func (f *Fleet) fail(err error) {
	f.errs.Add(1)
	f.lastErr.Store(err.Error())
}

// Enroll runs one device of family through the whole enrollment (the Mac
// also opens its user channel) and keeps it answering until ctx ends.
func (f *Fleet) Enroll(ctx context.Context, family string, c Credentials) (*Device, error) {
	d, err := New(Options{ModelFamily: family, RootCAs: f.RootCAs})
	if err != nil {
		return nil, err
	}
	if _, err := d.Enroll(ctx, f.Server, c); err != nil {
		d.Close()
		return nil, err
	}
	steps := []func(context.Context) error{d.Authenticate, func(ctx context.Context) error { return d.TokenUpdate(ctx, false) }}
	if family == "Mac" {
		steps = append(steps, func(ctx context.Context) error { return d.TokenUpdate(ctx, true) })
	}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			d.Close()
			return nil, err
		}
	}
	f.mu.Lock()
	f.devices = append(f.devices, d)
	f.mu.Unlock()
	f.enrolled.Add(1)
	f.wg.Add(1)
	go f.serve(ctx, d)
	return d, nil
}

// Devices returns the enrolled devices.
func (f *Fleet) Devices() []*Device {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*Device(nil), f.devices...)
}

// serve answers pushes until ctx ends.
func (f *Fleet) serve(ctx context.Context, d *Device) {
	defer f.wg.Done()
	pushes := f.APNs.Listen(d.MDM.PushToken)
	defer f.APNs.Forget(d.MDM.PushToken)
	var userPushes <-chan apnsstub.Push
	if d.MDM.UserPushToken != nil {
		userPushes = f.APNs.Listen(d.MDM.UserPushToken)
		defer f.APNs.Forget(d.MDM.UserPushToken)
	}
	var tick <-chan time.Time
	if f.Poll > 0 {
		t := time.NewTicker(f.Poll)
		defer t.Stop()
		tick = t.C
	}
	for {
		user := false
		select {
		case <-ctx.Done():
			return
		case <-pushes:
			f.pushes.Add(1)
		case <-userPushes:
			f.pushes.Add(1)
			user = true
		case <-tick:
		}
		if err := f.drain(ctx, d, user); err != nil && ctx.Err() == nil {
			f.fail(fmt.Errorf("%s: %w", d.MDM.EnrollmentID, err))
		}
		// The device closes its connection between wake-ups, as iOS does.
		d.Close()
	}
}

// drain checks in and answers commands until the queue is empty.
func (f *Fleet) drain(ctx context.Context, d *Device, user bool) error {
	cmd, err := d.Poll(ctx, nil, user)
	for err == nil && cmd != nil {
		f.answered.Add(1)
		cmd, err = d.Poll(ctx, d.Process(ctx, cmd), user)
	}
	var re *ReauthError
	if errors.As(err, &re) {
		return fmt.Errorf("the server asks the person to sign in again (%s); a simulated device cannot do that unattended", re.LoginURL)
	}
	return err
}

// Wait waits for every device's loop to end (after ctx is done).
func (f *Fleet) Wait() { f.wg.Wait() }

// CheckOutAll tells the server every device left management.
func (f *Fleet) CheckOutAll(ctx context.Context) (int, error) {
	var errs []error
	n := 0
	for _, d := range f.Devices() {
		if err := d.CheckOut(ctx); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
		d.Close()
	}
	return n, errors.Join(errs...)
}
