package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dspgo/dspgo/config"
)

// FuzzLoad: any YAML file and variable either loads to a configuration
// that validates, or fails with an error; never a panic.
func FuzzLoad(f *testing.F) {
	f.Add("adapter: mock\npool:\n  size: 3\n", "DSPGO_POOL__LAZY=true")
	f.Add("environments:\n  ci:\n    adapter: port\nenv: ci\n", "DSPGO_ENV=ci")
	f.Add("pool: [1, 2]\n", "DSPGO_POOL=3")
	f.Add("lm:\n  temperature: .inf\n", "DSPGO_LM__TEMPERATURE=NaN")
	f.Add("pool:\n  checkout_timeout: 10\n", "DSPGO_POOL__CHECKOUT_TIMEOUT=-5s")
	f.Add("{{{", "DSPGO_=x")
	f.Fuzz(func(t *testing.T, yaml, variable string) {
		path := filepath.Join(t.TempDir(), "dspgo.yaml")
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Load(config.LoadOptions{Files: []string{path}, Environ: func() []string { return []string{variable} }})
		if err != nil {
			if strings.TrimSpace(err.Error()) == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Load returned a configuration that does not validate: %v", err)
		}
		_ = cfg.Explain()
	})
}
