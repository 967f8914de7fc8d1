package dspgo

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"os"
)

// Image is a dspy.Image input's value as a Go type: an image for the model
// to see, by URL. URL is a data: URI ("data:image/png;base64,…", see
// ImageData and ImageFile) or an http, https or gs URL, which an LM takes
// only when configured to (LMConfig.ImageURLs); anything else, a local
// file's path included, is refused (docs/dspy.md, "Images"). A NewTyped
// In field of this type (or []Image, *Image, map[string]Image) is a
// dspy.Image input; in a map of inputs, an Image, its URL as a string or
// map[string]any{"url": …} gives it. The zero Image has no URL and is
// refused.
type Image struct {
	// URL is the image's data: URI or URL.
	URL string `json:"url"`
}

// ImageData returns the image of data, an image's bytes of MIME type mime
// ("image/png"), as a data: URI.
func ImageData(mime string, data []byte) Image {
	return Image{URL: dataURI(mime, data)}
}

// dataURI is the base64 data: URI of data, of MIME type mime.
func dataURI(mime string, data []byte) string {
	return "data:" + mime + ";base64," + base64.StdEncoding.EncodeToString(data)
}

// MaxImageFileBytes is the largest file ImageFile reads: 12 MiB, whose
// data: URI fills a 16 MiB frame, the default limit.
const MaxImageFileBytes = 12 << 20

// ImageFile reads the image file at path, a PNG, JPEG, GIF or WebP image
// (the formats OpenAI's models take, told by their content, not by the
// file's name), and returns it as ImageData. A file of another format,
// or larger than MaxImageFileBytes, is an error.
func ImageFile(path string) (Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return Image{}, fmt.Errorf("dspgo: image file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxImageFileBytes+1))
	if err != nil {
		return Image{}, fmt.Errorf("dspgo: image file %s: %w", path, err)
	}
	if len(data) > MaxImageFileBytes {
		return Image{}, fmt.Errorf("dspgo: image file %s is larger than %d MiB", path, MaxImageFileBytes>>20)
	}
	mime := imageMIME(data)
	if mime == "" {
		return Image{}, fmt.Errorf("dspgo: image file %s is not a PNG, JPEG, GIF or WebP image (give its bytes to ImageData with their MIME type)", path)
	}
	return ImageData(mime, data), nil
}

// imageMIME is the MIME type of a PNG, JPEG, GIF or WebP image's bytes,
// from their signature; "" for anything else.
func imageMIME(data []byte) string {
	switch {
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return "image/png"
	case bytes.HasPrefix(data, []byte("\xff\xd8\xff")):
		return "image/jpeg"
	case bytes.HasPrefix(data, []byte("GIF87a")), bytes.HasPrefix(data, []byte("GIF89a")):
		return "image/gif"
	case len(data) >= 12 && bytes.HasPrefix(data, []byte("RIFF")) && string(data[8:12]) == "WEBP":
		return "image/webp"
	}
	return ""
}
