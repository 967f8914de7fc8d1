package dspgo_test

import (
	"encoding/base64"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/mock"
)

// Programs over images: a dspy.Image input, alone, in a list or a map, is
// given as a URL, {"url": …} or a dspgo.Image; the mock and a Python
// worker take it alike and agree on the dummy LM's outputs; an image that
// is not a data: URI or an http, https or gs URL (a local path) is
// refused by both, as is an image output or an image in a Union.
func TestImageInputs(t *testing.T) {
	ctx := t.Context()
	sig := dspgo.MustParseSignature("photo: dspy.Image, views: list[dspy.Image], named: dict[str, dspy.Image] -> caption")
	png := "data:image/png;base64,iVBORw0KGgo="
	forms := []map[string]any{
		{"photo": png, "views": []string{"https://example.com/a.png"}, "named": map[string]any{"side": "gs://b/c.png"}},
		{"photo": map[string]any{"url": png}, "views": []any{map[string]string{"url": "https://example.com/a.png"}},
			"named": map[string]dspgo.Image{"side": {URL: "gs://b/c.png"}}},
		{"photo": dspgo.Image{URL: png}, "views": []dspgo.Image{{URL: "https://example.com/a.png"}},
			"named": map[string]*dspgo.Image{"side": {URL: "gs://b/c.png"}}},
	}
	var captions []any
	for _, c := range mockAndPython(t) {
		p, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: sig})
		require.NoError(t, err)
		for _, inputs := range forms {
			out, err := c.Execute(ctx, p.ID, inputs)
			require.NoError(t, err, "%v", inputs)
			captions = append(captions, out["caption"])
		}
		for value, why := range map[any]string{
			"/etc/passwd":            "input photo: an image is a data: URI or an http, https or gs URL (a local file's path is not read: give its data: URI)",
			"file:///etc/passwd":     "input photo: an image is a data: URI or an http, https or gs URL",
			dspgo.Image{}:            "input photo.url: an image's URL is empty",
			"https://example.com/ a": "input photo: an image's URL may not hold a space, a control character, < or >",
			42:                       `input photo: expected dspy.Image, a data: URI or an http, https or gs URL, or an object {"url": one}, got int 42`,
		} {
			_, err := c.Execute(ctx, p.ID, map[string]any{"photo": value, "views": []string{}, "named": map[string]string{}})
			assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err), "%v", value)
			assert.ErrorContains(t, err, why)
		}
	}
	for _, caption := range captions {
		assert.Equal(t, captions[0], caption, "every form, on both backends, is the same image")
	}

	// From Go structs: Image fields are dspy.Image inputs.
	type captionIn struct {
		Photo dspgo.Image
		Views []dspgo.Image
		Spare *dspgo.Image
	}
	type captionOut struct{ Caption string }
	typed, err := dspgo.NewTyped[captionIn, captionOut](ctx, dspgo.NewClient(mock.New(mock.Options{})), dspgo.ProgramSpec{})
	require.NoError(t, err)
	assert.Equal(t, "photo: dspy.Image, views: list[dspy.Image], spare: Optional[dspy.Image] -> caption",
		typed.Program().Spec.Signature.String())
	got, err := typed.Execute(ctx, captionIn{Photo: dspgo.Image{URL: png}})
	require.NoError(t, err)
	assert.NotEmpty(t, got.Caption)
	_, err = typed.Execute(ctx, captionIn{})
	assert.ErrorContains(t, err, "input photo.url: an image's URL is empty")
	_, err = dspgo.NewTyped[captionIn, struct{ Photo dspgo.Image }](ctx, dspgo.NewClient(mock.New(mock.Options{})), dspgo.ProgramSpec{})
	assert.ErrorContains(t, err, "dspy.Image is an input type")

	_, err = dspgo.ParseSignature("question -> drawing: list[dspy.Image]")
	assert.ErrorContains(t, err, `output field "drawing": dspy.Image is an input type (an image for the model to see)`)
	_, err = dspgo.ParseSignature("photo: dspy.Image | str -> caption")
	assert.ErrorContains(t, err, "dspy.Image may not be in a Union of several types")
	_, err = dspgo.ParseSignature("photo: Image -> caption")
	assert.ErrorContains(t, err, `unknown type "Image"`)
}

// ImageFile reads a PNG, JPEG, GIF or WebP file as a data: URI of its
// type, told by its content; other files are refused.
func TestImageFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := dir + "/" + name
		require.NoError(t, os.WriteFile(path, []byte(content), 0o600))
		return path
	}
	for content, mime := range map[string]string{
		"\x89PNG\r\n\x1a\n rest":       "image/png",
		"\xff\xd8\xff\xe0 rest":        "image/jpeg",
		"GIF89a rest":                  "image/gif",
		"RIFF\x00\x00\x00\x00WEBPVP8 ": "image/webp",
	} {
		img, err := dspgo.ImageFile(write("photo.bin", content))
		require.NoError(t, err, mime)
		assert.Equal(t, dspgo.ImageData(mime, []byte(content)), img)
		assert.Equal(t, "data:"+mime+";base64,"+base64.StdEncoding.EncodeToString([]byte(content)), img.URL)
	}
	_, err := dspgo.ImageFile(write("notes.png", "just text"))
	assert.ErrorContains(t, err, "notes.png is not a PNG, JPEG, GIF or WebP image")
	_, err = dspgo.ImageFile(dir + "/missing.png")
	assert.ErrorIs(t, err, os.ErrNotExist)
	big := write("big.png", "\x89PNG\r\n\x1a\n")
	require.NoError(t, os.Truncate(big, dspgo.MaxImageFileBytes+1))
	_, err = dspgo.ImageFile(big)
	assert.ErrorContains(t, err, "big.png is larger than 12 MiB")

	// The image it reads runs as any other.
	c := dspgo.NewClient(mock.New(mock.Options{}))
	p, err := c.CreateProgram(t.Context(), dspgo.ProgramSpec{Signature: dspgo.MustParseSignature("photo: dspy.Image -> caption")})
	require.NoError(t, err)
	img, err := dspgo.ImageFile(write("dot.gif", "GIF89a\x01\x00\x01\x00"))
	require.NoError(t, err)
	_, err = c.Execute(t.Context(), p.ID, map[string]any{"photo": img})
	require.NoError(t, err)
}
