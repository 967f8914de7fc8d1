package program

// The command set's names and types are package command's, the public
// contract, and every package says them as command.X. The aliases left
// here are those the remote adapter and the worker's Go tests still use;
// they go once those say command.X too.

import "github.com/dspgo/dspgo/command"

// The command set's names still used through this package; say
// command.Ping and so on instead.
const (
	CmdPing           = command.Ping
	CmdDescribe       = command.Describe
	CmdConfigureLM    = command.ConfigureLM
	CmdCreateProgram  = command.CreateProgram
	CmdExecuteProgram = command.ExecuteProgram
	CmdDeleteProgram  = command.DeleteProgram
)

// SpecNotFoundType is command.SpecNotFoundType.
const SpecNotFoundType = command.SpecNotFoundType

// CreateResult is command.CreateResult.
type CreateResult = command.CreateResult
