package port

// Names exported for the tests of package port_test only, in the style of
// jackc/puddle's export_test.go: they are not part of the package's API.
var (
	ReapOrphans       = reapOrphans
	StateDir          = stateDir
	EmbeddedWorkerDir = embeddedWorkerDir
)
