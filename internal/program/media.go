package program

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"github.com/dspgo/dspgo/internal/jsontext"
)

// The markers around a DSPy custom type's content parts in text, as DSPy
// (3.4.1, dspy.Type) writes an image or a file into a prompt and into a
// saved program's demos.
const (
	customTypeStart = "<<CUSTOM-TYPE-START-IDENTIFIER>>"
	customTypeEnd   = "<<CUSTOM-TYPE-END-IDENTIFIER>>"
)

// MediaNote says what the media type media (ImageType, FileType) is, for
// errors: "an image for the model to see".
func MediaNote(media string) string {
	switch media {
	case FileType:
		return "a file for the model to read"
	case AudioType:
		return "a sound for the model to hear"
	}
	return "an image for the model to see"
}

// MapMedia returns v, a converted value of type t (Convert's), with each
// dspy.Image, dspy.File and dspy.Audio in it replaced by media(its type,
// its value);
// the lists and maps that hold one are copied, the rest is v's. t must
// not hold one in a Union, which ParseType refuses.
func MapMedia(t Type, v any, media func(t Type, v map[string]any) any) any {
	if v == nil || t.Media() == "" {
		return v
	}
	switch t.Kind {
	case Image, File, Audio:
		m, _ := v.(map[string]any)
		return media(t, m)
	case Optional:
		return MapMedia(*t.Elem, v, media)
	case List, Tuple, Dict:
		rv := reflect.ValueOf(v)
		switch rv.Kind() {
		case reflect.Slice:
			out := make([]any, rv.Len())
			for i := range out {
				elem := t.Elem
				if t.Kind == Tuple && !t.Variadic {
					elem = &t.Members[i]
				}
				out[i] = MapMedia(*elem, rv.Index(i).Interface(), media)
			}
			return out
		case reflect.Map:
			out := reflect.MakeMapWithSize(reflect.MapOf(rv.Type().Key(), anyType), rv.Len())
			for it := rv.MapRange(); it.Next(); {
				e := reflect.New(anyType).Elem() // a nil stays a key's value
				if mapped := MapMedia(*t.Elem, it.Value().Interface(), media); mapped != nil {
					e.Set(reflect.ValueOf(mapped))
				}
				out.SetMapIndex(it.Key(), e)
			}
			return out.Interface()
		}
	}
	return v
}

// MediaDSPyText is DSPy's text of an image, a file or a sound, v a
// converted value of type t (an Image, a File or an Audio), as DSPy
// writes it into a prompt and a saved program's demos:
// <<CUSTOM-TYPE-START-IDENTIFIER>>[{"type": "image_url", "image_url":
// {"url": …}}]<<CUSTOM-TYPE-END-IDENTIFIER>>, a "file" part {"file_data":
// …, "filename": …} or an "input_audio" part {"data": …, "format": …}.
func MediaDSPyText(t Type, v map[string]any) string {
	part, keys := "image_url", [][2]string{{"url", "url"}}
	switch t.Kind {
	case File:
		part, keys = "file", [][2]string{{"file_data", "file_data"}, {"filename", "filename"}}
	case Audio:
		part, keys = "input_audio", [][2]string{{"data", "data"}, {"audio_format", "format"}}
	}
	b := []byte(customTypeStart + `[{"type": "` + part + `", "` + part + `": {`)
	first := true
	for _, k := range keys {
		s, ok := v[k[0]].(string)
		if !ok {
			continue
		}
		if !first {
			b = append(b, ", "...)
		}
		first = false
		b = jsontext.AppendString(b, k[1])
		b = jsontext.AppendString(append(b, ": "...), s)
	}
	return string(append(b, `}}]`+customTypeEnd...))
}

// mediaPart reads DSPy's text of one content part of type part
// ("image_url", "file", "input_audio") and returns the part's object, its
// values strings; want says what was expected, for the error.
func mediaPart(s, part, want string) (map[string]any, error) {
	bad := fmt.Errorf("%s: a DSPy custom type's text that is not one %s part", want, part)
	inner, ok := strings.CutSuffix(strings.TrimPrefix(s, customTypeStart), customTypeEnd)
	if !ok {
		return nil, bad
	}
	var parts []map[string]any
	if json.Unmarshal([]byte(inner), &parts) != nil || len(parts) != 1 || parts[0]["type"] != part {
		return nil, bad
	}
	object, ok := parts[0][part].(map[string]any)
	if !ok {
		return nil, bad
	}
	for _, v := range object {
		if _, ok := v.(string); !ok {
			return nil, bad
		}
	}
	return object, nil
}

// mediaObject reads a dspy.Image's or dspy.File's object: each key must be
// one of keys, each value a string (or null, as if absent); it returns the
// strings by key. typ and want name the type and what it takes, for errors.
func mediaObject(v reflect.Value, keys []string, typ, want, path string) (map[string]string, error) {
	if v.Type().Key().Kind() != reflect.String {
		return nil, fmt.Errorf("%s: %s, got %s", path, want, describe(v))
	}
	out := map[string]string{}
	for _, k := range sortedKeys(v) {
		name := k.String()
		if !slices.Contains(keys, name) {
			quoted := make([]string, len(keys))
			for i, key := range keys {
				quoted[i] = fmt.Sprintf("%q", key)
			}
			return nil, fmt.Errorf("%s: %q is not a key of a %s (its keys: %s)", path, name, typ, strings.Join(quoted, ", "))
		}
		e := indirect(v.MapIndex(k))
		switch {
		case !e.IsValid() || e.Kind() == reflect.Interface || e.Kind() == reflect.Pointer:
		case e.Kind() == reflect.String && e.Type() != reflect.TypeFor[json.Number]():
			out[name] = e.String()
		default:
			return nil, fmt.Errorf("%s.%s: expected a string, got %s", path, name, describe(e))
		}
	}
	return out, nil
}

// partKeys are the keys of a DSPy content part that the value of its type
// names otherwise: an input_audio part's "format" is a dspy.Audio's
// "audio_format".
var partKeys = map[string]map[string]string{"input_audio": {"format": "audio_format"}}

// mediaValue is v, the value given for a dspy.Image, dspy.File or
// dspy.Audio, as an object: a Go struct's JSON encoding (dspgo.Image,
// dspgo.File, dspgo.Audio) or DSPy's text of one part of type part, its
// keys as the value names them (partKeys); a string other than DSPy's
// text is returned as it is.
func mediaValue(v reflect.Value, part, want, path string) (reflect.Value, error) {
	v, err := structAsJSON(v)
	if err != nil {
		return reflect.Value{}, fmt.Errorf("%s: %s: %v", path, want, err)
	}
	if !v.IsValid() || v.Kind() != reflect.String || v.Type() == reflect.TypeFor[json.Number]() || !strings.HasPrefix(v.String(), customTypeStart) {
		return v, nil
	}
	object, err := mediaPart(v.String(), part, want)
	if err != nil {
		return reflect.Value{}, fmt.Errorf("%s: %v", path, err)
	}
	renamed := make(map[string]any, len(object))
	for k, e := range object {
		if to, ok := partKeys[part][k]; ok {
			k = to
		}
		renamed[k] = e
	}
	return reflect.ValueOf(renamed), nil
}

// isPlain says whether s holds no space, control character, '<' or '>':
// none of them belongs in a URL or a data: URI, and '<' and '>' would let
// a value hold DSPy's custom-type markers.
func isPlain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f || c == '<' || c == '>' {
			return false
		}
	}
	return true
}
