package program

import (
	"encoding/json"
	"fmt"
	"net"
	"reflect"
	"strings"
)

// imageWant is what a dspy.Image takes, for errors.
const imageWant = `expected ` + ImageType + `, a data: URI or an http, https or gs URL, or an object {"url": one}`

// convertImage converts a dspy.Image value to {"url": u}: u itself, an
// object {"url": u}, a Go struct whose JSON encoding is one (dspgo.Image),
// or DSPy's text of one image (a saved program's demo). u is checked by
// ImageURLProblem.
func convertImage(v reflect.Value, path string) (reflect.Value, error) {
	v, err := mediaValue(v, "image_url", imageWant, path)
	if err != nil {
		return reflect.Value{}, err
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
	if problem := ImageURLProblem(url); problem != "" {
		return reflect.Value{}, fmt.Errorf("%s: %s", path, problem)
	}
	return reflect.ValueOf(map[string]any{"url": url}), nil
}

// ImageURLProblem says why u is not an image's URL, or returns "" when it
// is one: a data: URI, or an http, https or gs URL with a host (the
// scheme in any case), as dspy.Image takes them, with no space, control
// character, '<' or '>', and a host in brackets an IPv6 address, as
// Python's URL parser wants it. A local file's path is refused: a worker
// never reads one on a caller's word.
func ImageURLProblem(u string) string {
	if u == "" {
		return "an image's URL is empty"
	}
	if !isPlain(u) {
		return "an image's URL may not hold a space, a control character, < or >"
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
	if host == "" {
		return "an image's URL has no host"
	}
	if strings.ContainsAny(host, "[]") {
		_, inner, _ := strings.Cut(host, "[")
		inner, _, closed := strings.Cut(inner, "]")
		if ip := net.ParseIP(inner); !closed || ip == nil || !strings.Contains(inner, ":") {
			return "an image's URL has a host in [ ] that is not an IPv6 address"
		}
	}
	for i := 0; i < len(host); i++ {
		if host[i] >= 0x80 {
			return "an image's URL has a host that is not ASCII (write it in punycode)"
		}
	}
	return ""
}
