package program

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"github.com/dspgo/dspgo/internal/jsontext"
)

// The markers around a DSPy custom type's content parts in text, as DSPy
// (3.4.1, dspy.Type) writes an image into a prompt and into a saved
// program's demos.
const (
	customTypeStart = "<<CUSTOM-TYPE-START-IDENTIFIER>>"
	customTypeEnd   = "<<CUSTOM-TYPE-END-IDENTIFIER>>"
)

// imageWant is what a dspy.Image takes, for errors.
const imageWant = `expected ` + ImageType + `, a data: URI or an http, https or gs URL, or an object {"url": one}`

// convertImage converts a dspy.Image value to {"url": u}: u itself, an
// object {"url": u}, a Go struct whose JSON encoding is one (dspgo.Image),
// or DSPy's text of one image (a saved program's demo). u is checked by
// ImageURLProblem.
func convertImage(v reflect.Value, path string) (reflect.Value, error) {
	v, err := structAsJSON(v)
	if err != nil {
		return reflect.Value{}, fmt.Errorf("%s: %s: %v", path, imageWant, err)
	}
	if v.IsValid() && v.Kind() == reflect.Map {
		if v, err = soleKey(v, "url", ImageType, imageWant, path); err != nil {
			return reflect.Value{}, err
		}
		path += ".url"
		v = indirect(v)
	}
	if !v.IsValid() || v.Kind() != reflect.String || v.Type() == reflect.TypeFor[json.Number]() {
		if !v.IsValid() || v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer {
			return reflect.Value{}, fmt.Errorf("%s: %s, got null", path, imageWant)
		}
		return reflect.Value{}, fmt.Errorf("%s: %s, got %s", path, imageWant, describe(v))
	}
	url := v.String()
	if strings.HasPrefix(url, customTypeStart) {
		if url, err = imageFromDSPyText(url); err != nil {
			return reflect.Value{}, fmt.Errorf("%s: %v", path, err)
		}
	}
	if problem := ImageURLProblem(url); problem != "" {
		return reflect.Value{}, fmt.Errorf("%s: %s", path, problem)
	}
	return reflect.ValueOf(map[string]any{"url": url}), nil
}

// ImageURLProblem says why u is not an image's URL, or returns "" when it
// is one: a data: URI, or an http, https or gs URL with a host (the
// scheme in any case), as dspy.Image takes them, with no space or control
// character. A local file's path is refused: a worker never reads one on a
// caller's word.
func ImageURLProblem(u string) string {
	if u == "" {
		return "an image's URL is empty"
	}
	for i := 0; i < len(u); i++ {
		if u[i] <= ' ' || u[i] == 0x7f {
			return "an image's URL may not hold a space or a control character"
		}
	}
	if strings.HasPrefix(u, "data:") {
		return ""
	}
	scheme, rest, ok := strings.Cut(u, "://")
	switch strings.ToLower(scheme) {
	case "http", "https", "gs":
	default:
		ok = false
	}
	if !ok {
		return "an image is a data: URI or an http, https or gs URL (a local file's path is not read: give its data: URI)"
	}
	host := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		host = rest[:i]
	}
	switch {
	case host == "":
		return "an image's URL has no host"
	case strings.Count(host, "[") != strings.Count(host, "]"):
		return "an image's URL has an unclosed [ in its host"
	}
	for i := 0; i < len(host); i++ {
		if host[i] >= 0x80 {
			return "an image's URL has a host that is not ASCII (write it in punycode)"
		}
	}
	return ""
}

// imageFromDSPyText reads the URL of DSPy's text of one image:
// <<CUSTOM-TYPE-START-IDENTIFIER>>[{"type": "image_url", "image_url":
// {"url": u}}]<<CUSTOM-TYPE-END-IDENTIFIER>>.
func imageFromDSPyText(s string) (string, error) {
	bad := fmt.Errorf("%s: a DSPy custom type's text that is not one image", imageWant)
	inner, ok := strings.CutSuffix(strings.TrimPrefix(s, customTypeStart), customTypeEnd)
	if !ok {
		return "", bad
	}
	var parts []map[string]any
	if json.Unmarshal([]byte(inner), &parts) != nil || len(parts) != 1 || parts[0]["type"] != "image_url" {
		return "", bad
	}
	image, _ := parts[0]["image_url"].(map[string]any)
	url, ok := image["url"].(string)
	if !ok {
		return "", bad
	}
	return url, nil
}

// ImageDSPyText is DSPy's text of one image of the given URL, as
// dspy.Image writes it into a prompt and a saved program's demos.
func ImageDSPyText(url string) string {
	b := []byte(customTypeStart + `[{"type": "image_url", "image_url": {"url": `)
	b = jsontext.AppendString(b, url)
	return string(append(b, `}}]`+customTypeEnd...))
}

// MapImages returns v, a converted value of type t (Convert's), with each
// dspy.Image in it, {"url": u}, replaced by image(u); the lists and maps
// that hold one are copied, the rest is v's. t must not hold an Image in a
// Union, which ParseType refuses.
func MapImages(t Type, v any, image func(url string) any) any {
	if v == nil || !t.HasImage() {
		return v
	}
	switch t.Kind {
	case Image:
		url, _ := v.(map[string]any)["url"].(string)
		return image(url)
	case Optional:
		return MapImages(*t.Elem, v, image)
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
				out[i] = MapImages(*elem, rv.Index(i).Interface(), image)
			}
			return out
		case reflect.Map:
			out := reflect.MakeMapWithSize(reflect.MapOf(rv.Type().Key(), anyType), rv.Len())
			for it := rv.MapRange(); it.Next(); {
				e := reflect.New(anyType).Elem() // a nil stays a key's value
				if mapped := MapImages(*t.Elem, it.Value().Interface(), image); mapped != nil {
					e.Set(reflect.ValueOf(mapped))
				}
				out.SetMapIndex(it.Key(), e)
			}
			return out.Interface()
		}
	}
	return v
}
