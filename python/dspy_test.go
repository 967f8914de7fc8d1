package python

import "testing"

func TestTestedDSPyVersion(t *testing.T) {
	if v := TestedDSPyVersion(); v == "" {
		t.Fatal("requirements-dspy.lock pins no dspy==X.Y.Z")
	}
	for _, tc := range []struct{ file, want string }{
		{"# comment\ndspy-ai==1.0\ndspy==3.4.1\n", "3.4.1"},
		{"DSPy == 2.6.0 ; python_version >= '3.10'  # pinned\n", "2.6.0"},
		{"dspy>=3\n", ""},
		{"", ""},
	} {
		if got := pinnedVersion(tc.file, "dspy"); got != tc.want {
			t.Errorf("pinnedVersion(%q) = %q, want %q", tc.file, got, tc.want)
		}
	}
}
