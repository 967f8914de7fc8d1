package program

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// audioWant is what a dspy.Audio takes, for errors.
const audioWant = `expected ` + AudioType + `, a data:audio/… URI or an object {"data": base64, "audio_format": "wav"}`

// maxAudioFormatBytes bounds a dspy.Audio's format ("wav", "mp3").
const maxAudioFormatBytes = 16

// convertAudio converts a dspy.Audio value to {"data": d, "audio_format":
// f}: a data URI "data:audio/<f>;base64,<d>" (an "x-" before f dropped,
// as DSPy drops it), such an object, a Go struct whose JSON encoding is
// one (dspgo.Audio), or DSPy's text of one sound (an "input_audio" part,
// {"data", "format"}, a saved program's demo). d is base64; f 1 to 16
// lower-case letters and digits.
func convertAudio(v reflect.Value, path string) (reflect.Value, error) {
	v, err := mediaValue(v, "input_audio", audioWant, path)
	if err != nil {
		return reflect.Value{}, err
	}
	var fields map[string]string
	switch {
	case !v.IsValid() || v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer:
		return reflect.Value{}, fmt.Errorf("%s: %s, got null", path, audioWant)
	case v.Kind() == reflect.String && v.Type() != reflect.TypeFor[json.Number]():
		var ok bool
		if fields, ok = audioDataURI(v.String()); !ok {
			return reflect.Value{}, fmt.Errorf("%s: a sound is a data:audio/<format>;base64,… URI or an object {\"data\", \"audio_format\"} (a local file's path is not read)", path)
		}
	case v.Kind() == reflect.Map:
		if fields, err = mediaObject(v, []string{"audio_format", "data"}, AudioType, audioWant, path); err != nil {
			return reflect.Value{}, err
		}
	default:
		return reflect.Value{}, fmt.Errorf("%s: %s, got %s", path, audioWant, describe(v))
	}
	for _, k := range []string{"data", "audio_format"} {
		if _, ok := fields[k]; !ok {
			return reflect.Value{}, fmt.Errorf("%s: %s, got an object without %q", path, audioWant, k)
		}
	}
	data, format := fields["data"], fields["audio_format"]
	if !isBase64(data) {
		return reflect.Value{}, fmt.Errorf("%s.data: a sound's data is its bytes in base64 (A–Z, a–z, 0–9, + and /, padded with =)", path)
	}
	if format == "" || len(format) > maxAudioFormatBytes || strings.Trim(format, "abcdefghijklmnopqrstuvwxyz0123456789") != "" {
		return reflect.Value{}, fmt.Errorf("%s.audio_format: a sound's format is 1 to %d lower-case letters and digits (wav, mp3)", path, maxAudioFormatBytes)
	}
	return reflect.ValueOf(map[string]any{"data": data, "audio_format": format}), nil
}

// audioDataURI reads "data:audio/<format>;…;base64,<data>" as DSPy reads
// it: the format after "audio/" up to the first ";", an "x-" before it
// dropped.
func audioDataURI(s string) (map[string]string, bool) {
	rest, ok := strings.CutPrefix(s, "data:audio/")
	if !ok {
		return nil, false
	}
	header, data, ok := strings.Cut(rest, ",")
	if !ok || !strings.HasSuffix(header, ";base64") {
		return nil, false
	}
	format, _, _ := strings.Cut(header, ";")
	return map[string]string{"data": data, "audio_format": strings.TrimPrefix(format, "x-")}, true
}

// isBase64 reports whether s is non-empty standard base64: its alphabet,
// a length divisible by 4, at most two = at the end.
func isBase64(s string) bool {
	body := strings.TrimRight(s, "=")
	if s == "" || len(s)%4 != 0 || len(s)-len(body) > 2 {
		return false
	}
	return strings.Trim(body, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") == ""
}
