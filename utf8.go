package dspgo

import (
	"reflect"
	"strconv"
	"unicode/utf8"
)

// checkUTF8 returns the path of the first string of inputs (a value or a
// map key, at any depth) that is not valid UTF-8, and what it is (`string
// "…"`, `key "…"`); "" when every string is UTF-8. Encoding such a string as JSON would replace its
// bad bytes with U+FFFD without a word, and the program would run on
// another text than the caller's.
func checkUTF8(inputs map[string]any) (path, bad string) {
	for name, v := range inputs {
		if !utf8.ValidString(name) {
			return "inputs", describeBad("key", name)
		}
		if p, s := badString(v, "input "+name, 0); p != "" {
			return p, s
		}
	}
	return "", ""
}

// maxUTF8Depth stops the walk of values nested deeper than any that
// converts (and of values that contain themselves).
const maxUTF8Depth = 256

func badString(v any, path string, depth int) (string, string) {
	if depth > maxUTF8Depth {
		return "", ""
	}
	// The types inputs usually have, without reflection.
	switch v := v.(type) {
	case nil, bool, int, int64, float64:
		return "", ""
	case string:
		if !utf8.ValidString(v) {
			return path, describeBad("string", v)
		}
		return "", ""
	case []string:
		for i, s := range v {
			if !utf8.ValidString(s) {
				return path + "[" + strconv.Itoa(i) + "]", describeBad("string", s)
			}
		}
		return "", ""
	case []any:
		for i, e := range v {
			if p, s := badString(e, path+"["+strconv.Itoa(i)+"]", depth+1); p != "" {
				return p, s
			}
		}
		return "", ""
	case map[string]any:
		for k, e := range v {
			if p, s := badKeyOrValue(k, e, path, depth); p != "" {
				return p, s
			}
		}
		return "", ""
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String:
		return badString(rv.String(), path, depth)
	case reflect.Pointer, reflect.Interface:
		if rv.IsNil() {
			return "", ""
		}
		return badString(rv.Elem().Interface(), path, depth+1)
	case reflect.Slice, reflect.Array:
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			return "", "" // bytes are not text; conversion refuses them
		}
		for i := range rv.Len() {
			if p, s := badString(rv.Index(i).Interface(), path+"["+strconv.Itoa(i)+"]", depth+1); p != "" {
				return p, s
			}
		}
	case reflect.Map:
		iter := rv.MapRange()
		for iter.Next() {
			k := iter.Key()
			if k.Kind() != reflect.String {
				continue // conversion refuses keys that are not strings
			}
			if p, s := badKeyOrValue(k.String(), iter.Value().Interface(), path, depth); p != "" {
				return p, s
			}
		}
	}
	return "", ""
}

func badKeyOrValue(k string, v any, path string, depth int) (string, string) {
	if !utf8.ValidString(k) {
		return path, describeBad("key", k)
	}
	return badString(v, path+"["+strconv.Quote(k)+"]", depth+1)
}

// describeBad says what is not UTF-8: `string "…"` or `key "…"`, with
// the bad bytes escaped.
func describeBad(what, s string) string {
	if len(s) > 40 {
		return what + " " + strconv.Quote(s[:40]) + "…"
	}
	return what + " " + strconv.Quote(s)
}
