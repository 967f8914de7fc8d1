package dspgo

import (
	"fmt"

	"github.com/dspgo/dspgo/command"
)

// Optimizer is a DSPy optimizer that Compile runs in a worker:
// LabeledFewShot, BootstrapFewShot, BootstrapFewShotWithRandomSearch or
// MIPROv2. Their fields are DSPy's parameters of the same names. A zero
// field means DSPy's default, given with each field; where a count can be
// none, a negative value means none. Scores are on the metric's scale (0
// to 1 for a pass/fail metric), not DSPy's percentages.
type Optimizer interface {
	args() (command.OptimizerArgs, error)
}

// LabeledFewShot makes demos of up to K training examples, sampled with
// a fixed seed. It calls neither the language model nor the metric.
type LabeledFewShot struct {
	// K is the number of demos. Zero means 16; negative means none.
	K int
}

func (o LabeledFewShot) args() (command.OptimizerArgs, error) {
	return command.OptimizerArgs{Name: command.LabeledFewShot, K: count(o.K)}, nil
}

// BootstrapFewShot runs the program on each training example, its demos
// being the other labeled examples (up to MaxLabeledDemos), keeps the runs
// the metric accepts as demos (up to MaxBootstrappedDemos; DSPy's
// "augmented" demos, their outputs the program's own) and fills up to
// MaxLabeledDemos with labeled examples. Without a metric every run is
// accepted. It is Compile's default optimizer.
type BootstrapFewShot struct {
	// MaxBootstrappedDemos bounds the demos made from accepted runs.
	// Zero means 4; negative means none.
	MaxBootstrappedDemos int
	// MaxLabeledDemos bounds the demos taken from the training set as
	// they are. Zero means 16; negative means none.
	MaxLabeledDemos int
	// MaxRounds is the attempts per training example. Zero means 1.
	MaxRounds int
	// MetricThreshold is the score a run needs to be accepted. Zero
	// means any score that is not zero.
	MetricThreshold float64
	// MaxErrors is the failed runs tolerated before the compile fails
	// (the metric's errors are never tolerated). Zero means DSPy's
	// setting, 10.
	MaxErrors int
}

func (o BootstrapFewShot) args() (command.OptimizerArgs, error) {
	a := command.OptimizerArgs{Name: command.BootstrapFewShot}
	return a, o.fill(&a)
}

// fill sets the parameters BootstrapFewShot shares with the optimizers
// that build on it.
func (o BootstrapFewShot) fill(a *command.OptimizerArgs) error {
	if o.MaxRounds < 0 || o.MaxErrors < 0 {
		return fmt.Errorf("%s: MaxRounds and MaxErrors must not be negative", a.Name)
	}
	a.MaxBootstrappedDemos, a.MaxLabeledDemos = count(o.MaxBootstrappedDemos), count(o.MaxLabeledDemos)
	a.MaxRounds, a.MaxErrors = positive(o.MaxRounds), positive(o.MaxErrors)
	if o.MetricThreshold != 0 {
		a.MetricThreshold = &o.MetricThreshold
	}
	return nil
}

// BootstrapFewShotWithRandomSearch runs BootstrapFewShot on
// NumCandidatePrograms shuffles of the training set, and a zero-shot, a
// labeled-only and an unshuffled candidate, scores each with the metric
// on the validation set (WithValset; the training set by default) and
// returns the best. It needs a metric.
type BootstrapFewShotWithRandomSearch struct {
	// BootstrapFewShot holds the parameters of each candidate's
	// bootstrap.
	BootstrapFewShot
	// NumCandidatePrograms is the number of shuffled candidates. Zero
	// means 16.
	NumCandidatePrograms int
	// NumThreads is the candidates' examples scored at once. Zero means 1.
	NumThreads int
	// StopAtScore ends the search at the first candidate whose mean score
	// reaches it. Zero means never.
	StopAtScore float64
}

