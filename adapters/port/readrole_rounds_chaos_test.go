//go:build chaos

package port_test

// roleStressRounds: the long run of TestReadingRoleStress (go test -tags
// chaos).
const roleStressRounds = 200
