package eventrecorder

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
)

// warningsSeen is client-go's recorder as the Recorder sees it.
type warningsSeen struct {
	mu      sync.Mutex
	reasons []string
}

func (w *warningsSeen) Eventf(_, _ runtime.Object, eventtype, reason, _, _ string, _ ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.reasons = append(w.reasons, eventtype+"/"+reason)
}

type sink struct {
	mu      sync.Mutex
	created []*eventsv1.Event
	fail    []error // returned by the next calls, in order
	calls   int
}

func (s *sink) create(_ context.Context, e *eventsv1.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if len(s.fail) > 0 {
		err := s.fail[0]
		s.fail = s.fail[1:]
		return err
	}
	s.created = append(s.created, e)
	return nil
}

func (s *sink) snapshot() (int, []*eventsv1.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls, append([]*eventsv1.Event(nil), s.created...)
}

func pod() *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "app", UID: "uid-1", ResourceVersion: "7"}}
}

func newTestRecorder(s *sink, w *warningsSeen) *Recorder {
	r := New(clientgoscheme.Scheme, "podidentity-operator", w, s.create, logr.Discard())
	r.now = func() time.Time { return time.Unix(1_800_000_000, 42) }
	r.retryDelay = time.Millisecond
	return r
}

func TestNormalEventsAreWrittenDirectlyAndWarningsGoToTheBroadcaster(t *testing.T) {
	s, w := &sink{}, &warningsSeen{}
	r := newTestRecorder(s, w)
	r.Eventf(pod(), nil, corev1.EventTypeWarning, "InvalidSpec", "Reconcile", "bad %s", "action")
	r.Eventf(pod(), nil, corev1.EventTypeNormal, "RoleCreated", "Reconcile", "created IAM role %s", "arn:aws:iam::1:role/x")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Start(ctx) }()
	waitFor(t, func() bool { _, c := s.snapshot(); return len(c) == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	if len(w.reasons) != 1 || w.reasons[0] != "Warning/InvalidSpec" {
		t.Fatalf("warnings handed to client-go: %v", w.reasons)
	}
	_, created := s.snapshot()
	e := created[0]
	want := eventsv1.Event{
		ObjectMeta:          metav1.ObjectMeta{Name: "app." + strconv.FormatInt(1_800_000_000_000_000_042, 16), Namespace: "team-a"},
		EventTime:           metav1.NewMicroTime(time.Unix(1_800_000_000, 42)),
		ReportingController: "podidentity-operator",
		ReportingInstance:   r.instance,
		Action:              "Reconcile",
		Reason:              "RoleCreated",
		Regarding:           corev1.ObjectReference{Kind: "Pod", APIVersion: "v1", Namespace: "team-a", Name: "app", UID: "uid-1", ResourceVersion: "7"},
		Note:                "created IAM role arn:aws:iam::1:role/x",
		Type:                corev1.EventTypeNormal,
	}
	if e.Name != want.Name || e.Namespace != want.Namespace || !e.EventTime.Equal(&want.EventTime) ||
		e.ReportingController != want.ReportingController || !strings.HasPrefix(e.ReportingInstance, "podidentity-operator-") ||
		e.Action != want.Action || e.Reason != want.Reason || e.Regarding != want.Regarding ||
		e.Related != nil || e.Note != want.Note || e.Type != want.Type || e.Series != nil {
		t.Fatalf("event:\n got %+v\nwant %+v", e, want)
	}
}

func TestLongNotesAreCutToTheAPILimit(t *testing.T) {
	r := newTestRecorder(&sink{}, &warningsSeen{})
	r.Eventf(pod(), nil, corev1.EventTypeNormal, "RoleCreated", "Reconcile", "%s", strings.Repeat("x", 3000))
	e := <-r.queue
	if len(e.Note) != MaxNoteLength {
		t.Fatalf("note of %d bytes", len(e.Note))
	}
}

func TestAFullQueueDropsAndCountsInsteadOfBlocking(t *testing.T) {
	r := newTestRecorder(&sink{}, &warningsSeen{})
	before := testutil.ToFloat64(Dropped.WithLabelValues("queue_full"))
	for range QueueSize + 5 {
		r.Eventf(pod(), nil, corev1.EventTypeNormal, "RoleCreated", "Reconcile", "n")
	}
	if got := testutil.ToFloat64(Dropped.WithLabelValues("queue_full")) - before; got != 5 {
		t.Fatalf("dropped %v, want 5", got)
	}
	if len(r.queue) != QueueSize {
		t.Fatalf("queued %d", len(r.queue))
	}
}

func TestTransientErrorsAreRetriedAndPermanentOnesDropped(t *testing.T) {
	gr := schema.GroupResource{Group: "events.k8s.io", Resource: "events"}
	cases := []struct {
		name      string
		fail      []error
		calls     int
		written   bool
		droppedBy float64
	}{
		{"server busy then written", []error{apierrors.NewTooManyRequests("slow down", 1), errors.New("connection refused")}, 3, true, 0},
		{"unreachable every time", []error{errors.New("a"), errors.New("b"), errors.New("c")}, maxTries, false, 1},
		{"forbidden", []error{apierrors.NewForbidden(gr, "x", errors.New("rbac"))}, 1, false, 1},
		{"namespace gone", []error{apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, "team-a")}, 1, false, 1},
		{"already written", []error{apierrors.NewAlreadyExists(gr, "app.1")}, 1, false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &sink{fail: tc.fail}
			r := newTestRecorder(s, &warningsSeen{})
			before := testutil.ToFloat64(Dropped.WithLabelValues("api_error"))
			r.Eventf(pod(), nil, corev1.EventTypeNormal, "RoleCreated", "Reconcile", "n")
			r.write(context.Background(), <-r.queue)
			calls, created := s.snapshot()
			if calls != tc.calls || (len(created) == 1) != tc.written {
				t.Fatalf("%d calls, %d written", calls, len(created))
			}
			if got := testutil.ToFloat64(Dropped.WithLabelValues("api_error")) - before; got != tc.droppedBy {
				t.Fatalf("dropped %v", got)
			}
		})
	}
}

func TestObjectsWithoutAReferenceAreNotRecorded(t *testing.T) {
	r := newTestRecorder(&sink{}, &warningsSeen{})
	type unknown struct{ corev1.Pod }
	r.Eventf(&unknown{}, nil, corev1.EventTypeNormal, "RoleCreated", "Reconcile", "n")
	if len(r.queue) != 0 {
		t.Fatal("queued an event about an object the scheme does not know")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(time.Millisecond)
	}
}
