// Package config loads dspgo's configuration from layers, with koanf:
//
//	defaults < config files < the environments.<env> block < DSPGO_* variables < flags and explicit options
//
// Each key remembers the layer that set it (Explain). Loading is strict
// and reports every problem in one pass (see Error): unknown keys, with
// the name most likely meant, and invalid values, each with the file,
// block or variable that set it. The environment is read
// through an injectable function, so tests never touch the process
// environment. The package is usable without fx; Module wires it into an
// fx application.
package config

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/knadh/koanf/parsers/toml/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"

	"github.com/dspgo/dspgo/internal/dspgoenv"
	"github.com/dspgo/dspgo/internal/suggest"
)

// DefaultFile is the config file read from the working directory when
// LoadOptions.Files is nil; it is optional.
const DefaultFile = "dspgo.yaml"

// MaxFileBytes is the largest config file Load reads, 1 MiB: a larger
// file is refused by its size, with ErrFileTooLarge, before it is read.
const MaxFileBytes = 1 << 20

// EnvPrefix starts every configuration variable: DSPGO_POOL__SIZE=8 sets
// pool.size ("__" separates levels; single underscores stay).
const EnvPrefix = "DSPGO_"

// Errors of Load.
var (
	// ErrUnknownKey: a layer sets a key the schema does not have.
	ErrUnknownKey = errors.New("config: unknown key")
	// ErrInvalid: values that do not convert or do not validate.
	ErrInvalid = errors.New("config: invalid configuration")
	// ErrUnknownEnvironment: env names a block that no file defines.
	ErrUnknownEnvironment = errors.New("config: unknown environment")
	// ErrFileTooLarge: a config file is larger than MaxFileBytes.
	ErrFileTooLarge = errors.New("config: config file too large")
)

// LoadOptions say where the layers come from.
type LoadOptions struct {
	// Files are config files, YAML (.yaml, .yml) or TOML (.toml), merged
	// in order; each must exist. Nil means DefaultFile in Dir, if present.
	Files []string

	// Dir is where DefaultFile is looked for. Empty means the working
	// directory.
	Dir string

	// Environ returns the process environment: the DSPGO_* variables are
	// read from it, and python.pass_env passes variables from it to the
	// workers (see Config.Environ). Nil means os.Environ.
	Environ func() []string

	// Flags are command-line flags (see BindFlags); only the flags the
	// user set count. Nil means none.
	Flags *pflag.FlagSet

	// Env names the environments block, above every other source of env.
	// Empty means: from the flags, DSPGO_ENV, or the files, in that order.
	Env string

	// Set holds explicit values by key ("pool.size": 8), the top layer,
	// for programs that configure dspgo in code. Nil means none.
	Set map[string]any

	// LogOutput is where the logs of everything opened from the
	// configuration go (Config.LogOutput): the adapters registry opens,
	// the worker hosts, fx's events. Nil means os.Stderr.
	LogOutput io.Writer
}

// layer is one source of values, flattened to keys.
type layer struct {
	name   string            // default, file:…, environment:…, env, flag, option
	values map[string]any    // key → value
	source map[string]string // key → a more precise source (the variable or flag name)
}

