package program

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// DateType is the canonical form of the Date type.
const DateType = "datetime.date"

// DateTimeType is the canonical form of the DateTime type.
const DateTimeType = "datetime.datetime"

// dateWant and dateTimeWant are what a Date and a DateTime take, for errors.
const (
	dateWant     = "expected " + DateType + " (YYYY-MM-DD)"
	dateTimeWant = "expected " + DateTimeType + " (YYYY-MM-DDTHH:MM:SS, seconds and fraction optional, then Z or ±HH:MM for its zone, if any)"
)

// dateTimeText is the text a DateTime takes: a date, "T", "t" or a space,
// hours and minutes, optional seconds with an optional fraction (at most 9
// digits), and an optional zone: "Z", "z", ±HH:MM or ±HHMM.
var dateTimeText = regexp.MustCompile(`^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(?:([Zz])|([+-])(\d{2}):?(\d{2}))?$`)

// dateText is the text a Date takes: YYYY-MM-DD.
var dateText = regexp.MustCompile(`^(\d{4})-(\d{2})-(\d{2})$`)

// civilDate reports whether year, month and day (their digits) name a day
// of the years 1 to 9999 (Python's datetime.date), and returns it as
// YYYY-MM-DD.
func civilDate(year, month, day string) (string, bool) {
	y, _ := strconv.Atoi(year) // the patterns took digits only
	m, _ := strconv.Atoi(month)
	d, _ := strconv.Atoi(day)
	if y < 1 || m < 1 || m > 12 || d < 1 || d > daysIn(y, m) {
		return "", false
	}
	return year + "-" + month + "-" + day, true
}

// daysIn is the number of days of month m of year y (the proleptic
// Gregorian calendar).
func daysIn(y, m int) int {
	switch m {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// CanonicalDate returns the canonical text of a Date written s: s itself
// when it is YYYY-MM-DD of a real day of the years 1 to 9999.
func CanonicalDate(s string) (string, bool) {
	m := dateText.FindStringSubmatch(s)
	if m == nil {
		return "", false
	}
	return civilDate(m[1], m[2], m[3])
}

// CanonicalDateTime returns the canonical text of a DateTime written s
// (see dateTimeText): YYYY-MM-DDTHH:MM:SS, then ".ffffff" when its
// microseconds are not zero (digits beyond the sixth are dropped, as
// pydantic drops them), then "Z" for a zero offset, ±HH:MM for another,
// nothing for a time without a zone: the text pydantic's JSON mode, and
// so DSPy's prompts, write for the datetime.
func CanonicalDateTime(s string) (string, bool) {
	m := dateTimeText.FindStringSubmatch(s)
	if m == nil {
		return "", false
	}
	date, ok := civilDate(m[1], m[2], m[3])
	hour, _ := strconv.Atoi(m[4])
	minute, _ := strconv.Atoi(m[5])
	second, _ := strconv.Atoi(m[6]) // "" when absent: 0, written 00
	if !ok || hour > 23 || minute > 59 || second > 59 {
		return "", false
	}
	if m[6] == "" {
		m[6] = "00"
	}
	var b strings.Builder
	b.WriteString(date + "T" + m[4] + ":" + m[5] + ":" + m[6])
	if micro := (m[7] + "000000")[:6]; strings.Trim(micro, "0") != "" {
		b.WriteString("." + micro)
	}
	switch {
	case m[8] != "":
		b.WriteString("Z")
	case m[9] != "":
		zh, _ := strconv.Atoi(m[10])
		zm, _ := strconv.Atoi(m[11])
		if zh > 23 || zm > 59 {
			return "", false
		}
		if zh == 0 && zm == 0 {
			b.WriteString("Z")
		} else {
			b.WriteString(m[9] + m[10] + ":" + m[11])
		}
	}
	return b.String(), true
}

// dateTimeOf is a time.Time as a DateTime's canonical text, in its own
// location's offset ("Z" for UTC), or in UTC when that offset is not whole
// minutes under a day (a historical zone's +00:19:32), which the text
// cannot hold.
func dateTimeOf(t time.Time) (string, bool) {
	if _, offset := t.Zone(); offset%60 != 0 || offset <= -86400 || offset >= 86400 {
		t = t.UTC()
	}
	if t.Year() < 1 || t.Year() > 9999 {
		return "", false
	}
	s := t.Format("2006-01-02T15:04:05.000000Z07:00")
	return CanonicalDateTime(s)
}

var timeType = reflect.TypeFor[time.Time]()

// convertDate converts a Date value: a string YYYY-MM-DD, or a time.Time,
// whose calendar day in its own location it takes.
func convertDate(v reflect.Value, path string) (reflect.Value, error) {
	return convertMoment(v, path, dateWant, CanonicalDate, func(t time.Time) (string, bool) { return CanonicalDate(t.Format(time.DateOnly)) })
}

// convertDateTime converts a DateTime value: a string (see
// CanonicalDateTime) or a time.Time (dateTimeOf), as its canonical text.
func convertDateTime(v reflect.Value, path string) (reflect.Value, error) {
	return convertMoment(v, path, dateTimeWant, CanonicalDateTime, dateTimeOf)
}

// convertMoment converts a Date's or a DateTime's value: a string by
// canonical, a time.Time by ofTime; want says what was expected.
func convertMoment(v reflect.Value, path, want string, canonical func(string) (string, bool), ofTime func(time.Time) (string, bool)) (reflect.Value, error) {
	v = indirect(v)
	switch {
	case !v.IsValid() || v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer:
		return reflect.Value{}, fmt.Errorf("%s: %s, got null", path, want)
	case v.Type() == timeType:
		t := v.Interface().(time.Time)
		if s, ok := ofTime(t); ok {
			return reflect.ValueOf(s), nil
		}
		return reflect.Value{}, fmt.Errorf("%s: %s, got a time.Time of the year %d", path, want, t.Year())
	case v.Kind() == reflect.String && v.Type() != reflect.TypeFor[json.Number]():
		if s, ok := canonical(v.String()); ok {
			return reflect.ValueOf(s), nil
		}
	}
	return reflect.Value{}, fmt.Errorf("%s: %s, got %s", path, want, describe(v))
}

// dummyDate is the dummy LM's Date for n: 2000-01-01 plus n mod 36525
// days.
func dummyDate(n uint32) string {
	return time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, int(n%36525)).Format("2006-01-02")
}

// dummyDateTime is the dummy LM's DateTime for n: 2000-01-01T00:00:00Z
// plus n mod 3,155,760,000 seconds (a hundred years of 365.25 days).
func dummyDateTime(n uint32) string {
	return time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(n%3155760000) * time.Second).Format("2006-01-02T15:04:05Z")
}
