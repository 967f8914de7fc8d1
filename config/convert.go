package config

import (
	"errors"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// errConvert: a value that is not of its key's type. The caller says
// what was expected.
var errConvert = errors.New("config: the value does not convert")

// convert converts a layer's value to typ, the type of its key, strictly:
// a value converts only when it means exactly one value of the type.
// Strings (variables, and values written as text) are parsed: integers in
// decimal, booleans as strconv.ParseBool reads them, durations with their
// unit, lists comma-separated. Numbers convert to integers only when they
// are whole and in range; nothing converts to a boolean but a boolean or
// its text; a boolean converts to nothing else. Null (an empty YAML
// value) is the empty string or list, and no number, boolean or duration.
func convert(v any, typ reflect.Type) (reflect.Value, error) {
	out := reflect.New(typ).Elem()
	if typ == reflect.TypeFor[time.Duration]() {
		switch d := v.(type) {
		case time.Duration:
			out.SetInt(int64(d))
			return out, nil
		case string:
			parsed, err := time.ParseDuration(strings.TrimSpace(d))
			if err != nil {
				return out, errConvert
			}
			out.SetInt(int64(parsed))
			return out, nil
		}
		return out, errConvert // a bare number's unit would be a guess
	}
	switch typ.Kind() {
	case reflect.String:
		s, ok := text(v)
		if !ok {
			return out, errConvert
		}
		out.SetString(s)
	case reflect.Slice:
		var list []string
		switch x := v.(type) {
		case nil:
		case string:
			if x != "" {
				list = strings.Split(x, ",")
			}
		case []string:
			list = append(list, x...)
		case []any:
			for _, e := range x {
				s, ok := text(e)
				if !ok || e == nil {
					return out, errConvert
				}
				list = append(list, s)
			}
		default:
			return out, errConvert
		}
		out.Set(reflect.ValueOf(append([]string{}, list...)))
	case reflect.Bool:
		switch x := v.(type) {
		case bool:
			out.SetBool(x)
		case string:
			b, err := strconv.ParseBool(strings.TrimSpace(x))
			if err != nil {
				return out, errConvert
			}
			out.SetBool(b)
		default:
			return out, errConvert
		}
	case reflect.Int, reflect.Int64:
		n, ok := signed(v)
		if !ok || out.OverflowInt(n) {
			return out, errConvert
		}
		out.SetInt(n)
	case reflect.Uint64:
		n, ok := unsigned(v)
		if !ok {
			return out, errConvert
		}
		out.SetUint(n)
	case reflect.Float64:
		f, ok := number(v)
		if !ok {
			return out, errConvert
		}
		out.SetFloat(f)
	default:
		return out, errConvert
	}
	return out, nil
}

// text is a string value, or a number written in decimal (a YAML or TOML
// value such as a host id of digits); ok is false for anything else.
func text(v any) (string, bool) {
	switch x := v.(type) {
	case nil:
		return "", true
	case string:
		return x, true
	case float32, float64:
		return strconv.FormatFloat(reflect.ValueOf(x).Float(), 'f', -1, 64), true
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(rv.Int(), 10), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(rv.Uint(), 10), true
	}
	return "", false
}

// signed converts v to an int64: a decimal string, a whole float in
// range, or a Go integer in range; ok is false for anything else.
func signed(v any) (n int64, ok bool) {
	switch x := v.(type) {
	case string:
		n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
		return n, err == nil
	case float32, float64:
		f := reflect.ValueOf(x).Float()
		if f != math.Trunc(f) || f < -(1<<63) || f >= 1<<63 { // -2^63 and 2^63 are exact as floats
			return 0, false
		}
		return int64(f), true
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return rv.Int(), rv.Type() != reflect.TypeFor[time.Duration]()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return int64(rv.Uint()), rv.Uint() <= math.MaxInt64
	}
	return 0, false // a boolean, a list, null
}

// unsigned converts v to a uint64 as signed converts to an int64: a
// negative value is not one.
func unsigned(v any) (n uint64, ok bool) {
	switch x := v.(type) {
	case string:
		n, err := strconv.ParseUint(strings.TrimSpace(x), 10, 64)
		return n, err == nil
	case float32, float64:
		f := reflect.ValueOf(x).Float()
		if f != math.Trunc(f) || f < 0 || f >= 1<<64 {
			return 0, false
		}
		return uint64(f), true
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return uint64(rv.Int()), rv.Int() >= 0 && rv.Type() != reflect.TypeFor[time.Duration]()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return rv.Uint(), true
	}
	return 0, false
}

// number converts v to a float64: a number's text, or a Go number.
func number(v any) (float64, bool) {
	if s, ok := v.(string); ok {
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		return f, err == nil
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Float32, reflect.Float64:
		return rv.Float(), true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(rv.Int()), rv.Type() != reflect.TypeFor[time.Duration]()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return float64(rv.Uint()), true
	}
	return 0, false
}
