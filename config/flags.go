package config

import (
	"reflect"
	"time"

	"github.com/spf13/pflag"
)

// flag is one configuration flag.
type flag struct {
	name, key, usage string
}

// flags are the command-line flags that feed the flag layer.
var flags = []flag{
	{"adapter", "adapter", "backend: mock, port, pool, memory, remote or a registered name"},
	{"env", "env", "environments block to apply (dev, test, ci, prod…)"},
	{"log-level", "log.level", "log level: debug, info, warn, error"},
	{"log-format", "log.format", "log format: text, json, otel"},
	{"python", "python.interpreter", "Python interpreter for the workers"},
	{"worker-dir", "python.worker_dir", "directory holding the dspgo_worker package (default: embedded)"},
	{"handlers", "python.handlers", "Python modules of user commands and custom DSPy modules, comma-separated"},
	{"lm-provider", "lm.provider", "language model provider: dummy, openai"},
	{"lm-model", "lm.model", "language model name"},
	{"lm-base-url", "lm.base_url", "OpenAI-compatible endpoint"},
	{"lm-api-key-env", "lm.api_key_env", "worker variable holding the API key"},
	{"lm-engine", "lm.engine", "engine: auto, native, dspy"},
	{"lm-dspy-adapter", "lm.dspy_adapter", "DSPy adapter of the prompts: chat, json, xml, baml (xml and baml: the dspy engine)"},
	{"lm-cache", "lm.cache", "cache LM replies in each worker's memory"},
	{"lm-image-urls", "lm.image_urls", "let images be given by URL, which the model's server fetches"},
	{"pool-size", "pool.size", "pool workers (0: one per core)"},
	{"pool-lazy", "pool.lazy", "start pool workers on demand"},
	{"pool-max-overflow", "pool.max_overflow", "extra pool workers under load"},
	{"pool-worker-concurrency", "pool.worker_concurrency", "calls in flight per worker"},
	{"pool-checkout-timeout", "pool.checkout_timeout", "wait for a free worker at most this long"},
	{"pool-affinity", "pool.affinity", "session affinity: none, prefer, strict"},
	{"start-timeout", "port.start_timeout", "bound on a worker's start"},
	{"call-timeout", "port.call_timeout", "bound on a call without a deadline"},
	{"remote-url", "remote.url", "NATS server(s) of the remote adapter and worker hosts, comma-separated"},
	{"remote-prefix", "remote.prefix", "subject prefix of the worker hosts"},
	{"host-id", "remote.host_id", "this worker host's id (default: hostname-pid)"},
	{"embedded-nats", "remote.embedded.enabled", "run a NATS server with JetStream in this process"},
	{"embedded-listen", "remote.embedded.listen", "address of the embedded NATS server"},
}

// flagKeys maps flag names to keys.
var flagKeys = func() map[string]string {
	m := map[string]string{}
	for _, f := range flags {
		m[f.name] = f.key
	}
	return m
}()

// BindFlags adds the configuration flags to fs, typed as their keys, with
// the built-in defaults shown in the help. Only the flags a user sets
// count when loading: an unset flag never hides a file or a variable.
func BindFlags(fs *pflag.FlagSet) {
	defaults, _ := structToMap(Defaults())
	types := map[string]reflect.Type{}
	walkFields(reflect.TypeFor[Config](), "", func(key string, _ []int, t reflect.Type) { types[key] = t })
	for _, f := range flags {
		def := defaults[f.key]
		switch t := types[f.key]; {
		case t == reflect.TypeFor[time.Duration]():
			fs.Duration(f.name, def.(time.Duration), f.usage)
		case t.Kind() == reflect.Bool:
			fs.Bool(f.name, def.(bool), f.usage)
		case t.Kind() == reflect.Int:
			fs.Int(f.name, def.(int), f.usage)
		case t.Kind() == reflect.Slice:
			fs.StringSlice(f.name, def.([]string), f.usage)
		default:
			fs.String(f.name, def.(string), f.usage)
		}
	}
}
