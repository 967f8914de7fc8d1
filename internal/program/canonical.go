package program

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/dspgo/dspgo/internal/jsontext"
)

// Canonical returns the canonical JSON of v, the bytes that are hashed for
// spec hashes and the dummy language model. Go and Python produce the same
// bytes for the same value (docs/protocol.md, "Canonical JSON"):
//
//   - objects with keys sorted by code point, no insignificant space; an
//     integer map key (a dict[int, V]'s) is written in decimal, as
//     encoding/json writes it;
//   - strings as UTF-8, escaping only '"', '\' and control characters
//     (\b \f \n \r \t, others as \u00XX), as Python's json.dumps with
//     ensure_ascii=False;
//   - a number that is integral and smaller than 2^53 in magnitude as an
//     integer (1.0 is 1); any other integer in decimal; any other float in
//     Python's repr form (shortest round trip; exponent form "1e+16" when
//     the exponent is below -4 or at least 16);
//   - NaN and infinities are errors.
//
// v may hold Go values of any JSON-like kind, json.Number and
// json.RawMessage (which is decoded and re-encoded) included; struct
// fields follow their json tags ("-" and omitempty included).
func Canonical(v any) ([]byte, error) {
	return appendCanonical(nil, reflect.ValueOf(v))
}

// CanonicalJSON re-encodes a JSON text in canonical form.
func CanonicalJSON(data []byte) ([]byte, error) {
	v, err := decodeJSON(data)
	if err != nil {
		return nil, err
	}
	return Canonical(v)
}

// decodeJSON decodes one JSON value keeping numbers exact.
func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("program: trailing data after a JSON value")
	}
	return v, nil
}

func appendCanonical(b []byte, v reflect.Value) ([]byte, error) {
	for v.IsValid() && (v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer) {
		if v.IsNil() {
			return append(b, "null"...), nil
		}
		v = v.Elem()
	}
	if !v.IsValid() {
		return append(b, "null"...), nil
	}
	switch t := v.Type(); {
	case t == reflect.TypeFor[json.Number]():
		return appendNumber(b, v.String())
	case t == reflect.TypeFor[json.RawMessage]():
		inner, err := decodeJSON(v.Bytes())
		if err != nil {
			return nil, err
		}
		return appendCanonical(b, reflect.ValueOf(inner))
	}
	switch v.Kind() {
	case reflect.Bool:
		return strconv.AppendBool(b, v.Bool()), nil
	case reflect.String:
		return jsontext.AppendString(b, v.String()), nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.AppendInt(b, v.Int(), 10), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.AppendUint(b, v.Uint(), 10), nil
	case reflect.Float32, reflect.Float64:
		return appendFloat(b, v.Float())
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			return append(b, "null"...), nil
		}
		b = append(b, '[')
		for i := range v.Len() {
			if i > 0 {
				b = append(b, ',')
			}
			var err error
			if b, err = appendCanonical(b, v.Index(i)); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	case reflect.Map:
		keyKind := v.Type().Key().Kind()
		if keyKind != reflect.String && !isInteger(keyKind) {
			return nil, fmt.Errorf("program: canonical JSON needs string or integer map keys, not %s", v.Type().Key())
		}
		if v.IsNil() {
			return append(b, "null"...), nil
		}
		keys := make([]string, 0, v.Len())
		values := make(map[string]reflect.Value, v.Len())
		iter := v.MapRange()
		for iter.Next() {
			k := mapKeyText(iter.Key())
			keys = append(keys, k)
			values[k] = iter.Value()
		}
		return appendObject(b, keys, func(k string) reflect.Value { return values[k] })
	case reflect.Struct:
		keys, fields := structFields(v)
		return appendObject(b, keys, func(k string) reflect.Value { return fields[k] })
	}
	return nil, fmt.Errorf("program: canonical JSON cannot encode %s", v.Type())
}

// mapKeyText is a map key as a JSON object key: a string itself, an
// integer (a dict[int, V]'s key) in decimal.
func mapKeyText(k reflect.Value) string {
	switch {
	case k.Kind() == reflect.String:
		return k.String()
	case k.CanInt():
		return strconv.FormatInt(k.Int(), 10)
	}
	return strconv.FormatUint(k.Uint(), 10)
}

func appendObject(b []byte, keys []string, value func(string) reflect.Value) ([]byte, error) {
	slices.Sort(keys) // UTF-8 byte order is code point order
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsontext.AppendString(b, k)
		b = append(b, ':')
		var err error
		if b, err = appendCanonical(b, value(k)); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

// structFields returns the exported fields of a struct by their JSON
// names; fields tagged "-" are left out, and so are fields tagged
// "omitempty" whose value is empty, as encoding/json leaves them out.
func structFields(v reflect.Value) ([]string, map[string]reflect.Value) {
	var keys []string
	fields := map[string]reflect.Value{}
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if !f.IsExported() {
			continue
		}
		name := f.Name
		if tag, ok := f.Tag.Lookup("json"); ok {
			tagName, opts, _ := strings.Cut(tag, ",")
			if tagName == "-" {
				continue
			}
			if tagName != "" {
				name = tagName
			}
			if slices.Contains(strings.Split(opts, ","), "omitempty") && isEmptyValue(v.Field(i)) {
				continue
			}
		}
		keys = append(keys, name)
		fields[name] = v.Field(i)
	}
	return keys, fields
}

// isEmptyValue is encoding/json's test for omitempty: false, 0, "", a nil
// pointer or interface, an empty array, slice or map.
func isEmptyValue(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Interface, reflect.Pointer:
		return v.IsZero()
	}
	return false
}

// appendNumber writes a JSON number text canonically.
func appendNumber(b []byte, s string) ([]byte, error) {
	if !strings.ContainsAny(s, ".eE") {
		n, ok := new(big.Int).SetString(s, 10)
		if !ok {
			return nil, fmt.Errorf("program: %q is not a number", s)
		}
		return n.Append(b, 10), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return nil, fmt.Errorf("program: number %s: %w", s, err)
	}
	return appendFloat(b, f)
}

// appendFloat writes f as Python's repr would, integral values below 2^53
// as integers.
func appendFloat(b []byte, f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("program: %v is not a JSON number", f)
	}
	if f == math.Trunc(f) && math.Abs(f) < maxExactInt {
		return strconv.AppendInt(b, int64(f), 10), nil
	}
	return appendPyRepr(b, f), nil
}

// FloatRepr returns a finite float as Python's repr writes it ("1.0",
// "0.1", "1e+16", "1.5e-07"), the form canonical JSON gives a float that is
// not integral.
func FloatRepr(f float64) string { return string(appendPyRepr(nil, f)) }

// appendPyRepr writes a finite float exactly as Python's repr does: the
// shortest digits that round-trip, in fixed notation when the decimal
// exponent is from -4 to 15 (with ".0" when integral), else in exponent
// notation with a sign and at least two exponent digits.
func appendPyRepr(b []byte, f float64) []byte {
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±XX, shortest
	exp, _ := strconv.Atoi(e[strings.IndexByte(e, 'e')+1:])
	if exp < -4 || exp >= 16 {
		return append(b, e...) // Go's 'e' form is Python's: 1e+16, 1.5e-07
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	b = append(b, s...)
	if !strings.ContainsRune(s, '.') {
		b = append(b, ".0"...)
	}
	return b
}
