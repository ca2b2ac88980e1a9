package solver

import "errors"

// Sentinel errors of the solver package. Each says what the operator should
// check; errors.Is finds them under the context this package wraps around
// them (the name, the zone, the server or the program).
var (
	// ErrRefused means the DNS server answered REFUSED to an update: the
	// key is not granted this name and type by the zone's update-policy
	// (or allow-update), or the server does not accept updates at all.
	ErrRefused = errors.New("solver: the server refused the update: check the TSIG key and the zone's update-policy (it must grant the key TXT records at the name)")
	// ErrBadSig means the server could not verify the update's TSIG
	// signature (BADSIG): the secret or the algorithm differs from the
	// server's copy of the key.
	ErrBadSig = errors.New("solver: the server rejected the TSIG signature (BADSIG): check the TSIG key's secret and algorithm against the server's key")
	// ErrBadKey means the server knows no TSIG key of that name and
	// algorithm (BADKEY).
	ErrBadKey = errors.New("solver: the server does not know the TSIG key (BADKEY): check the key's name and algorithm, and that the server's configuration includes the key")
	// ErrBadTime means the server rejected the TSIG time (BADTIME): the
	// clocks of the vault and the DNS server are more than 5 minutes apart.
	ErrBadTime = errors.New("solver: the server rejected the TSIG time (BADTIME): check that the vault's and the DNS server's clocks agree")
	// ErrNotAuth means the server is not authoritative for the zone
	// (NOTAUTH without a TSIG error).
	ErrNotAuth = errors.New("solver: the server is not authoritative for the zone (NOTAUTH): set Nameserver to a primary of the zone and check Zone")
	// ErrNotZone means the record's name is not inside the update's zone
	// (NOTZONE).
	ErrNotZone = errors.New("solver: the name is not in the zone (NOTZONE): check Zone")
	// ErrNoZone means zone discovery found no SOA for the name or any of
	// its parents at the nameserver.
	ErrNoZone = errors.New("solver: the nameserver is not authoritative for any zone holding the name: set Zone, or set Nameserver to the zone's primary")
	// ErrNotPropagated means WaitPropagation's context ended before every
	// resolver answered the TXT value.
	ErrNotPropagated = errors.New("solver: the TXT record has not reached every resolver")
	// ErrBadKeyFile means ParseTSIGKey could not read a key from the data.
	ErrBadKeyFile = errors.New("solver: not a BIND TSIG key file (want: key \"name\" { algorithm hmac-sha256; secret \"base64\"; };)")
	// ErrConfig means a solver's configuration cannot work as written.
	ErrConfig = errors.New("solver: invalid configuration")
	// ErrProgram means an Exec program failed (see ExecError).
	ErrProgram = errors.New("solver: the challenge program failed")
)

// IsPermanent reports whether err will recur unchanged if the same call is
// retried: a configuration, key or policy problem that an operator has to
// fix (a clock included). Network errors, timeouts, SERVFAIL and failed programs are not
// permanent.
func IsPermanent(err error) bool {
	for _, e := range []error{ErrRefused, ErrBadSig, ErrBadKey, ErrBadTime, ErrNotAuth, ErrNotZone, ErrNoZone, ErrBadKeyFile, ErrConfig} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}
