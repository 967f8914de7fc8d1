package command

// Error types a worker reports in a failure's "type" (adapter.RemoteError's
// Type) when the caller acts on them.
const (
	// SpecNotFoundType comes with adapter.CodeNotFound when ExecuteProgram
	// names a spec hash the worker has not compiled and carries no spec;
	// the host then resends the execution with its spec.
	SpecNotFoundType = "SpecNotFound"
	// LMNotFoundType comes with adapter.CodeNotFound when ExecuteProgram
	// names an LM (ExecuteArgs.LM) that no ConfigureLM set on the worker.
	LMNotFoundType = "LMNotFound"
)
