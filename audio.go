package dspgo

import "encoding/base64"

// Audio is a dspy.Audio input's value as a Go type: a sound for the model
// to hear (a model that takes OpenAI's input_audio parts), sent whole.
// Data is its bytes in base64, Format its format ("wav", "mp3"); see
// AudioData. A NewTyped In field of this type (or []Audio, *Audio) is a
// dspy.Audio input; in a map of inputs, an Audio, a
// "data:audio/wav;base64,…" URI or map[string]any{"data": …,
// "audio_format": …} gives it (docs/dspy.md, "Sounds"). The zero Audio
// has no data and is refused.
type Audio struct {
	// Data is the sound's bytes in base64.
	Data string `json:"data"`
	// Format is the sound's format: 1 to 16 lower-case letters and
	// digits, such as "wav" or "mp3".
	Format string `json:"audio_format"`
}

// AudioData returns the sound of data, a sound file's bytes of the given
// format ("wav", "mp3").
func AudioData(format string, data []byte) Audio {
	return Audio{Data: base64.StdEncoding.EncodeToString(data), Format: format}
}
