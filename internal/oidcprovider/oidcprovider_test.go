package oidcprovider

import (
	"context"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/smithy-go"
	"github.com/go-logr/logr"
)

// answers replays one result per call.
type answers []func() (*iam.GetOpenIDConnectProviderOutput, error)

func (a *answers) GetOpenIDConnectProvider(context.Context, *iam.GetOpenIDConnectProviderInput, ...func(*iam.Options)) (*iam.GetOpenIDConnectProviderOutput, error) {
	next := (*a)[0]
	*a = (*a)[1:]
	return next()
}

func exists(auds ...string) func() (*iam.GetOpenIDConnectProviderOutput, error) {
	return func() (*iam.GetOpenIDConnectProviderOutput, error) {
		return &iam.GetOpenIDConnectProviderOutput{ClientIDList: auds}, nil
	}
}

func fails(err error) func() (*iam.GetOpenIDConnectProviderOutput, error) {
	return func() (*iam.GetOpenIDConnectProviderOutput, error) { return nil, err }
}

func TestWatcher(t *testing.T) {
	missing := &types.NoSuchEntityException{Message: new("no provider")}
	denied := &smithy.GenericAPIError{Code: "AccessDenied", Message: "not allowed", Fault: smithy.FaultClient}
	outage := errors.New("connection refused")

	api := &answers{fails(outage), exists("sts.amazonaws.com", "b"), fails(outage), exists("b", "sts.amazonaws.com"), fails(missing), fails(denied)}
	w := NewWatcher(api, "arn:aws:iam::1:oidc-provider/x/", 0, logr.Discard())
	changed := func() bool {
		select {
		case <-w.Changes():
			return true
		default:
			return false
		}
	}

	s := w.Check(context.Background())
	if s.Known || s.Err == nil || s.Rejected || !changed() {
		t.Fatalf("an outage before any answer is unknown and transient: %+v", s)
	}
	s = w.Check(context.Background())
	if !s.Known || !s.Exists || !s.Accepts("sts.amazonaws.com") || s.Accepts("vault") || !changed() {
		t.Fatalf("exists: %+v", s)
	}
	s = w.Check(context.Background())
	if !s.Exists || s.Err != nil || changed() {
		t.Fatalf("an outage after an answer keeps it, without a change event: %+v", s)
	}
	s = w.Check(context.Background())
	if changed() {
		t.Fatalf("the same audiences in another order are no change: %+v", s)
	}
	s = w.Check(context.Background())
	if !s.Known || s.Exists || !changed() {
		t.Fatalf("NoSuchEntity is a known missing provider: %+v", s)
	}
	s = w.Check(context.Background())
	if s.Known || !s.Rejected || !changed() {
		t.Fatalf("AccessDenied is rejected: %+v", s)
	}
}