// Load merges the layers and validates the result. It reports every
// problem at once, as an *Error: unknown keys (with the name most likely
// meant), values that do not convert to their key's type, and values out
// of range, each with its key and the layer that set it. A check that
// relates two keys is skipped when one of them is itself invalid, so one
// bad value gives one problem. A config file that cannot be read, is
// larger than MaxFileBytes or does not parse is reported on its own.
func Load(opts LoadOptions) (*Config, error) {
	known := schemaKeys()
	var layers []layer
	var probs problems

	defaults, err := structToMap(Defaults())
	if err != nil {
		return nil, err
	}
	layers = append(layers, layer{name: "default", values: defaults})

	files, err := loadFiles(opts)
	if err != nil {
		return nil, err
	}
	envLayer := envVars(opts.Environ)
	flagLayer := flagValues(opts.Flags)
	optLayer := layer{name: "option", values: opts.Set}

	// The environment block sits between the files and the variables, so
	// its name must be known first: from the top layers down.
	// The highest layer that sets env decides, even when it sets it
	// empty: "--env ''" applies no block, whatever DSPGO_ENV says.
	env, envSource := opts.Env, "option"
	envSet := opts.Env != ""
	for _, l := range []layer{optLayer, flagLayer, envLayer} {
		if v, ok := l.values["env"]; ok && !envSet {
			envSet = true
			env, _ = scalar(v) // a list or a map: decoding reports it
			envSource = l.sourceOf("env")
		}
	}
	blocks := map[string]map[string]any{}
	blockSources := map[string]string{}
	for _, f := range files {
		for key, v := range f.values {
			if empty(v) {
				// An empty mapping or a null where a section or a block
				// goes ("pool: {}", "environments: {ci: {}}", "lm:")
				// sets nothing; an empty block still defines its
				// environment.
				after, inEnvironments := strings.CutPrefix(key, "environments.")
				name, rest, inBlock := strings.Cut(after, ".")
				if inEnvironments && name != "" && (!inBlock || isSection(rest, known)) {
					if blocks[name] == nil {
						blocks[name] = map[string]any{}
					}
					blockSources[name] = f.name
					delete(f.values, key)
					continue
				}
				if key == "environments" || !inEnvironments && isSection(key, known) {
					delete(f.values, key)
					continue
				}
			}
			name, rest, ok := environmentKey(key)
			if !ok {
				if key == "env" && !envSet {
					if name, ok := scalar(v); ok {
						env, envSource = name, f.name
					}
				}
				continue
			}
			delete(f.values, key)
			if blocks[name] == nil {
				blocks[name] = map[string]any{} // defined, even by keys that are unknown
			}
			blockSources[name] = f.name
			if !known[rest] || rest == "env" {
				why := hint(rest, f.name, known)
				if rest == "env" { // a key, but not of a block: it chooses the block
					why = " (env chooses the block: set it at the top of a file, or with --env or DSPGO_ENV)"
				}
				probs.addUnknown(Problem{Err: ErrUnknownKey, Key: rest, Source: f.name,
					Message: fmt.Sprintf("unknown key %q in the environments.%s block of %s%s", rest, name, f.name, why)})
				continue
			}
			blocks[name][rest] = v
		}
		layers = append(layers, f)
	}
	if env != "" {
		if block, ok := blocks[env]; ok {
			layers = append(layers, layer{name: "environment:" + env, values: block})
		} else {
			probs.addUnknown(Problem{Err: ErrUnknownEnvironment, Key: "env", Source: envSource,
				Message: fmt.Sprintf("unknown environment %q: no config file has an environments.%s block (defined: %s) (env set by %s)",
					env, env, listOrNone(keysOf(blocks)), envSource)})
		}
	}
	layers = append(layers, envLayer, flagLayer, optLayer)

	k := koanf.New(".")
	cfg := &Config{sources: map[string]string{}, environ: opts.Environ, logOut: opts.LogOutput}
	for _, l := range layers {
		values := map[string]any{}
		for key, v := range l.values {
			if !known[key] {
				probs.addUnknown(Problem{Err: ErrUnknownKey, Key: key, Source: l.sourceOf(key),
					Message: fmt.Sprintf("unknown key %q set by %s%s", key, l.sourceOf(key), hint(key, l.sourceOf(key), known))})
				continue
			}
			values[key] = v
		}
		if len(values) == 0 {
			continue
		}
		if err := k.Load(mapProvider(values), nil); err != nil {
			return nil, err
		}
		for key := range values {
			cfg.sources[key] = l.sourceOf(key)
		}
		cfg.layers = append(cfg.layers, l.name)
	}
	decode(k, cfg, &probs)
	if env != "" {
		cfg.Env = env
		if _, set := cfg.sources["env"]; !set || opts.Env != "" {
			cfg.sources["env"] = "option"
		}
	}
	cfg.validate(&probs)
	if err := probs.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// empty reports whether a file's value is an empty mapping or a null.
func empty(v any) bool {
	m, isMap := v.(map[string]any)
	return v == nil || isMap && len(m) == 0
}

// isSection reports whether key is a section of known keys, such as
// "pool" or "pool.recycle".
func isSection(key string, known map[string]bool) bool {
	for k := range known {
		if strings.HasPrefix(k, key+".") {
			return true
		}
	}
	return false
}

// scalar formats a file's value of env; ok is false for a list, a map or
// null, which decoding reports.
func scalar(v any) (string, bool) {
	switch v.(type) {
	case string, bool, int, int64, uint64, float64:
		return fmt.Sprint(v), true
	}
	return "", false
}

// hint suggests the known key an unknown one most likely meant, spelled
// as its source spells keys: a variable name for a variable.
func hint(key, source string, known map[string]bool) string {
	if key == "config" {
		// DSPGO_CONFIG, or a "config:" key: a file is no key of a file.
		return " (config files are LoadOptions.Files: the CLI's --config FILE, repeatable)"
	}
	s := suggest.Closest(key, maps.Keys(known))
	switch {
	case s == "":
		return ""
	case strings.HasPrefix(source, "env:"):
		return " (did you mean " + envName(s) + "?)"
	}
	return fmt.Sprintf(" (did you mean %q?)", s)
}

func (l layer) sourceOf(key string) string {
	if s, ok := l.source[key]; ok {
		return s
	}
	return l.name
}

func environmentKey(key string) (name, rest string, ok bool) {
	after, found := strings.CutPrefix(key, "environments.")
	if !found {
		return "", "", false
	}
	name, rest, ok = strings.Cut(after, ".")
	return name, rest, ok
}

func keysOf[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func listOrNone(list []string) string {
	if len(list) == 0 {
		return "none"
	}
	return strings.Join(list, ", ")
}

// loadFiles parses the config files into layers.
func loadFiles(opts LoadOptions) ([]layer, error) {
	paths := opts.Files
	if paths == nil {
		path := filepath.Join(opts.Dir, DefaultFile)
		if _, err := os.Stat(path); err != nil {
			return nil, nil // the default file is optional
		}
		paths = []string{path}
	}
	var layers []layer
	for _, path := range paths {
		var parser koanf.Parser
		switch strings.ToLower(filepath.Ext(path)) {
		case ".yaml", ".yml":
			parser = yaml.Parser()
		case ".toml":
			parser = toml.Parser()
		default:
			return nil, fmt.Errorf("config: %s: unknown format (use .yaml, .yml or .toml)", path)
		}
		data, err := readFile(path)
		if err != nil {
			return nil, err
		}
		k := koanf.New(".")
		if err := k.Load(bytesProvider(data), parser); err != nil {
			return nil, fmt.Errorf("config: %s: %w", path, err)
		}
		layers = append(layers, layer{name: "file:" + path, values: k.All()})
	}
	return layers, nil
}

// readFile reads a config file of at most MaxFileBytes. A larger file is
// refused by its size before any of it is read; a file that grows while
// it is read, or that has no size (a pipe), is read up to one byte past
// the limit, never further.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: the config file %s: %w", path, err)
	}
	defer func() { _ = f.Close() }()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("config: the config file %s: %w", path, err)
	}
	if info.IsDir() {
		return nil, fmt.Errorf("config: the config file %s is a directory", path)
	}
	if info.Size() > MaxFileBytes {
		return nil, fmt.Errorf("%w: %s is %d bytes; the limit is %s", ErrFileTooLarge, path, info.Size(), fileLimit)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("config: the config file %s: %w", path, err)
	}
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("%w: %s holds more than %d bytes; the limit is %s", ErrFileTooLarge, path, MaxFileBytes, fileLimit)
	}
	return data, nil
}

