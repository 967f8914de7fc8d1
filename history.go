package dspgo

import "encoding/json"

// History is a dspy.History input's value as a Go type: the conversation
// so far, each message an earlier turn holding values of the signature's
// fields by name ({"question": "Who wrote it?", "answer": "Ann"}). A
// NewTyped In field of this type is the signature's dspy.History input; in
// a map of inputs, a History (or *History) or map[string]any{"messages":
// []map[string]any{…}} gives it (docs/dspy.md, "Conversations"). Nil
// Messages means no earlier turn.
type History struct {
	// Messages are the earlier turns, oldest first.
	Messages []map[string]any `json:"messages"`
}

// MarshalJSON writes h as a dspy.History's JSON object, nil Messages as
// none: {"messages": []}.
func (h History) MarshalJSON() ([]byte, error) {
	type plain History // without this method
	if h.Messages == nil {
		h.Messages = []map[string]any{}
	}
	return json.Marshal(plain(h))
}
