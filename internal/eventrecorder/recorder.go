// Package eventrecorder writes the operator's Normal events directly, and
// hands Warnings to client-go's events broadcaster.
//
// client-go's broadcaster keeps every event it sent for six to twelve
// minutes, to merge repeats into a series. That is worth it for Warnings (a
// failing binding repeats its Warning at every retry) but not for the
// operator's Normal events, which each report one change (a role created, a
// ServiceAccount annotated): at 10,000 new bindings the broadcaster held
// 14 MB of them (decision 53). Normal events are queued here (bounded) and
// created by one worker, as the same events.k8s.io/v1 objects the
// broadcaster would create for a first occurrence.
package eventrecorder

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/tools/reference"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/podidentity/podidentity-operator/internal/bounded"
)

const (
	// QueueSize is how many Normal events may wait to be written, as
	// client-go's broadcaster queues 1,000; more are dropped and counted.
	QueueSize = 1000
	// maxTries and retryDelay: an event the API server could not take
	// (unreachable, throttled) is retried a few times, then dropped.
	maxTries   = 3
	retryDelay = 2 * time.Second
	// MaxNoteLength is the events.k8s.io/v1 limit on a note.
	MaxNoteLength = bounded.EventNote
	writeTimeout  = 10 * time.Second
)

// Dropped counts Normal events that were not written, by why.
var Dropped = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "podidentity_events_dropped_total",
	Help: "Normal events the operator did not write, by reason (queue_full, api_error).",
}, []string{"reason"})

func init() {
	ctrlmetrics.Registry.MustRegister(Dropped)
	Dropped.WithLabelValues("queue_full")
	Dropped.WithLabelValues("api_error")
}

// Creator creates an event in the API server.
type Creator func(ctx context.Context, e *eventsv1.Event) error

// Recorder is an events.EventRecorder. Start must run (it is a manager
// Runnable) for Normal events to be written.
type Recorder struct {
	scheme     *runtime.Scheme
	controller string
	instance   string
	warnings   events.EventRecorder
	create     Creator
	log        logr.Logger
	now        func() time.Time
	retryDelay time.Duration
	queue      chan *eventsv1.Event
}

var _ events.EventRecorder = &Recorder{}

// New returns a Recorder that reports as controller (the reporting
// controller of every event, as client-go's recorder names it), sends
// Warnings to warnings and creates Normal events with create.
func New(scheme *runtime.Scheme, controller string, warnings events.EventRecorder, create Creator, log logr.Logger) *Recorder {
	host, _ := os.Hostname()
	return &Recorder{
		scheme: scheme, controller: controller, instance: controller + "-" + host,
		warnings: warnings, create: create, log: log,
		now: time.Now, retryDelay: retryDelay,
		queue: make(chan *eventsv1.Event, QueueSize),
	}
}

// Eventf records an event; Normal events are queued without blocking.
func (r *Recorder) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	if eventtype != corev1.EventTypeNormal {
		r.warnings.Eventf(regarding, related, eventtype, reason, action, note, args...)
		return
	}
	e, err := r.makeEvent(regarding, related, reason, action, fmt.Sprintf(note, args...))
	if err != nil {
		r.log.Error(err, "not recording an event about an object without a reference", "reason", reason)
		return
	}
	select {
	case r.queue <- e:
	default:
		Dropped.WithLabelValues("queue_full").Inc()
	}
}

func (r *Recorder) makeEvent(regarding, related runtime.Object, reason, action, note string) (*eventsv1.Event, error) {
	ref, err := reference.GetReference(r.scheme, regarding)
	if err != nil {
		return nil, err
	}
	var relatedRef *corev1.ObjectReference
	if related != nil {
		relatedRef, _ = reference.GetReference(r.scheme, related)
	}
	note = bounded.Text(note, MaxNoteLength)
	ns := ref.Namespace
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	now := r.now()
	return &eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", ref.Name, now.UnixNano()), Namespace: ns},
		EventTime:           metav1.NewMicroTime(now),
		ReportingController: r.controller,
		ReportingInstance:   r.instance,
		Action:              action,
		Reason:              reason,
		Regarding:           *ref,
		Related:             relatedRef,
		Note:                note,
		Type:                corev1.EventTypeNormal,
	}, nil
}

// Start writes queued events until ctx ends; what is still queued then is
// dropped, as client-go's broadcaster does at shutdown.
func (r *Recorder) Start(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-r.queue:
			r.write(ctx, e)
		}
	}
}

// NeedLeaderElection is false: a replica that loses its lease still writes
// the events its reconciles recorded.
func (r *Recorder) NeedLeaderElection() bool { return false }

func (r *Recorder) write(ctx context.Context, e *eventsv1.Event) {
	for try := 1; ; try++ {
		wctx, cancel := context.WithTimeout(ctx, writeTimeout)
		err := r.create(wctx, e)
		cancel()
		if err == nil || apierrors.IsAlreadyExists(err) {
			return
		}
		// Malformed or refused for good (invalid, forbidden, namespace
		// terminating): retrying sends the same request.
		if try >= maxTries || !retriable(err) {
			Dropped.WithLabelValues("api_error").Inc()
			r.log.Error(err, "could not write event", "namespace", e.Namespace, "regarding", e.Regarding.Name, "reason", e.Reason)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait.Jitter(r.retryDelay, 0.25)):
		}
	}
}

func retriable(err error) bool {
	switch {
	case apierrors.IsInvalid(err), apierrors.IsForbidden(err), apierrors.IsBadRequest(err),
		apierrors.IsNotFound(err), apierrors.IsUnauthorized(err), apierrors.IsMethodNotSupported(err):
		return false
	}
	return true
}
