package awsiam

import (
	"context"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go/middleware"
	"golang.org/x/time/rate"
)

// Limits are the client-side rates of IAM traffic, shared by every worker of
// the operator: a burst of new bindings is spread out instead of turning into
// a throttling storm in an account whose IAM limits are shared with every
// other tool and person.
type Limits struct {
	// ReadQPS and ReadBurst bound Get* and List* calls.
	ReadQPS   float64
	ReadBurst int
	// WriteQPS and WriteBurst bound every other call.
	WriteQPS   float64
	WriteBurst int
	// MaxBackoff caps the SDK's wait between attempts of one call (default
	// 20 s, the SDK's).
	MaxBackoff time.Duration
}

// waiter is what the middleware needs of a rate limiter.
type waiter interface {
	Wait(ctx context.Context) error
}

// IsRead reports whether an IAM operation only reads.
func IsRead(operation string) bool {
	return strings.HasPrefix(operation, "Get") || strings.HasPrefix(operation, "List")
}

// WithTrafficControl makes every attempt of every call (SDK retries
// included) wait for a token of the read or write bucket, and replaces the
// SDK's retry quota: the standard retryer's quota is drained by an outage
// and refills only on successes, after which every throttled call fails at
// once ("retry quota exceeded"). Here retries are bounded by attempts, the
// per-call deadline and the buckets instead, so recovery after an outage is
// not starved.
func WithTrafficControl(cfg *aws.Config, l Limits) {
	read := rate.NewLimiter(rate.Limit(l.ReadQPS), max(l.ReadBurst, 1))
	write := rate.NewLimiter(rate.Limit(l.WriteQPS), max(l.WriteBurst, 1))
	withBuckets(cfg, read, write)
	cfg.Retryer = func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.RateLimiter = ratelimit.None
			if l.MaxBackoff > 0 {
				o.MaxBackoff = l.MaxBackoff
				o.Backoff = retry.NewExponentialJitterBackoff(l.MaxBackoff)
			}
		})
	}
}

func withBuckets(cfg *aws.Config, read, write waiter) {
	cfg.APIOptions = append(cfg.APIOptions, func(stack *middleware.Stack) error {
		// After Retry in the Finalize step: once per attempt.
		return stack.Finalize.Insert(middleware.FinalizeMiddlewareFunc("podidentityTrafficControl",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				bucket := write
				if IsRead(middleware.GetOperationName(ctx)) {
					bucket = read
				}
				if err := bucket.Wait(ctx); err != nil {
					return middleware.FinalizeOutput{}, middleware.Metadata{}, err
				}
				return next.HandleFinalize(ctx, in)
			}), "Retry", middleware.After)
	})
}
