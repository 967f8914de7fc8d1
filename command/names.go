package command

import "github.com/dspgo/dspgo/protocol"

// The commands every backend implements (docs/protocol.md, "Built-in
// commands" and "The program command set"). The control commands are the
// protocol's own (protocol.CmdPing and the rest): a worker's reading loop
// answers them at once.
const (
	// Ping answers at once (PingResult); with protocol.InitPingArgs it is
	// the host's handshake (InitResult). Its arguments are not checked.
	Ping = protocol.CmdPing
	// Describe lists the worker's commands and their arguments
	// (DescribeResult).
	Describe = protocol.CmdDescribe
	// Cancel cancels the request in flight with the id it names
	// (CancelArgs, CancelResult). Only the host running a worker sends it.
	Cancel = protocol.CmdCancel
	// Shutdown stops the worker (ShutdownResult). Only the host running a
	// worker sends it.
	Shutdown = protocol.CmdShutdown

	// ConfigureLM sets one language model configuration, the default or a
	// named one (LMArgs, ConfigureLMResult). Hosts broadcast it to every
	// current and future worker.
	ConfigureLM = "configure_lm"
	// CreateProgram compiles and caches a spec (CreateArgs, CreateResult).
	// It is idempotent.
	CreateProgram = "create_program"
	// ExecuteProgram runs a program on inputs (ExecuteArgs,
	// ExecuteResult).
	ExecuteProgram = "execute_program"
	// DeleteProgram drops a cached spec (DeleteArgs, DeleteResult).
	DeleteProgram = "delete_program"
	// GetStats reports the worker's counters (StatsResult).
	GetStats = "get_stats"
	// Reset drops every cached spec, counter and named LM and restores the
	// dummy LM as the default (ResetResult).
	Reset = "reset"
)
