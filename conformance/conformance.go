// Package conformance is the shared suite every dspgo backend must pass:
// one table of cases (Cases), run by go test through Run, or by the CLI
// through RunAll without a *testing.T.
//
// An adapter author proves an adapter right with one line in a test:
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, conformance.Harness{Name: "mine", New: newMyAdapter})
//	}
//
// Every case gets a fresh adapter from the Harness and closes it. A case
// that needs something the adapter does not declare is skipped, and says
// which capability it lacks (a Need). go test shows skips only with -v,
// so Run fails when a case is skipped for a need that Harness.Lacks does
// not list, saying how many cases and why; an adapter that cannot stream
// says so in its harness:
//
//	conformance.Run(t, conformance.Harness{Name: "mine", New: newMyAdapter,
//		Lacks: []conformance.Need{conformance.NeedStreaming, conformance.NeedTools}})
//
// A declared capability that is not implemented (Capabilities.Streaming
// without adapter.Streamer, say) fails the case capabilities_declared.
package conformance

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/suite"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
)

// Harness makes adapters for the suite.
type Harness struct {
	// Name names the adapter in reports.
	Name string

	// New returns a fresh, ready adapter; every case gets its own and
	// closes it. Required.
	New func(ctx context.Context) (adapter.Adapter, error)

	// Faults injects failures for the cases that need them. Nil skips
	// those cases.
	Faults *Faults

	// CaseTimeout bounds each case. Zero means 2 minutes.
	CaseTimeout time.Duration

	// Lacks lists the needs the adapter or the harness is known to lack:
	// the cases that need them are skipped, and Run accepts it. Run fails
	// when a case is skipped for a need not listed here, and when a listed
	// need is not missing. RunAll ignores it: its results say every skip.
	Lacks []Need
}

// Faults injects failures into an adapter made by the Harness.
type Faults struct {
	// Crash kills the adapter's worker, or every worker, as a crash would.
	Crash func(ctx context.Context, a adapter.Adapter) error

	// Recover brings a crashed adapter back when it does not restart
	// workers by itself. Nil means the adapter restarts them itself.
	Recover func(ctx context.Context, a adapter.Adapter) error
}

// TB is the part of testing.TB the cases use. *testing.T implements it;
// RunAll supplies its own.
type TB interface {
	Helper()
	Errorf(format string, args ...any)
	FailNow()
	Logf(format string, args ...any)
	Cleanup(func())
}

// Env is what a case runs against.
type Env struct {
	// Ctx ends when the case's time is up.
	Ctx context.Context
	// Adapter is the case's fresh adapter; it is closed after the case.
	Adapter adapter.Adapter
	// Client is a client over Adapter.
	Client *dspgo.Client
	// Harness made Adapter.
	Harness Harness

	cancel context.CancelFunc
}

// Case is one entry of the table.
type Case struct {
	// Name is the case's stable name, in snake_case.
	Name string
	// Doc says what the case proves.
	Doc string
	// Skip returns why the case cannot run on env, or "" when it can.
	// Nil means it always runs.
	Skip func(env *Env) string
	// Run runs the case, failing t on a violation.
	Run func(t TB, env *Env)
}

// Outcome is the result of one case.
type Outcome int

// Outcomes.
const (
	Passed Outcome = iota
	Failed
	Skipped
)

// String returns "passed", "failed" or "skipped".
func (o Outcome) String() string {
	return [...]string{"passed", "failed", "skipped"}[o]
}

// Result is one case's outcome, from RunAll.
type Result struct {
	Case    string
	Outcome Outcome
	// Reason says why a case failed or was skipped.
	Reason   string
	Duration time.Duration
}

// Run runs every case against the harness's adapters as a testify suite,
// one subtest per case.
func Run(t *testing.T, h Harness) {
	t.Helper()
	suite.Run(t, &Suite{Harness: h})
}

// Suite is the testify suite behind Run.
type Suite struct {
	suite.Suite
	Harness Harness
}

// TestCases runs the table, then fails when cases were skipped for needs
// that Harness.Lacks does not list (see Run).
func (s *Suite) TestCases() {
	var ledger skipLedger
	var mu sync.Mutex
	cases := Cases()
	for _, c := range cases {
		s.Run(c.Name, func() {
			t := s.T()
			env, err := newEnv(t.Context(), s.Harness)
			if err != nil {
				t.Fatalf("harness %s: New: %v", s.Harness.Name, err)
			}
			defer env.close()
			mu.Lock()
			if ledger.missing == nil {
				ledger.missing = missingNeeds(env)
			}
			mu.Unlock()
			if c.Skip != nil {
				if why := c.Skip(env); why != "" {
					mu.Lock()
					ledger.add(env, c.Name, why)
					mu.Unlock()
					t.Skip(why)
				}
			}
			c.Run(t, env)
		})
	}
	if problems := ledger.problems(s.Harness.Lacks, len(cases)); len(problems) > 0 {
		s.T().Errorf("conformance %s: %s", s.Harness.Name, strings.Join(problems, "\n  "))
	} else if ledger.total > 0 {
		s.T().Logf("conformance %s: %d of %d cases skipped, for the needs Harness.Lacks lists", s.Harness.Name, ledger.total, len(cases))
	}
}

func newEnv(parent context.Context, h Harness) (*Env, error) {
	timeout := h.CaseTimeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(parent, timeout)
	a, err := h.New(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	env := &Env{Ctx: ctx, Adapter: a, Client: dspgo.NewClient(a), Harness: h}
	env.cancel = cancel
	return env, nil
}

func (e *Env) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_ = e.Adapter.Close(ctx)
	e.cancel()
}

// RunAll runs every case against the harness without a testing.T, calling
// report (when not nil) after each, and returns the results in table
// order.
func RunAll(ctx context.Context, h Harness, report func(Result)) []Result {
	var results []Result
	for _, c := range Cases() {
		r := RunCase(ctx, h, c)
		if report != nil {
			report(r)
		}
		results = append(results, r)
	}
	return results
}

// RunCase runs one case against a fresh adapter from the harness, without
// a testing.T, and returns its result once the adapter is closed. RunAll
// runs the table with it; a caller showing progress runs Cases() with it
// one by one.
func RunCase(ctx context.Context, h Harness, c Case) Result {
	start := time.Now()
	res := Result{Case: c.Name}
	env, err := newEnv(ctx, h)
	if err != nil {
		res.Outcome, res.Reason = Failed, fmt.Sprintf("harness %s: New: %v", h.Name, err)
		return res
	}
	defer env.close()
	if c.Skip != nil {
		if why := c.Skip(env); why != "" {
			res.Outcome, res.Reason = Skipped, why
			return res
		}
	}
	t := &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer t.runCleanups()
		c.Run(t, env)
	}()
	<-done
	res.Duration = time.Since(start)
	if t.failed {
		res.Outcome, res.Reason = Failed, strings.Join(t.errors, "; ")
	}
	return res
}

// recorder is the TB of RunAll: failures are recorded, FailNow ends the
// case's goroutine as testing.T's does.
type recorder struct {
	mu       sync.Mutex
	failed   bool
	errors   []string
	cleanups []func()
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = true
	r.errors = append(r.errors, strings.TrimSpace(fmt.Sprintf(format, args...)))
}

func (r *recorder) FailNow() {
	r.mu.Lock()
	r.failed = true
	r.mu.Unlock()
	runtime.Goexit()
}

func (r *recorder) Logf(string, ...any) {}

func (r *recorder) Cleanup(f func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cleanups = append(r.cleanups, f)
}

func (r *recorder) runCleanups() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}
