package program

// The command set's names and types are package command's, the public
// contract; these aliases let the rest of the package, and its users,
// say them as before.

import "github.com/dspgo/dspgo/command"

// The command set's names, from the public contract (package command).
const (
	CmdPing           = command.Ping
	CmdDescribe       = command.Describe
	CmdConfigureLM    = command.ConfigureLM
	CmdCreateProgram  = command.CreateProgram
	CmdExecuteProgram = command.ExecuteProgram
	CmdDeleteProgram  = command.DeleteProgram
	CmdGetStats       = command.GetStats
	CmdReset          = command.Reset
	CmdShutdown       = command.Shutdown
	CmdCancel         = command.Cancel
)

// SpecNotFoundType is command.SpecNotFoundType.
const SpecNotFoundType = command.SpecNotFoundType

// The command set's argument and result types (package command).
type (
	CreateArgs    = command.CreateArgs
	CreateResult  = command.CreateResult
	ExecuteArgs   = command.ExecuteArgs
	ToolSpec      = command.ToolSpec
	Step          = command.Step
	ExecuteResult = command.ExecuteResult
	Usage         = command.Usage
	DeleteArgs    = command.DeleteArgs
	LMArgs        = command.LMArgs
	ScriptStep    = command.ScriptStep
)

// Bounds of a react loop's steps (package command).
const (
	DefaultMaxIters = command.DefaultMaxIters
	MaxIters        = command.MaxIters
)

// Program kinds (package command).
const (
	KindPredict        = command.KindPredict
	KindChainOfThought = command.KindChainOfThought
	KindReact          = command.KindReact
)

// ReasoningField is command.ReasoningField.
const ReasoningField = command.ReasoningField

// The spec's types (package command).
type (
	Field     = command.Field
	Signature = command.Signature
	Spec      = command.Spec
)

// Demo is command.Demo.
type Demo = command.Demo

// MaxLMNameBytes is command.MaxLMNameBytes.
const MaxLMNameBytes = command.MaxLMNameBytes

// StreamDelta is command.Delta.
type StreamDelta = command.Delta