func (o BootstrapFewShotWithRandomSearch) args() (command.OptimizerArgs, error) {
	a := command.OptimizerArgs{Name: command.BootstrapFewShotWithRandomSearch}
	if err := o.fill(&a); err != nil {
		return a, err
	}
	if o.NumCandidatePrograms < 0 || o.NumThreads < 0 {
		return a, fmt.Errorf("%s: NumCandidatePrograms and NumThreads must not be negative", a.Name)
	}
	a.NumCandidatePrograms, a.NumThreads = positive(o.NumCandidatePrograms), positive(o.NumThreads)
	if o.StopAtScore != 0 {
		percent := o.StopAtScore * 100 // DSPy's scale
		a.StopAtScore = &percent
	}
	return a, nil
}

// MIPROv2 proposes instructions with the language model (from the
// program, the training data and its demos) and searches instructions and
// demo sets together, scoring candidates on minibatches of the validation
// set. It needs a metric, and the optuna package in the worker's
// interpreter (CodeFailedPrecondition without it).
type MIPROv2 struct {
	// Auto is the search budget: "light", "medium" or "heavy". Empty
	// means "light" unless NumTrials and NumCandidates are set, which
	// then give it.
	Auto string
	// NumTrials is the number of search trials; set it with
	// NumCandidates, and Auto empty. Zero means Auto's.
	NumTrials int
	// NumCandidates is the number of instruction and demo-set
	// candidates. Zero means Auto's.
	NumCandidates int
	// MaxBootstrappedDemos bounds each demo set's bootstrapped demos.
	// Zero means 4; negative means none.
	MaxBootstrappedDemos int
	// MaxLabeledDemos bounds each demo set's labeled demos. Zero means 4;
	// negative means none.
	MaxLabeledDemos int
	// MinibatchSize is the examples a trial scores. Zero means 35;
	// negative means no minibatches (every trial scores the whole
	// validation set).
	MinibatchSize int
	// MetricThreshold is the score a bootstrapped run needs. Zero means
	// any score that is not zero.
	MetricThreshold float64
	// MaxErrors is the failed runs tolerated. Zero means DSPy's setting,
	// 10.
	MaxErrors int
	// NumThreads is the examples scored at once. Zero means 1.
	NumThreads int
	// Seed seeds the sampling. Zero means 9.
	Seed int
}

func (o MIPROv2) args() (command.OptimizerArgs, error) {
	a := command.OptimizerArgs{Name: command.MIPROv2, Auto: o.Auto}
	switch {
	case o.NumTrials < 0 || o.NumCandidates < 0 || o.MaxErrors < 0 || o.NumThreads < 0 || o.Seed < 0:
		return a, fmt.Errorf("%s: NumTrials, NumCandidates, MaxErrors, NumThreads and Seed must not be negative", a.Name)
	case o.Auto != "" && (o.NumTrials != 0 || o.NumCandidates != 0):
		return a, fmt.Errorf("%s: set Auto, or NumTrials and NumCandidates, not both", a.Name)
	case o.Auto == "" && (o.NumTrials == 0) != (o.NumCandidates == 0):
		return a, fmt.Errorf("%s: set NumTrials and NumCandidates together", a.Name)
	case o.Auto == "" && o.NumTrials == 0:
		a.Auto = "light"
	}
	switch a.Auto {
	case "", "light", "medium", "heavy":
	default:
		return a, fmt.Errorf("%s: Auto %q is not light, medium or heavy", a.Name, o.Auto)
	}
	a.NumTrials, a.NumCandidates = positive(o.NumTrials), positive(o.NumCandidates)
	a.MaxBootstrappedDemos, a.MaxLabeledDemos, a.MinibatchSize = count(o.MaxBootstrappedDemos), count(o.MaxLabeledDemos), count(o.MinibatchSize)
	a.MaxErrors, a.NumThreads, a.Seed = positive(o.MaxErrors), positive(o.NumThreads), positive(o.Seed)
	if o.MetricThreshold != 0 {
		a.MetricThreshold = &o.MetricThreshold
	}
	return a, nil
}

// count is a count parameter on the wire: absent for zero (DSPy's
// default), 0 for a negative value (none).
func count(n int) *int {
	switch {
	case n == 0:
		return nil
	case n < 0:
		n = 0
	}
	return &n
}

// positive is a parameter that cannot be none: absent for zero.
func positive(n int) *int {
	if n == 0 {
		return nil
	}
	return &n
}
