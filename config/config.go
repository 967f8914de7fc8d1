// Package config loads dspgo's configuration from layers, with koanf:
//
//	defaults < config files < the environments.<env> block < DSPGO_* variables < flags and explicit options
//
// Each key remembers the layer that set it (Explain). Loading is strict:
// an unknown key is an error naming the key and its file or variable, and
// Validate reports every invalid field at once. The environment is read
// through an injectable function, so tests never touch the process
// environment. The package is usable without fx; Module wires it into an
// fx application.
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/toml/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/providers/posflag"
	"github.com/knadh/koanf/v2"
	"github.com/spf13/pflag"
)

// DefaultFile is the config file read from the working directory when
// LoadOptions.Files is nil; it is optional.
const DefaultFile = "dspgo.yaml"

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
}

// layer is one source of values, flattened to keys.
type layer struct {
	name   string            // default, file:…, environment:…, env, flag, option
	values map[string]any    // key → value
	source map[string]string // key → a more precise source (the variable or flag name)
}

// Load merges the layers and validates the result.
func Load(opts LoadOptions) (*Config, error) {
	known := schemaKeys()
	var layers []layer

	defaults, err := structToMap(Defaults())
	if err != nil {
		return nil, err
	}
	layers = append(layers, layer{name: "default", values: defaults})

	files, err := loadFiles(opts)
	if err != nil {
		return nil, err
	}
	envLayer, err := envVars(opts.Environ, known)
	if err != nil {
		return nil, err
	}
	flagLayer := flagValues(opts.Flags)
	optLayer := layer{name: "option", values: opts.Set}

	// The environment block sits between the files and the variables, so
	// its name must be known first: from the top layers down.
	env := opts.Env
	for _, l := range []layer{optLayer, flagLayer, envLayer} {
		if v, ok := l.values["env"].(string); ok && env == "" {
			env = v
		}
	}
	blocks := map[string]map[string]any{}
	var problems []string
	for _, f := range files {
		for key, v := range f.values {
			name, rest, ok := environmentKey(key)
			if !ok {
				if key == "env" && env == "" {
					env, _ = v.(string)
				}
				continue
			}
			if blocks[name] == nil {
				blocks[name] = map[string]any{}
			}
			blocks[name][rest] = v
			delete(f.values, key)
			if !known[rest] || rest == "env" {
				problems = append(problems, fmt.Sprintf("%q in the environments.%s block of %s", rest, name, f.name))
			}
		}
		layers = append(layers, f)
	}
	if env != "" {
		block, ok := blocks[env]
		if !ok {
			return nil, fmt.Errorf("%w %q: no config file has an environments.%s block (defined: %s)", ErrUnknownEnvironment, env, env, listOrNone(keysOf(blocks)))
		}
		layers = append(layers, layer{name: "environment:" + env, values: block})
	}
	layers = append(layers, envLayer, flagLayer, optLayer)

	for _, l := range layers {
		for key := range l.values {
			if !known[key] {
				problems = append(problems, fmt.Sprintf("%q set by %s", key, l.sourceOf(key)))
			}
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, fmt.Errorf("%w: %s", ErrUnknownKey, strings.Join(problems, "; "))
	}

	k := koanf.New(".")
	cfg := &Config{sources: map[string]string{}, environ: opts.Environ}
	for _, l := range layers {
		if len(l.values) == 0 {
			continue
		}
		if err := k.Load(mapProvider(l.values), nil); err != nil {
			return nil, err
		}
		for key := range l.values {
			cfg.sources[key] = l.sourceOf(key)
		}
		cfg.layers = append(cfg.layers, l.name)
	}
	if err := decode(k, cfg); err != nil {
		return nil, err
	}
	if env != "" {
		cfg.Env = env
		if _, set := cfg.sources["env"]; !set || opts.Env != "" {
			cfg.sources["env"] = "option"
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
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
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("config: the config file %s: %w", path, err)
		}
		k := koanf.New(".")
		if err := k.Load(file.Provider(path), parser); err != nil {
			return nil, fmt.Errorf("config: %s: %w", path, err)
		}
		layers = append(layers, layer{name: "file:" + path, values: k.All()})
	}
	return layers, nil
}

// envVars reads the DSPGO_* variables.
func envVars(environ func() []string, known map[string]bool) (layer, error) {
	if environ == nil {
		environ = os.Environ
	}
	l := layer{name: "env", values: map[string]any{}, source: map[string]string{}}
	for _, kv := range environ() {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, EnvPrefix) {
			continue
		}
		key := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, EnvPrefix), "__", "."))
		l.values[key] = value
		l.source[key] = "env:" + name
	}
	return l, nil
}

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
// failures at once with the layer that set each value.
func decode(k *koanf.Koanf, cfg *Config) error {
	v := reflect.ValueOf(cfg).Elem()
	var problems []string
	walkFields(v.Type(), "", func(key string, index []int, typ reflect.Type) {
		if !k.Exists(key) {
			return
		}
		target := reflect.New(typ)
		dec, _ := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
			DecodeHook:       mapstructure.ComposeDecodeHookFunc(durationHook, mapstructure.StringToSliceHookFunc(",")),
			WeaklyTypedInput: true, Result: target.Interface(),
		})
		if err := dec.Decode(k.Get(key)); err != nil {
			problems = append(problems, fmt.Sprintf("%s = %v (set by %s): expected %s", key, k.Get(key), cfg.Source(key), typeName(typ)))
			return
		}
		v.FieldByIndex(index).Set(target.Elem())
	})
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(problems, "; "))
	}
	return nil
}

// durationHook parses durations written like "30s" and refuses bare
// numbers, whose unit would be a guess.
func durationHook(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeFor[time.Duration]() {
		return data, nil
	}
	switch d := data.(type) {
	case string:
		return time.ParseDuration(strings.TrimSpace(d))
	case time.Duration:
		return d, nil
	}
	return nil, fmt.Errorf("a duration must be written with its unit, like 30s")
}

func typeName(t reflect.Type) string {
	switch {
	case t == reflect.TypeFor[time.Duration]():
		return "a duration like 30s or 1m30s"
	case t.Kind() == reflect.Slice:
		return "a list"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Uint64:
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

// Source returns the layer that set key: "default", "file:<path>",
// "environment:<name>", "env:<VARIABLE>", "flag:--<name>" or "option".
func (c *Config) Source(key string) string {
	if s, ok := c.sources[key]; ok {
		return s
	}
	return "default"
}
