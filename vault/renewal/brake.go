package renewal

import "time"

// The brake stops a renewal loop whatever causes it (a planning bug, a CA
// that issues ever shorter certificates, a policy that renews every few
// seconds): a certificate renewed automatically BrakeRenewals times within
// a tenth of its lifetime (at least BrakeMinWindow) is not renewed
// automatically again until a person acts. A policy renews a version once
// per lifetime, at a point that is at least a day or 1 % into it, so only
// a loop or a policy that renews at 1-3 % of the lifetime reaches it.
const (
	// BrakeRenewals is how many automatic renewals a certificate may have
	// within the brake's window; the next one is halted.
	BrakeRenewals = 3
	// BrakeMinWindow is the shortest window: for a version valid for
	// minutes, a tenth of its lifetime would be seconds, and renewals a
	// few seconds apart are a loop too.
	BrakeMinWindow = time.Minute
)

// BrakeWindow returns the brake's window for a version valid from nbf to
// exp: a tenth of its lifetime, at least BrakeMinWindow.
func BrakeWindow(nbf, exp time.Time) time.Duration {
	// Sub saturates instead of overflowing.
	return max(exp.Sub(nbf)/10, BrakeMinWindow)
}

// Halt reports whether a certificate whose current version is valid from
// nbf to exp must not be renewed automatically at now, given the times of
// its last automatic renewals (any order): true when BrakeRenewals of them
// lie within BrakeWindow before now. Renewals recorded after now (a clock
// that went back) count as within it.
func Halt(recent []time.Time, nbf, exp, now time.Time) bool {
	from := now.Add(-BrakeWindow(nbf, exp))
	n := 0
	for _, r := range recent {
		if !r.Before(from) {
			n++
		}
	}
	return n >= BrakeRenewals
}
