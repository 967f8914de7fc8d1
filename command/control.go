package command

// PingResult is Ping's result, but for the init ping's (InitResult).
type PingResult struct {
	// Pong is true.
	Pong bool `json:"pong"`
	// WorkerID is the worker's name, as its host gave it.
	WorkerID string `json:"worker_id"`
	// PID is the worker's process id.
	PID int `json:"pid"`
}

// InitResult is the result of the init ping (Ping with
// protocol.InitPingArgs and id protocol.InitID), the host's handshake.
type InitResult struct {
	// ProtocolVersion must be protocol.Version.
	ProtocolVersion int `json:"protocol_version"`
	// WorkerVersion is the worker implementation's version, free text.
	WorkerVersion string `json:"worker_version"`
	// PID is the worker's process id.
	PID int `json:"pid"`
	// PythonVersion is empty for a worker not written in Python.
	PythonVersion string `json:"python_version"`
	// WorkerID is the worker's name, as its host gave it.
	WorkerID string `json:"worker_id"`
	// Commands are the names the worker answers, sorted.
	Commands []string `json:"commands"`
	// MaxConcurrency is how many requests the worker runs at once; 0
	// means no bound.
	MaxConcurrency int `json:"max_concurrency"`
	// MaxFrameBytes is the largest frame the worker reads.
	MaxFrameBytes int `json:"max_frame_bytes"`
	// Diagnostics reports whether the worker has the diagnostics
	// commands (docs/protocol.md, "Diagnostics commands").
	Diagnostics bool `json:"diagnostics"`
	// Features are the protocol features the worker has
	// (protocol.FeatureCall, protocol.FeatureStream).
	Features []string `json:"features"`
}

// DescribeResult is Describe's result.
type DescribeResult struct {
	// ProtocolVersion is protocol.Version.
	ProtocolVersion int `json:"protocol_version"`
	// Commands are the worker's commands, sorted by name.
	Commands []CommandInfo `json:"commands"`
}

// CommandInfo describes one command in a DescribeResult.
type CommandInfo struct {
	// Name is the command's name.
	Name string `json:"name"`
	// Description says what it does, for people.
	Description string `json:"description"`
	// Inline marks a command the reading loop answers at once.
	Inline bool `json:"inline,omitempty"`
	// Diagnostics marks a command only a worker started with
	// --diagnostics has.
	Diagnostics bool `json:"diagnostics,omitempty"`
	// Args are the command's arguments, by name.
	Args map[string]ArgInfo `json:"args"`
}

// Argument types of ArgInfo.Type.
const (
	ArgStr    = "str"
	ArgInt    = "int"
	ArgFloat  = "float" // any number
	ArgBool   = "bool"
	ArgObject = "object"
	ArgArray  = "array"
	ArgAny    = "any"
)

// ArgInfo describes one argument of a command in a DescribeResult.
type ArgInfo struct {
	// Type is one of ArgStr, ArgInt, ArgFloat, ArgBool, ArgObject,
	// ArgArray, ArgAny.
	Type string `json:"type"`
	// Required reports whether a request must give the argument.
	Required bool `json:"required"`
	// Description is empty when the worker gives none.
	Description string `json:"description,omitempty"`
}

// CancelArgs are Cancel's arguments.
type CancelArgs struct {
	// ID is the id of the request to cancel. Required.
	ID uint64 `json:"id"`
}

// CancelResult is Cancel's result.
type CancelResult struct {
	// ID is CancelArgs.ID.
	ID uint64 `json:"id"`
	// State is "queued" (answered canceled at once), "running" (signalled)
	// or "unknown" (already finished; not an error).
	State string `json:"state"`
}

// ShutdownResult is Shutdown's result.
type ShutdownResult struct {
	// Stopping is true.
	Stopping bool `json:"stopping"`
}

// StatsResult is GetStats's result.
type StatsResult struct {
	// WorkerID is the worker's name, as its host gave it.
	WorkerID string `json:"worker_id"`
	// PID is the worker's process id.
	PID int `json:"pid"`
	// Programs is the number of cached specs.
	Programs int `json:"programs"`
	// Calls counts the requests served, by command.
	Calls map[string]uint64 `json:"calls"`
	// Failures counts the requests that failed.
	Failures uint64 `json:"failures"`
	// InFlight counts the requests running, this one not included.
	InFlight int `json:"in_flight"`
	// RSSBytes is the worker's resident memory.
	RSSBytes uint64 `json:"rss_bytes"`
	// LM is the default LM.
	LM LMInfo `json:"lm"`
	// LMs are the named LMs, by name; empty when none.
	LMs map[string]LMInfo `json:"lms"`
	// UptimeMS is the time since the worker started, in milliseconds.
	UptimeMS int64 `json:"uptime_ms"`
}

// LMInfo names an LM configuration's provider and model in a StatsResult.
type LMInfo struct {
	Provider string `json:"provider"`
	Model    string `json:"model"`
}

// ResetResult is Reset's result.
type ResetResult struct {
	// Reset is true.
	Reset bool `json:"reset"`
}
