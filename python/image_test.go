package python_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/port"
	"github.com/dspgo/dspgo/internal/lmtest"
	"github.com/dspgo/dspgo/internal/testutil"
)

// The images of the notebook's program: a demo's and a run's, as data:
// URIs (what an LM takes by default), and one by URL.
const (
	demoImage = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
	runImage  = "data:image/gif;base64,R0lGODlhAQABAAAAACw="
	urlImage  = "https://images.example.com/cat.png"
)

// saveCaptioner is the notebook's side: a Predict over an image, given a
// demo with an image, saved as DSPy saves it.
const saveCaptioner = `import sys, dspy
p = dspy.Predict("photo: dspy.Image, question -> answer")
p.demos = [dspy.Example(photo=dspy.Image(sys.argv[2]), question="What is it?", answer="a dot").with_inputs("photo", "question")]
p.save(sys.argv[1])
`

// formatCaptioner loads a saved Predict over an image with DSPy's own load
// and prints the URLs of the image parts DSPy's ChatAdapter sends for it.
const formatCaptioner = `import sys, dspy
p = dspy.Predict("photo: dspy.Image, question -> answer")
p.load(sys.argv[1])
messages = dspy.ChatAdapter().format(p.signature, p.demos, {"photo": dspy.Image(sys.argv[2]), "question": "And this?"})
for m in messages:
    if isinstance(m["content"], list):
        for part in m["content"]:
            if part["type"] == "image_url":
                print(part["image_url"]["url"])
`

// TestImagesFromANotebook: a program over a dspy.Image, with a demo image,
// saved by DSPy, loads into dspgo and runs on a worker with either engine:
// the LM receives the demo's image and the run's as image parts. An image
// by URL is refused unless the LM configuration lets images be URLs.
// Compile's demos keep their examples' images. ExportDSPy writes the
// demo's image as DSPy saves one, and DSPy's load sends it again as an
// image.
func TestImagesFromANotebook(t *testing.T) {
	py := testutil.DSPyPython(t)
	dir := t.TempDir()
	saved := filepath.Join(dir, "captioner.json")
	runPython(t, py, dir, saveCaptioner, saved, demoImage)
	file, err := os.Open(saved)
	require.NoError(t, err)
	spec, err := dspgo.LoadDSPyProgram(file, "photo: dspy.Image, question -> answer")
	require.NoError(t, file.Close())
	require.NoError(t, err)
	require.Len(t, spec.Demos, 1)
	assert.Equal(t, map[string]any{"url": demoImage}, spec.Demos[0].Inputs["photo"], "DSPy's text of an image is that image")

	srv := lmtest.New(t, lmtest.Options{})
	a, err := port.New(t.Context(), dspyWorker(t))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, a.Close(t.Context())) })
	c := dspgo.NewClient(a)
	p, err := c.CreateProgram(t.Context(), spec)
	require.NoError(t, err)
	for _, engine := range []string{"dspy", "native"} {
		t.Run(engine, func(t *testing.T) {
			lm := dspgo.LMConfig{Provider: dspgo.ProviderOpenAI, Engine: engine, Model: "test-model", BaseURL: srv.URL(), APIKeyEnv: keyEnv}
			require.NoError(t, c.ConfigureLM(t.Context(), lm))
			srv.Reset()
			out, err := c.Execute(t.Context(), p.ID, map[string]any{"photo": dspgo.Image{URL: runImage}, "question": "And this?"})
			require.NoError(t, err)
			assert.IsType(t, "", out["answer"])
			reqs := srv.Requests()
			require.Len(t, reqs, 1)
			assert.Equal(t, []string{demoImage, runImage}, reqs[0].Images)

			_, err = c.Execute(t.Context(), p.ID, map[string]any{"photo": urlImage, "question": "And this?"})
			assert.Equal(t, adapter.CodeFailedPrecondition, adapter.CodeOf(err), "%v", err)
			assert.ErrorContains(t, err, "input photo: an image given by URL would be fetched by the model's server")
			assert.Len(t, srv.Requests(), 1, "a refused image reaches no LM")

			lm.ImageURLs = true
			require.NoError(t, c.ConfigureLM(t.Context(), lm))
			_, err = c.Execute(t.Context(), p.ID, map[string]any{"photo": urlImage, "question": "And this?"})
			require.NoError(t, err)
			reqs = srv.Requests()
			require.Len(t, reqs, 2)
			assert.Equal(t, []string{demoImage, urlImage}, reqs[1].Images)
		})
	}

	// An optimizer's examples hold images too, and the demos it makes of
	// them keep theirs.
	trainset := []dspgo.Example{{Inputs: map[string]any{"photo": runImage, "question": "What is it?"}, Outputs: map[string]any{"answer": "a gif"}}}
	compiled, err := c.Compile(t.Context(), p, trainset, nil, dspgo.WithOptimizer(dspgo.LabeledFewShot{}))
	require.NoError(t, err)
	require.Len(t, compiled.Spec.Demos, 1)
	assert.Equal(t, map[string]any{"url": runImage}, compiled.Spec.Demos[0].Inputs["photo"])

	var exported bytes.Buffer
	require.NoError(t, p.ExportDSPy(&exported))
	again := filepath.Join(t.TempDir(), "exported.json")
	require.NoError(t, os.WriteFile(again, exported.Bytes(), 0o644))
	assert.Equal(t, []string{demoImage, runImage}, strings.Fields(runPython(t, py, dir, formatCaptioner, again, runImage)))
}
