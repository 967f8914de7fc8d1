package dspgo

// Image is a dspy.Image input's value as a Go type: an image for the model
// to see, by URL. URL is a data: URI ("data:image/png;base64,…") or an
// http, https or gs URL; anything else, a local file's path included, is
// refused (docs/dspy.md, "Images"). A NewTyped In field of this type (or
// []Image, *Image, map[string]Image) is a dspy.Image input; in a map of
// inputs, an Image, its URL as a string or map[string]any{"url": …}
// gives it. The zero Image has no URL and is refused.
type Image struct {
	// URL is the image's data: URI or URL.
	URL string `json:"url"`
}
