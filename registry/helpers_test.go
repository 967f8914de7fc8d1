package registry_test

import "github.com/dspgo/dspgo/internal/testutil"

func testutilRoot() string { return testutil.RepoRoot() }
