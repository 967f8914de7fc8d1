//go:build !chaos

package port_test

// roleStressRounds is how many adapters TestReadingRoleStress runs through
// in go test (make test); -tags chaos runs many more.
const roleStressRounds = 8
