package command

// CompileProgram runs a DSPy optimizer on a spec and a training set
// (CompileArgs, CompileResult). The worker calls the host's tool MetricTool
// to score each prediction; with a stream it sends a CompileProgress chunk
// after each score and each evaluation of a candidate program. Only a
// worker whose interpreter imports dspy runs it: any other backend answers
// adapter.CodeFailedPrecondition or adapter.CodeUnimplemented.
const CompileProgram = "compile_program"

// MetricTool is the host tool a CompileProgram worker calls to score a
// prediction (MetricArgs, MetricResult): the caller's metric, run in the
// host's process.
const MetricTool = "metric"

// The optimizers of CompileArgs.Optimizer.Name, named as DSPy's classes
// (dspy.teleprompt).
const (
	// LabeledFewShot makes demos of up to K training examples, sampled
	// with seed 0; it calls neither the LM nor the metric.
	LabeledFewShot = "LabeledFewShot"
	// BootstrapFewShot runs the program, its demos being the labeled
	// training examples, on each training example, keeps the traces the
	// metric accepts as demos (up to MaxBootstrappedDemos) and fills up to
	// MaxLabeledDemos with labeled examples.
	BootstrapFewShot = "BootstrapFewShot"
	// BootstrapFewShotWithRandomSearch runs BootstrapFewShot on
	// NumCandidatePrograms shuffles of the training set (and a zero-shot,
	// a labeled-only and an unshuffled candidate), scores each on the
	// validation set and returns the best.
	BootstrapFewShotWithRandomSearch = "BootstrapFewShotWithRandomSearch"
	// MIPROv2 proposes instructions with the LM and searches instructions
	// and demo sets together. DSPy needs the optuna package for it (the
	// dspy test environment has it); a worker without optuna answers
	// adapter.CodeFailedPrecondition naming optuna.
	MIPROv2 = "MIPROv2"
)

// CompileArgs are CompileProgram's arguments.
type CompileArgs struct {
	// ProgramID is the host's id of the program compiled, for logs only.
	// Empty means none.
	ProgramID string `json:"program_id,omitempty"`
	// Spec is the program to optimize (KindPredict or
	// KindChainOfThought); its demos are dropped, as DSPy's optimizers
	// drop a student's. Required.
	Spec Spec `json:"spec"`
	// Optimizer chooses the optimizer and its parameters. Required.
	Optimizer OptimizerArgs `json:"optimizer"`
	// Trainset holds the training examples, each shaped and checked as a
	// demo (Reasoning only for KindChainOfThought). At least one is
	// required.
	Trainset []Demo `json:"trainset"`
	// Valset holds the validation examples of the optimizers that score
	// candidates (BootstrapFewShotWithRandomSearch, MIPROv2). Nil means
	// the optimizer's default: the training set for the random search, a
	// split of it for MIPROv2.
	Valset []Demo `json:"valset,omitempty"`
	// Metric says that the host has a MetricTool; false means none, which
	// only LabeledFewShot and BootstrapFewShot (accepting every trace)
	// run without.
	Metric bool `json:"metric,omitempty"`
	// LM names the LM configuration to run with (LMArgs.Name); empty
	// means the default one.
	LM string `json:"lm,omitempty"`
}

