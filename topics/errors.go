package topics

import (
	"errors"
	"fmt"
)

// The reasons a decoder refuses its input. Test with errors.Is.
var (
	// ErrMalformed: the bytes are not a valid encoding of the type.
	ErrMalformed = errors.New("malformed")
	// ErrUnknownVersion: the schema's major version is not one this build knows.
	ErrUnknownVersion = errors.New("unknown schema version")
	// ErrTooLarge: a body, payload or count is over the configured limit.
	ErrTooLarge = errors.New("too large")
	// ErrTooDeep: containers nest deeper than MaxNesting.
	ErrTooDeep = errors.New("nested too deeply")
)

// DecodeError is returned by every decoder of this package. Reason is one
// of ErrMalformed, ErrUnknownVersion, ErrTooLarge or ErrTooDeep.
type DecodeError struct {
	What   string // what was being decoded: "envelope", "frame", ...
	Reason error  // ErrMalformed, ErrUnknownVersion, ErrTooLarge or ErrTooDeep
	Detail string // one line for a human
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("topics: decode %s: %v: %s", e.What, e.Reason, e.Detail)
}

// Unwrap lets errors.Is match the Reason.
func (e *DecodeError) Unwrap() error { return e.Reason }

func malformed(what, format string, args ...any) error {
	return &DecodeError{What: what, Reason: ErrMalformed, Detail: fmt.Sprintf(format, args...)}
}

func tooLarge(what, format string, args ...any) error {
	return &DecodeError{What: what, Reason: ErrTooLarge, Detail: fmt.Sprintf(format, args...)}
}

// ReasonOf returns a short word for err's reason, for metrics and dead-letter
// records: "malformed", "unknown-version", "too-large", "too-deep" or "other".
func ReasonOf(err error) string {
	switch {
	case errors.Is(err, ErrMalformed):
		return "malformed"
	case errors.Is(err, ErrUnknownVersion):
		return "unknown-version"
	case errors.Is(err, ErrTooLarge):
		return "too-large"
	case errors.Is(err, ErrTooDeep):
		return "too-deep"
	}
	return "other"
}
