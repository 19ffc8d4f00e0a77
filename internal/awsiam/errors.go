package awsiam

import (
	"errors"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
)

// Class says how the operator reacts to an IAM error.
type Class int

const (
	// Retryable errors (throttling, 5xx, network) go back to the rate-limited queue.
	Retryable Class = iota
	// NotFound means the entity does not exist.
	NotFound
	// Terminal errors (malformed policy, limits, invalid input, access denied)
	// do not improve by retrying the same request: they are reported in status
	// and retried only on the next spec change or sync period.
	Terminal
)

func (c Class) String() string {
	switch c {
	case NotFound:
		return "NotFound"
	case Terminal:
		return "Terminal"
	default:
		return "Retryable"
	}
}

var terminalCodes = map[string]bool{
	"MalformedPolicyDocument":   true,
	"LimitExceeded":             true,
	"InvalidInput":              true,
	"ValidationError":           true,
	"UnmodifiableEntity":        true,
	"PolicyNotAttachable":       true,
	"PolicyEvaluation":          true,
	"DeleteConflict":            true,
	"AccessDenied":              true,
	"AccessDeniedException":     true,
	"UnauthorizedOperation":     true,
	"InvalidClientTokenId":      true,
	"SignatureDoesNotMatch":     true,
	"OpenIdIdpCommunicationErr": true,
}

// classifiedError carries a class that overrides the one its AWS code
// implies.
type classifiedError struct {
	err   error
	class Class
}

func (e classifiedError) Error() string { return e.err.Error() }
func (e classifiedError) Unwrap() error { return e.err }

func withClass(err error, c Class) error {
	if err == nil {
		return nil
	}
	return classifiedError{err: err, class: c}
}

// AsTerminal marks err as terminal whatever its AWS code says: retrying the
// same request cannot fix it.
func AsTerminal(err error) error { return withClass(err, Terminal) }

// AsRetryable marks err as retryable whatever its AWS code says (for example
// NoSuchEntity that IAM's eventual consistency can cause right after a create).
func AsRetryable(err error) error { return withClass(err, Retryable) }

// Classify returns the class of an error returned by the IAM client.
func Classify(err error) Class {
	if err == nil {
		return Retryable
	}
	var c classifiedError
	if errors.As(err, &c) {
		return c.class
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		if api.ErrorCode() == "NoSuchEntity" {
			return NotFound
		}
		if retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err).Bool() {
			return Retryable
		}
		var resp *awshttp.ResponseError
		if errors.As(err, &resp) && resp.HTTPStatusCode() >= http.StatusInternalServerError {
			return Retryable
		}
		// A concurrent change or a create racing an earlier one: observe again.
		if api.ErrorCode() == "ConcurrentModification" || api.ErrorCode() == "EntityAlreadyExists" {
			return Retryable
		}
		if terminalCodes[api.ErrorCode()] || api.ErrorFault() == smithy.FaultClient {
			return Terminal
		}
	}
	return Retryable
}

// IsNotFound reports whether err says the IAM entity does not exist.
func IsNotFound(err error) bool { return err != nil && Classify(err) == NotFound }

// Message is the AWS error message (code and text) for status conditions, or
// the error text when it is not an AWS API error.
func Message(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode() + ": " + api.ErrorMessage()
	}
	return err.Error()
}
