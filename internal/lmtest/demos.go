package lmtest

import (
	"regexp"
	"strings"
)

// The needs_demos directive makes the server a model that learns from the
// prompt's demos only, so that a test can prove that an optimizer which
// chooses demos improves a program's score. A ChatAdapter prompt (DSPy's,
// or dspgo's native one) shows each demo as a user message, its input
// sections, and an assistant message, its output sections, before the last
// user message, the real inputs. The demo that teaches the real inputs is
// the one whose input values share the most words with them (words are
// runs of letters and digits, compared in lower case; the first demo wins
// a tie); a demo that shares no word teaches nothing. The reply takes each
// output field's text from the teaching demo, and the value rule's value
// for a field the demo does not supply or when no demo teaches: so the
// answer to an input is the right one only when the prompt holds a demo
// that teaches it.

// notSupplied is the text DSPy's ChatAdapter gives a field an incomplete
// demo lacks.
const notSupplied = "Not supplied for this particular example."

// respondMarker starts the paragraph after the real inputs of a
// ChatAdapter prompt.
const respondMarker = "Respond with the corresponding output fields"

var (
	// sectionHeader is a field's header; a name is of letters, digits and _
	// of any script, as Python's \w reads it (Go's \w is ASCII's).
	sectionHeader = regexp.MustCompile(`\[\[ ## ([\p{L}\p{N}_]+) ## \]\]`)
	wordPattern   = regexp.MustCompile(`[\p{L}\p{N}]+`)
)

// sections reads the [[ ## name ## ]] sections of a message: each value is
// the trimmed text up to the next header; [[ ## completed ## ]] and what
// follows it, and the paragraph that asks for the outputs, are left out.
func sections(text string) map[string]string {
	if i := strings.Index(text, respondMarker); i >= 0 {
		text = text[:i]
	}
	out := map[string]string{}
	heads := sectionHeader.FindAllStringSubmatchIndex(text, -1)
	for i, h := range heads {
		name := text[h[2]:h[3]]
		if name == "completed" {
			break
		}
		end := len(text)
		if i+1 < len(heads) {
			end = heads[i+1][0]
		}
		if v := strings.TrimSpace(text[h[1]:end]); v != notSupplied {
			out[name] = v
		}
	}
	return out
}

// words is the set of lower-case words of the values.
func words(values map[string]string) map[string]bool {
	out := map[string]bool{}
	for _, v := range values {
		for _, w := range wordPattern.FindAllString(strings.ToLower(v), -1) {
			out[w] = true
		}
	}
	return out
}

// teachingDemo returns the output sections of the demo that teaches the
// conversation's last user message, or nil when none does.
func teachingDemo(messages []Message) map[string]string {
	last := -1
	for i, m := range messages {
		if m.Role == "user" {
			last = i
		}
	}
	if last < 0 {
		return nil
	}
	query := words(sections(messages[last].Content))
	var best map[string]string
	bestShared := 0
	for i := 0; i+1 < last; i++ {
		if messages[i].Role != "user" || messages[i+1].Role != "assistant" {
			continue
		}
		shared := 0
		for w := range words(sections(messages[i].Content)) {
			if query[w] {
				shared++
			}
		}
		if shared > bestShared {
			best, bestShared = sections(messages[i+1].Content), shared
		}
	}
	return best
}

// demoContent is the content of a FormatChat reply under needs_demos: each
// field's text from the teaching demo, else reply's value.
func demoContent(messages []Message, reply Reply) string {
	demo := teachingDemo(messages)
	var b strings.Builder
	for _, f := range reply.Fields {
		b.WriteString("[[ ## " + f.Name + " ## ]]\n")
		if text, ok := demo[f.Name]; ok {
			b.WriteString(text)
		} else {
			t, err := parseTypeString(f.Type)
			if err != nil {
				t = &fieldType{kind: kindStr}
			}
			b.WriteString(valueText(reply.Values[f.Name], t))
		}
		b.WriteString("\n\n")
	}
	b.WriteString("[[ ## completed ## ]]\n")
	return b.String()
}
