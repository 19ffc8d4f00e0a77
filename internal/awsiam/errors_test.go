package awsiam

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

func responseError(status int, err error) error {
	return &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}}, Err: err}}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Class
	}{
		{name: "no such entity", err: &types.NoSuchEntityException{Message: new("gone")}, want: NotFound},
		{name: "malformed policy", err: &types.MalformedPolicyDocumentException{Message: new("bad")}, want: Terminal},
		{name: "limit exceeded", err: &types.LimitExceededException{Message: new("too many")}, want: Terminal},
		{name: "invalid input", err: &types.InvalidInputException{Message: new("bad")}, want: Terminal},
		{name: "throttling", err: responseError(400, &smithy.GenericAPIError{Code: "Throttling", Message: "slow down"}), want: Retryable},
		{name: "5xx", err: responseError(503, &smithy.GenericAPIError{Code: "ServiceUnavailable", Message: "x", Fault: smithy.FaultServer}), want: Retryable},
		{name: "service failure", err: &types.ServiceFailureException{Message: new("x")}, want: Retryable},
		{name: "concurrent modification", err: &types.ConcurrentModificationException{Message: new("x")}, want: Retryable},
		{name: "unknown client fault", err: &smithy.GenericAPIError{Code: "Weird", Fault: smithy.FaultClient}, want: Terminal},
		{name: "network error", err: errors.New("dial tcp: connection refused"), want: Retryable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.err); got != tt.want {
				t.Errorf("Classify() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMessage(t *testing.T) {
	err := &types.MalformedPolicyDocumentException{Message: new("Syntax errors in policy.")}
	if got := Message(err); got != "MalformedPolicyDocument: Syntax errors in policy." {
		t.Errorf("Message() = %q", got)
	}
}

func TestAsTerminal(t *testing.T) {
	err := AsTerminal(&types.NoSuchEntityException{Message: new("policy not found")})
	if Classify(err) != Terminal {
		t.Errorf("Classify(AsTerminal(NoSuchEntity)) = %v, want Terminal", Classify(err))
	}
	if got := Message(err); got != "NoSuchEntity: policy not found" {
		t.Errorf("Message() = %q", got)
	}
	if AsTerminal(nil) != nil {
		t.Error("AsTerminal(nil) != nil")
	}
}

func TestAsRetryable(t *testing.T) {
	err := fmt.Errorf("attaching: %w", AsRetryable(&types.NoSuchEntityException{Message: new("policy not found")}))
	if Classify(err) != Retryable {
		t.Errorf("Classify(AsRetryable(NoSuchEntity)) = %v, want Retryable", Classify(err))
	}
	if IsNotFound(err) {
		t.Error("a retryable NoSuchEntity counts as not found")
	}
}
