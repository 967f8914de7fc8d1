package dspgo_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/mock"
)

// Programs over sounds: a dspy.Audio input is given as a data:audio/…
// URI, {"data": …, "audio_format": …} or a dspgo.Audio; the mock and a
// Python worker take it alike and agree on the dummy LM's outputs, and
// refuse a path, data that is not base64 and a sound output.
func TestAudioInputs(t *testing.T) {
	ctx := t.Context()
	sig := dspgo.MustParseSignature("recording: dspy.Audio -> transcript")
	clip := dspgo.AudioData("wav", []byte("RIFF"))
	assert.Equal(t, dspgo.Audio{Data: "UklGRg==", Format: "wav"}, clip)
	forms := []any{clip, "data:audio/wav;base64,UklGRg==", map[string]any{"data": "UklGRg==", "audio_format": "wav"}}
	var transcripts []any
	for _, c := range mockAndPython(t) {
		p, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: sig})
		require.NoError(t, err)
		for _, recording := range forms {
			out, err := c.Execute(ctx, p.ID, map[string]any{"recording": recording})
			require.NoError(t, err, "%v", recording)
			transcripts = append(transcripts, out["transcript"])
		}
		for _, bad := range []struct {
			value any
			why   string
		}{
			{"song.wav", "input recording: a sound is a data:audio/<format>;base64,… URI"},
			{dspgo.Audio{Data: "not base64!", Format: "wav"}, "input recording.data: a sound's data is its bytes in base64"},
			{dspgo.Audio{Data: "UklGRg==", Format: "WAV"}, "input recording.audio_format: a sound's format is 1 to 16 lower-case letters and digits"},
		} {
			_, err := c.Execute(ctx, p.ID, map[string]any{"recording": bad.value})
			assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err), "%v", bad.value)
			assert.ErrorContains(t, err, bad.why)
		}
	}
	for _, transcript := range transcripts {
		assert.Equal(t, transcripts[0], transcript, "every form, on both backends, is the same sound")
	}

	type hearIn struct{ Recording dspgo.Audio }
	hear, err := dspgo.NewTyped[hearIn, struct{ Transcript string }](ctx, dspgo.NewClient(mock.New(mock.Options{})), dspgo.ProgramSpec{})
	require.NoError(t, err)
	assert.Equal(t, "recording: dspy.Audio -> transcript", hear.Program().Spec.Signature.String())
	_, err = hear.Execute(ctx, hearIn{Recording: clip})
	require.NoError(t, err)
	_, err = dspgo.ParseSignature("question -> audio: dspy.Audio")
	assert.ErrorContains(t, err, `output field "audio": dspy.Audio is an input type (a sound for the model to hear)`)
}
