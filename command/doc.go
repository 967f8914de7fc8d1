// Package command is the program command set of dspgo, the contract
// between a host (the Go client and its adapters) and every backend: the
// command names, each command's argument and result types, and the error
// types a worker reports. The Python worker, the Go mock and the remote
// hosts implement it; a backend written outside this module implements it
// from this package and docs/protocol.md, which gives the wire format
// (frames, requests, responses) and every rule in full.
//
// A request names a command (adapter.Request.Command, the constants of this
// package) and carries its arguments as one JSON object, the encoding of
// the command's Args type here: CreateArgs for CreateProgram, ExecuteArgs
// for ExecuteProgram, LMArgs for ConfigureLM, DeleteArgs for DeleteProgram,
// CompileArgs for CompileProgram, CancelArgs for Cancel; Ping, Describe,
// GetStats, Reset and Shutdown take none ("{}"). A successful response's
// result is the encoding of the command's Result type: CreateResult,
// ExecuteResult, ConfigureLMResult, DeleteResult, CompileResult,
// PingResult (InitResult for the init ping), DescribeResult, StatsResult,
// ResetResult, ShutdownResult, CancelResult.
// An ExecuteProgram that asks for a stream (docs/protocol.md, "Streams")
// sends Delta chunks, pieces of its outputs' text, before its result; a
// CompileProgram sends CompileProgress chunks, one after each score of the
// metric and each evaluation of a candidate program.
//
// CompileProgram (docs/protocol.md, "Compiling a program") runs a DSPy
// optimizer (OptimizerArgs: LabeledFewShot, BootstrapFewShot,
// BootstrapFewShotWithRandomSearch, MIPROv2) in a Python worker with dspy;
// its metric is the host's tool MetricTool, which the worker calls with
// MetricArgs and the host answers with MetricResult; a failed call ends
// the compile with its code. Only the Python worker with dspy has it.
//
// A failure carries one adapter.Code (the wire's "code" string) and, when
// the caller acts on it, an error type (the wire's "type"):
//
//   - adapter.CodeInvalidArgument: arguments missing, of the wrong type or
//     unknown, named in the message; a bad spec, inputs that do not convert,
//     a bad LM configuration (every bad field at once).
//   - adapter.CodeNotFound: ExecuteProgram names a spec hash the worker has
//     not compiled and carries no spec (type SpecNotFoundType: the host then
//     resends the spec); an LM name no ConfigureLM set (type
//     LMNotFoundType); DeleteProgram of a spec the worker does not cache.
//   - adapter.CodeFailedPrecondition: a backend that cannot run what is
//     asked (the mock and a provider other than "dummy"; CompileProgram on
//     a worker that cannot import dspy, with the "dummy" provider, or
//     MIPROv2 without the optuna package).
//   - adapter.CodeUnimplemented: a command the backend does not have.
//   - adapter.CodeDeadlineExceeded, adapter.CodeCanceled: the request's
//     deadline or a cancel ended it first.
//   - adapter.CodeInternal: anything else that went wrong in the worker.
//
// Specs are hashed: a program is identified by the SHA-256 of its Spec's
// canonical JSON (docs/protocol.md, "Canonical JSON"), which
// CreateResult.SpecHash returns and ExecuteArgs.SpecHash names.
//
// The conformance suite (package conformance) checks a backend against
// this contract: run it on yours.
package command
