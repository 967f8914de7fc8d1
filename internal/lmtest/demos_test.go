package lmtest

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNeedsDemos(t *testing.T) {
	system := Message{Role: "system", Content: "Your input fields are:\n1. `text` (str):\nYour output fields are:\n" +
		"1. `label` (str):\n2. `n` (int):\nAll interactions will be structured in the following way."}
	demo := func(text, label string) []Message {
		return []Message{
			{Role: "user", Content: "[[ ## text ## ]]\n" + text},
			{Role: "assistant", Content: "[[ ## label ## ]]\n" + label + "\n\n[[ ## n ## ]]\n" + notSupplied + "\n\n[[ ## completed ## ]]"},
		}
	}
	query := Message{Role: "user", Content: "[[ ## text ## ]]\nApple tart\n\nRespond with the corresponding output fields, starting with the field `[[ ## label ## ]]`."}
	withDemos := func(demos ...[]Message) []Message {
		msgs := []Message{system}
		for _, d := range demos {
			msgs = append(msgs, d...)
		}
		return append(msgs, query)
	}
	n, err := Value("n", "int")
	require.NoError(t, err)
	ruled, err := Value("label", "str")
	require.NoError(t, err)
	for name, tc := range map[string]struct {
		msgs  []Message
		label string
	}{
		"no demo":              {withDemos(), ruled.(string)},
		"no shared word":       {withDemos(demo("raw carrot", "vegetable")), ruled.(string)},
		"the teaching demo":    {withDemos(demo("raw carrot", "vegetable"), demo("ripe apple", "fruit")), "fruit"},
		"most shared words":    {withDemos(demo("apple juice", "drink"), demo("apple tart recipe", "dessert")), "dessert"},
		"first of a tie":       {withDemos(demo("apple pie", "first"), demo("green apple", "second")), "first"},
		"case and punctuation": {withDemos(demo("APPLE!", "fruit")), "fruit"},
	} {
		t.Run(name, func(t *testing.T) {
			reply := Respond(tc.msgs, nil)
			require.Equal(t, FormatChat, reply.Format)
			want := "[[ ## label ## ]]\n" + tc.label + "\n\n[[ ## n ## ]]\n" + marshal(n) + "\n\n[[ ## completed ## ]]\n"
			assert.Equal(t, want, demoContent(tc.msgs, reply))
		})
	}
}

func TestNeedsDemosDirective(t *testing.T) {
	_, f, err := ParseModel("test-model+needs_demos,latency=1ms")
	require.NoError(t, err)
	assert.True(t, f.NeedsDemos)
	assert.False(t, f.fails(), "needs_demos is a way of answering, not a failure")
	_, _, err = ParseModel("test-model+needs_demos=1")
	assert.ErrorContains(t, err, "takes no value")
}

// TestNeedsDemosUnicodeNames: fields named in other letters than ASCII's
// (réponse, 答え) are read from the demos' sections as ASCII ones are.
func TestNeedsDemosUnicodeNames(t *testing.T) {
	system := Message{Role: "system", Content: "Your input fields are:\n1. `frage` (str):\nYour output fields are:\n" +
		"1. `réponse` (str):\n2. `答え` (str):\nAll interactions will be structured in the following way."}
	msgs := []Message{system,
		{Role: "user", Content: "[[ ## frage ## ]]\nripe apple"},
		{Role: "assistant", Content: "[[ ## réponse ## ]]\nfruit\n\n[[ ## 答え ## ]]\n果物\n\n[[ ## completed ## ]]"},
		{Role: "user", Content: "[[ ## frage ## ]]\nApple tart\n\nRespond with the corresponding output fields, starting with the field `[[ ## réponse ## ]]`."},
	}
	reply := Respond(msgs, nil)
	require.Equal(t, FormatChat, reply.Format)
	assert.Equal(t, "[[ ## réponse ## ]]\nfruit\n\n[[ ## 答え ## ]]\n果物\n\n[[ ## completed ## ]]\n", demoContent(msgs, reply))
}
