package program

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"
)

// fileWant is what a dspy.File takes, for errors.
const fileWant = `expected ` + FileType + `, a data: URI or an object {"file_data": a data: URI, "filename": its name}`

// maxFilenameBytes bounds a dspy.File's filename.
const maxFilenameBytes = 255

// convertFile converts a dspy.File value to {"file_data": d} or
// {"file_data": d, "filename": n}: d itself, such an object, a Go struct
// whose JSON encoding is one (dspgo.File), or DSPy's text of one file (a
// saved program's demo). d is a data: URI; n, when given, a name of 1 to
// 255 bytes without control characters. A file_id (a file stored with the
// model's provider under the worker's key, which a caller could name to
// read another's) is refused.
func convertFile(v reflect.Value, path string) (reflect.Value, error) {
	v, err := mediaValue(v, "file", fileWant, path)
	if err != nil {
		return reflect.Value{}, err
	}
	var fields map[string]string
	dataPath := path
	switch {
	case !v.IsValid() || v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer:
		return reflect.Value{}, fmt.Errorf("%s: %s, got null", path, fileWant)
	case v.Kind() == reflect.String && v.Type() != reflect.TypeFor[json.Number]():
		fields = map[string]string{"file_data": v.String()}
	case v.Kind() == reflect.Map:
		if v.Type().Key().Kind() == reflect.String && v.MapIndex(reflect.ValueOf("file_id").Convert(v.Type().Key())).IsValid() {
			return reflect.Value{}, fmt.Errorf("%s: a file_id names a file stored with the model's provider under the worker's key, which a caller could name to read another's: send file_data, the file's data: URI", path)
		}
		if fields, err = mediaObject(v, []string{"file_data", "filename"}, FileType, fileWant, path); err != nil {
			return reflect.Value{}, err
		}
		if _, ok := fields["file_data"]; !ok {
			return reflect.Value{}, fmt.Errorf("%s: %s, got an object without \"file_data\"", path, fileWant)
		}
		dataPath += ".file_data"
	default:
		return reflect.Value{}, fmt.Errorf("%s: %s, got %s", path, fileWant, describe(v))
	}
	if data := fields["file_data"]; !strings.HasPrefix(data, "data:") || !isPlain(data) {
		return reflect.Value{}, fmt.Errorf("%s: a file is a data: URI (data:application/pdf;base64,…), with no space, control character, < or > (a local file's path is not read: give its data: URI)", dataPath)
	}
	out := map[string]any{"file_data": fields["file_data"]}
	if name, ok := fields["filename"]; ok {
		if name == "" || len(name) > maxFilenameBytes || strings.ContainsFunc(name, func(r rune) bool { return r < ' ' || r == 0x7f || r == '<' || r == '>' }) || !utf8.ValidString(name) {
			return reflect.Value{}, fmt.Errorf("%s.filename: a file's name is 1 to %d bytes without control characters, < or >", path, maxFilenameBytes)
		}
		out["filename"] = name
	}
	return reflect.ValueOf(out), nil
}