// fileLimit says MaxFileBytes in errors.
var fileLimit = fmt.Sprintf("%d bytes (%d MiB, config.MaxFileBytes)", MaxFileBytes, MaxFileBytes>>20)

// bytesProvider is a koanf provider of a file's bytes, read beforehand.
type bytesProvider []byte

func (b bytesProvider) ReadBytes() ([]byte, error) { return b, nil }

func (b bytesProvider) Read() (map[string]any, error) {
	return nil, errors.New("config: not supported")
}

// envVars reads the DSPGO_* variables, but for dspgo's own reserved ones
// (see ReservedEnv).
func envVars(environ func() []string) layer {
	if environ == nil {
		environ = os.Environ
	}
	l := layer{name: "env", values: map[string]any{}, source: map[string]string{}}
	for _, kv := range environ() {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) || dspgoenv.IsReserved(name) {
			continue
		}
		key := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, EnvPrefix), "__", "."))
		l.values[key] = value
		l.source[key] = "env:" + name
	}
	return l
}

// ReservedEnv lists the DSPGO_ variables that dspgo sets or reads for
// itself and that are not configuration keys, such as DSPGO_RUN_ID, which
// a host sets for its workers. Load ignores them.
func ReservedEnv() []string { return dspgoenv.Reserved() }

// flagValues reads the flags the user set.
func flagValues(fs *pflag.FlagSet) layer {
	l := layer{name: "flag", values: map[string]any{}, source: map[string]string{}}
	if fs == nil {
		return l
	}
	fs.Visit(func(f *pflag.Flag) {
		key, ok := flagKeys[f.Name]
		if !ok {
			return // not a configuration flag
		}
		l.values[key] = posflag.FlagVal(fs, f)
		l.source[key] = "flag:--" + f.Name
	})
	return l
}

// mapProvider is a koanf provider of a flat map of keys.
type mapProvider map[string]any

func (m mapProvider) ReadBytes() ([]byte, error) { return nil, errors.New("config: not supported") }

func (m mapProvider) Read() (map[string]any, error) {
	nested := map[string]any{}
	for key, v := range m {
		parts := strings.Split(key, ".")
		cur := nested
		for _, p := range parts[:len(parts)-1] {
			next, ok := cur[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				cur[p] = next
			}
			cur = next
		}
		cur[parts[len(parts)-1]] = v
	}
	return nested, nil
}