// OptimizerArgs are the optimizer of CompileArgs and its parameters, as
// DSPy names them. A field the optimizer does not take must be absent
// (nil or empty); an absent field means DSPy's default, given with each
// field, and a present zero means zero.
type OptimizerArgs struct {
	// Name is LabeledFewShot, BootstrapFewShot,
	// BootstrapFewShotWithRandomSearch or MIPROv2. Required.
	Name string `json:"name"`
	// K is LabeledFewShot's number of demos. Absent means 16.
	K *int `json:"k,omitempty"`
	// MaxBootstrappedDemos bounds the demos made from traces. Absent
	// means 4.
	MaxBootstrappedDemos *int `json:"max_bootstrapped_demos,omitempty"`
	// MaxLabeledDemos bounds the demos taken from the training set as
	// they are. Absent means 16 (MIPROv2: 4).
	MaxLabeledDemos *int `json:"max_labeled_demos,omitempty"`
	// MaxRounds is the attempts per training example to bootstrap a
	// trace. Absent means 1.
	MaxRounds *int `json:"max_rounds,omitempty"`
	// MetricThreshold, when set, is the score a trace needs to become a
	// demo; absent means any score that is not zero.
	MetricThreshold *float64 `json:"metric_threshold,omitempty"`
	// MaxErrors is the failed program runs an optimizer tolerates before
	// it fails. Absent means dspy's setting (10).
	MaxErrors *int `json:"max_errors,omitempty"`
	// NumCandidatePrograms is the random search's number of shuffled
	// candidates. Absent means 16.
	NumCandidatePrograms *int `json:"num_candidate_programs,omitempty"`
	// NumThreads is the threads that score candidates in parallel.
	// Absent means 1.
	NumThreads *int `json:"num_threads,omitempty"`
	// StopAtScore ends the random search at the first candidate that
	// scores this much (DSPy's scale: 0 to 100). Absent means never.
	StopAtScore *float64 `json:"stop_at_score,omitempty"`
	// Auto is MIPROv2's budget: "light", "medium" or "heavy"; empty means
	// none, which NumTrials and NumCandidates then give.
	Auto string `json:"auto,omitempty"`
	// NumTrials is MIPROv2's number of search trials (required without
	// Auto).
	NumTrials *int `json:"num_trials,omitempty"`
	// NumCandidates is MIPROv2's number of instruction and demo-set
	// candidates (required without Auto).
	NumCandidates *int `json:"num_candidates,omitempty"`
	// MinibatchSize is MIPROv2's minibatch; absent means 35. Zero turns
	// minibatches off (every trial scores the whole validation set).
	MinibatchSize *int `json:"minibatch_size,omitempty"`
	// Seed seeds MIPROv2's sampling. Absent means 9.
	Seed *int `json:"seed,omitempty"`
}

// CompileResult is CompileProgram's result: the optimized program's
// parts. The host makes the new spec of Spec's signature and kind with
// them.
type CompileResult struct {
	// Instructions are the optimized program's instructions (MIPROv2
	// proposes new ones; the others keep the spec's).
	Instructions string `json:"instructions"`
	// Demos are the optimized program's demos, each a valid Demo of the
	// spec; empty when the optimizer chose none.
	Demos []Demo `json:"demos"`
	// Score is the best candidate's score on the validation set, on
	// DSPy's scale (0 to 100), when the optimizer scored candidates; nil
	// otherwise.
	Score *float64 `json:"score,omitempty"`
}

// CompileProgress is one chunk of a streamed CompileProgram.
type CompileProgress struct {
	// Event is "metric" after each score of the metric and "evaluation"
	// after each evaluation of a candidate program on a dataset.
	Event string `json:"event"`
	// Calls counts the metric's calls so far.
	Calls int `json:"calls"`
	// Score is the metric's last score ("metric"), or the candidate's
	// score on DSPy's scale, 0 to 100 ("evaluation").
	Score float64 `json:"score"`
	// Mean is the mean of the metric's scores so far.
	Mean float64 `json:"mean"`
	// Evaluations counts the evaluations of candidates so far.
	Evaluations int `json:"evaluations"`
	// Best is the best evaluation score so far (DSPy's scale); nil before
	// the first evaluation.
	Best *float64 `json:"best,omitempty"`
}

// MetricArgs are MetricTool's arguments: one prediction to score.
type MetricArgs struct {
	// Index is the example's index in its set (Set), when the worker knows
	// it; nil when the example is not one of the request's (a copy DSPy
	// made).
	Index *int `json:"index,omitempty"`
	// Set is "trainset" or "valset": the set Index counts in.
	Set string `json:"set,omitempty"`
	// Example is the example the prediction answers, its inputs and
	// expected outputs.
	Example Demo `json:"example"`
	// Prediction holds the program's outputs, by name, reasoning
	// included for KindChainOfThought.
	Prediction map[string]any `json:"prediction"`
	// Trace is true when DSPy is bootstrapping (it passes a trace to the
	// metric), false when it evaluates.
	Trace bool `json:"trace,omitempty"`
}

// MetricResult is MetricTool's result.
type MetricResult struct {
	// Score is the prediction's score: 1 or 0 for a pass or a fail,
	// anything between for partial credit.
	Score float64 `json:"score"`
}
