package awsiam

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go/middleware"
	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Calls counts IAM API calls by the AWS account they act in ("operator" for
// the operator's own, else the account ID of a PodIdentityAccount),
// operation and outcome (success, not_found, retryable, terminal). One
// logical call counts once, whatever the SDK's internal retries.
var Calls = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "podidentity_iam_api_calls_total",
	Help: "IAM API calls made by the operator, by account, operation and outcome.",
}, []string{"account", "operation", "outcome"})

// OperatorAccount is the account label of the operator's own account.
const OperatorAccount = "operator"

func init() {
	ctrlmetrics.Registry.MustRegister(Calls)
}

// Outcome names the result of a call in the Calls metric.
func Outcome(err error) string {
	if err == nil {
		return "success"
	}
	switch Classify(err) {
	case NotFound:
		return "not_found"
	case Terminal:
		return "terminal"
	default:
		return "retryable"
	}
}

// CallTimeout bounds each IAM call, its SDK retries included, so a hung
// connection never holds a worker.
const CallTimeout = 30 * time.Second

// WithDeadline gives every call made with the config a deadline of d
// (unless the caller's context has an earlier one).
func WithDeadline(cfg *aws.Config, d time.Duration) {
	cfg.APIOptions = append(cfg.APIOptions, func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("podidentityCallDeadline",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				ctx, cancel := context.WithTimeout(ctx, d)
				defer cancel()
				return next.HandleInitialize(ctx, in)
			}), middleware.Before)
	})
}

// WithMetrics adds the call-counting middleware to an SDK config, so every
// client built from it is counted under account.
func WithMetrics(cfg *aws.Config, account string) {
	cfg.APIOptions = append(cfg.APIOptions, func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("podidentityCallMetrics",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				out, md, err := next.HandleInitialize(ctx, in)
				Calls.WithLabelValues(account, middleware.GetOperationName(ctx), Outcome(err)).Inc()
				return out, md, err
			}), middleware.Before)
	})
}