// schemaKeys returns every leaf key of Config.
func schemaKeys() map[string]bool {
	keys := map[string]bool{}
	walkFields(reflect.TypeFor[Config](), "", func(key string, _ []int, _ reflect.Type) { keys[key] = true })
	return keys
}

// walkFields calls fn for each leaf field with its key, index path and
// type.
func walkFields(t reflect.Type, prefix string, fn func(key string, index []int, typ reflect.Type), index ...int) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("koanf")
		if tag == "" || !f.IsExported() {
			continue
		}
		path := append(append([]int(nil), index...), i)
		key := prefix + tag
		if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Duration]() {
			walkFields(f.Type, key+".", fn, path...)
			continue
		}
		fn(key, path, f.Type)
	}
}

// structToMap flattens a Config's values to keys.
func structToMap(c Config) (map[string]any, error) {
	out := map[string]any{}
	v := reflect.ValueOf(c)
	walkFields(v.Type(), "", func(key string, index []int, _ reflect.Type) {
		out[key] = v.FieldByIndex(index).Interface()
	})
	return out, nil
}

// decode converts every merged value to its field's type, reporting all
// failures, each with the layer that set the value, and marking their keys
// invalid.
func decode(k *koanf.Koanf, cfg *Config, probs *problems) {
	v := reflect.ValueOf(cfg).Elem()
	walkFields(v.Type(), "", func(key string, index []int, typ reflect.Type) {
		if !k.Exists(key) {
			return
		}
		value, err := convert(k.Get(key), typ)
		if err != nil {
			if mayHoldSecret(key) {
				probs.addInvalid(key, cfg.Source(key), fmt.Sprintf("%s (set by %s): expected %s; the value is not shown, as it may hold a secret",
					key, cfg.Source(key), typeName(typ)))
				return
			}
			shown := "null"
			if raw := k.Get(key); raw != nil {
				shown = shorten(fmt.Sprint(raw))
			}
			probs.addInvalid(key, cfg.Source(key), fmt.Sprintf("%s = %s (set by %s): expected %s", key, shown, cfg.Source(key), typeName(typ)))
			return
		}
		v.FieldByIndex(index).Set(value)
	})
}

// mayHoldSecret reports whether an error must not quote key's value: a
// URL, which may hold credentials (remote.url, lm.base_url,
// remote.lm_base_urls), a key naming a secret's variable (not
// python.pass_env, a list of names of every kind), where the
// secret itself may have been written by mistake, and any key named as a
// secret (isSecret).
func mayHoldSecret(key string) bool {
	return strings.HasSuffix(key, "url") || strings.HasSuffix(key, "urls") || strings.HasSuffix(key, "_env") && key != "python.pass_env" ||
		isSecret(key)
}

// shorten cuts a value for an error message.
func shorten(s string) string {
	const limit = 64
	if len(s) <= limit {
		return s
	}
	cut := limit
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("… (%d bytes)", len(s))
}

func typeName(t reflect.Type) string {
	switch {
	case t == reflect.TypeFor[time.Duration]():
		return "a duration like 30s or 1m30s"
	case t.Kind() == reflect.Slice:
		return "a list"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() == reflect.Uint64:
		return "a whole number from 0 to 18446744073709551615"
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		return "an integer"
	case t.Kind() == reflect.Float64:
		return "a number"
	}
	return "a string"
}

// Environ returns the environment the configuration was loaded with
// (LoadOptions.Environ; os.Environ when that was nil, or for a Config not
// made by Load). Workers get the variables python.pass_env names from it.
func (c *Config) Environ() []string {
	if c.environ == nil {
		return os.Environ()
	}
	return c.environ()
}

// Getenv returns the value of the variable name in Environ, "" when it
// is unset (the first, when Environ lists it twice).
func (c *Config) Getenv(name string) string {
	prefix := name + "="
	for _, kv := range c.Environ() {
		if v, ok := strings.CutPrefix(kv, prefix); ok {
			return v
		}
	}
	return ""
}

// LogOutput returns where the logs of what is opened from the
// configuration go: LoadOptions.LogOutput, or os.Stderr.
func (c *Config) LogOutput() io.Writer {
	if c.logOut == nil {
		return os.Stderr
	}
	return c.logOut
}

// Source returns the layer that set key: "default", "file:<path>",
// "environment:<name>", "env:<VARIABLE>", "flag:--<name>" or "option".
func (c *Config) Source(key string) string {
	if s, ok := c.sources[key]; ok {
		return s
	}
	return "default"
}
