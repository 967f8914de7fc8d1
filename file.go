package dspgo

// File is a dspy.File input's value as a Go type: a file for the model to
// read, such as a PDF, sent whole. Data is its data: URI
// ("data:application/pdf;base64,…", see FileData); Filename, optional, its
// name. A file stored with the model's provider (DSPy's file_id) is not
// accepted: a caller could name another's (docs/dspy.md, "Files"). A
// NewTyped In field of this type (or []File, *File) is a dspy.File input;
// in a map of inputs, a File, its data: URI as a string or
// map[string]any{"file_data": …, "filename": …} gives it. The zero File
// has no data and is refused.
type File struct {
	// Data is the file's data: URI.
	Data string `json:"file_data"`
	// Filename is the file's name. Empty means none is sent.
	Filename string `json:"filename,omitempty"`
}

// FileData returns the file of data, a file's bytes of MIME type mime
// ("application/pdf"), named filename (empty: no name), with its data:
// URI.
func FileData(mime, filename string, data []byte) File {
	return File{Data: dataURI(mime, data), Filename: filename}
}
