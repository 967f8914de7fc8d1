package program_test

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo/command"
	"github.com/dspgo/dspgo/internal/program"
	"github.com/dspgo/dspgo/internal/testutil"
)

func TestCanonical(t *testing.T) {
	tests := []struct {
		in   any
		want string
	}{
		{nil, `null`},
		{true, `true`},
		{"a\"b\\c\n\x01<>&\u2028é🎉", `"a\"b\\c\n\u0001<>&` + "\u2028é🎉" + `"`},
		{map[string]any{"b": 1, "a": []any{2, "x"}, "é": nil, "Z": 0}, `{"Z":0,"a":[2,"x"],"b":1,"é":null}`},
		{int64(-42), `-42`},
		{uint64(math.MaxUint64), `18446744073709551615`},
		{1.0, `1`},
		{math.Copysign(0, -1), `0`},
		{0.1, `0.1`},
		{1.5, `1.5`},
		{1e15 + 0.5, `1000000000000000.5`},
		{9007199254740992.0, `9007199254740992.0`},
		{1e16, `1e+16`},
		{1.2345e20, `1.2345e+20`},
		{1e-4 + 1e-9, `0.000100001`},
		{1.5e-7, `1.5e-07`},
		{5e-324, `5e-324`},
		{json.Number("1.0"), `1`},
		{json.Number("123456789012345678901234567890"), `123456789012345678901234567890`},
		{json.Number("-0"), `0`},
		{json.Number("2.5E3"), `2500`},
		{json.RawMessage(`{"b": [1.0, 2], "a": "x"}`), `{"a":"x","b":[1,2]}`},
		{[]string{"x"}, `["x"]`},
		{map[string][]int64{"k": {1}}, `{"k":[1]}`},
		{map[int64]string{10: "a", 9: "b", -1: "c"}, `{"-1":"c","10":"a","9":"b"}`}, // a dict[int, V]'s keys, sorted as text
		{command.Field{Name: "n", Type: "int"}, `{"description":"","name":"n","type":"int"}`},
	}
	for _, tt := range tests {
		got, err := program.Canonical(tt.in)
		require.NoError(t, err, "%#v", tt.in)
		assert.Equal(t, tt.want, string(got), "%#v", tt.in)
	}
	for _, bad := range []any{math.NaN(), math.Inf(1), map[bool]string{true: "x"}, make(chan int)} {
		_, err := program.Canonical(bad)
		assert.Error(t, err, "%#v", bad)
	}
}

// pythonCanonical is the reference rule in Python: the Python worker's
// canonical form must agree with it, and so must Go's.
const pythonCanonical = `
import json, sys
def norm(v):
    if isinstance(v, float):
        return int(v) if v.is_integer() and abs(v) < 2**53 else v
    if isinstance(v, list):
        return [norm(x) for x in v]
    if isinstance(v, dict):
        return {k: norm(x) for k, x in v.items()}
    return v
for line in sys.stdin:
    print(json.dumps(norm(json.loads(line)), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False))
`

func randomValue(r *rand.Rand, depth int) any {
	switch k := r.IntN(8); {
	case k == 0 && depth < 4:
		list := make([]any, r.IntN(4))
		for i := range list {
			list[i] = randomValue(r, depth+1)
		}
		return list
	case k == 1 && depth < 4:
		m := map[string]any{}
		for range r.IntN(4) {
			m[randomString(r)] = randomValue(r, depth+1)
		}
		return m
	case k == 2:
		return randomString(r)
	case k == 3:
		return r.Int64N(1<<62) - 1<<61
	case k == 4:
		return float64(r.IntN(2000)) / 8
	case k == 5:
		for {
			f := math.Float64frombits(r.Uint64())
			if !math.IsNaN(f) && !math.IsInf(f, 0) {
				return f
			}
		}
	case k == 6:
		return r.IntN(2) == 0
	}
	return nil
}

func randomString(r *rand.Rand) string {
	alphabet := []rune("aZ09 _\"\\/\n\t\x00\x1f\x7f<>&é世🎉\u2028\u00a0")
	var b strings.Builder
	for range r.IntN(8) {
		b.WriteRune(alphabet[r.IntN(len(alphabet))])
	}
	return b.String()
}

func TestCanonicalMatchesPython(t *testing.T) {
	testutil.VerifyNoChildren(t)
	r := rand.New(rand.NewPCG(1, 2))
	var input bytes.Buffer
	var want []string
	for range 2000 {
		v := randomValue(r, 0)
		line, err := json.Marshal(v)
		require.NoError(t, err)
		input.Write(line)
		input.WriteByte('\n')
		canon, err := program.CanonicalJSON(line)
		require.NoError(t, err)
		want = append(want, string(canon))
	}
	require.Equal(t, want, runPython(t, pythonCanonical, &input))
}

// TestCanonicalFloatsMatchPython checks Go float64 values (as the converted
// inputs of a float field hold them) against Python floats of the same bits.
func TestCanonicalFloatsMatchPython(t *testing.T) {
	testutil.VerifyNoChildren(t)
	r := rand.New(rand.NewPCG(3, 4))
	var input bytes.Buffer
	var want []string
	for i := range 5000 {
		var f float64
		switch i % 3 {
		case 0:
			f = math.Float64frombits(r.Uint64())
		case 1:
			f = r.NormFloat64() * math.Pow(10, float64(r.IntN(40)-20))
		default:
			f = float64(r.Int64N(1<<60)) * []float64{1, 0.5, 0.001, 1e6}[r.IntN(4)]
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		input.WriteString(strconv.FormatFloat(f, 'x', -1, 64) + "\n")
		canon, err := program.Canonical(f)
		require.NoError(t, err)
		want = append(want, string(canon))
	}
	const script = `
import json, sys
for line in sys.stdin:
    v = float.fromhex(line.strip())
    v = int(v) if v.is_integer() and abs(v) < 2**53 else v
    print(json.dumps(v))
`
	require.Equal(t, want, runPython(t, script, &input))
}

func runPython(t *testing.T, script string, stdin *bytes.Buffer) []string {
	t.Helper()
	cmd := exec.Command(testutil.Python(t), "-c", script)
	cmd.Env = []string{"PYTHONIOENCODING=utf-8"}
	cmd.Stdin = stdin
	out, err := cmd.Output()
	require.NoError(t, err)
	return strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
}
