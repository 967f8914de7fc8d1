package dspgo_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
	"github.com/dspgo/dspgo/adapter"
	"github.com/dspgo/dspgo/adapters/mock"
)

// Programs over files (a PDF to read): a dspy.File input is given as its
// data: URI, {"file_data": …, "filename": …} or a dspgo.File; the mock
// and a Python worker take it alike and agree on the dummy LM's outputs;
// a file_id (a file stored with the provider under the worker's key) and
// a local path are refused by both, as is a file output.
func TestFileInputs(t *testing.T) {
	ctx := t.Context()
	sig := dspgo.MustParseSignature("document: dspy.File, question -> answer")
	report := dspgo.FileData("application/pdf", "report.pdf", []byte("%PDF-1.4\n"))
	assert.Equal(t, dspgo.File{Data: "data:application/pdf;base64,JVBERi0xLjQK", Filename: "report.pdf"}, report)
	forms := []any{report, map[string]any{"file_data": report.Data, "filename": "report.pdf"}, &report}
	var answers []any
	for _, c := range mockAndPython(t) {
		p, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: sig})
		require.NoError(t, err)
		for _, doc := range forms {
			out, err := c.Execute(ctx, p.ID, map[string]any{"document": doc, "question": "What does it say?"})
			require.NoError(t, err, "%v", doc)
			answers = append(answers, out["answer"])
		}
		for value, why := range map[any]string{
			"report.pdf":              "input document: a file is a data: URI (data:application/pdf;base64,…)",
			`{"file_id": "file-abc"}`: "input document: a file_id names a file stored with the model's provider under the worker's key",
			"no name":                 "input document.filename: a file's name is 1 to 255 bytes without control characters, < or >",
		} {
			var doc any = value
			switch value {
			case `{"file_id": "file-abc"}`:
				doc = map[string]any{"file_id": "file-abc"}
			case "no name":
				doc = map[string]any{"file_data": report.Data, "filename": ""}
			}
			_, err := c.Execute(ctx, p.ID, map[string]any{"document": doc, "question": "?"})
			assert.Equal(t, adapter.CodeInvalidArgument, adapter.CodeOf(err), "%v", value)
			assert.ErrorContains(t, err, why)
		}
	}
	for _, answer := range answers {
		assert.Equal(t, answers[0], answer, "every form, on both backends, is the same file")
	}

	type askIn struct {
		Document dspgo.File
		Question string
	}
	ask, err := dspgo.NewTyped[askIn, struct{ Answer string }](ctx, dspgo.NewClient(mock.New(mock.Options{})), dspgo.ProgramSpec{})
	require.NoError(t, err)
	assert.Equal(t, "document: dspy.File, question -> answer", ask.Program().Spec.Signature.String())
	_, err = ask.Execute(ctx, askIn{Document: report, Question: "?"})
	require.NoError(t, err)
	_, err = dspgo.NewTyped[askIn, struct{ Copy dspgo.File }](ctx, dspgo.NewClient(mock.New(mock.Options{})), dspgo.ProgramSpec{})
	assert.ErrorContains(t, err, "dspy.File is an input type (a file for the model to read)")
	// A file demo is saved as DSPy saves one, and read back.
	c := dspgo.NewClient(mock.New(mock.Options{}))
	p, err := c.CreateProgram(ctx, dspgo.ProgramSpec{Signature: sig, Demos: []dspgo.Demo{{
		Inputs: map[string]any{"document": report, "question": "What is it?"}, Outputs: map[string]any{"answer": "a report"}}}})
	require.NoError(t, err)
	var saved bytes.Buffer
	require.NoError(t, p.ExportDSPy(&saved))
	assert.Contains(t, saved.String(), `"document": "<<CUSTOM-TYPE-START-IDENTIFIER>>[{\"type\": \"file\", \"file\": `+
		`{\"file_data\": \"data:application/pdf;base64,JVBERi0xLjQK\", \"filename\": \"report.pdf\"}}]<<CUSTOM-TYPE-END-IDENTIFIER>>"`)
	loaded, err := dspgo.LoadDSPyProgram(&saved, "document: dspy.File, question -> answer")
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"file_data": report.Data, "filename": "report.pdf"}, loaded.Demos[0].Inputs["document"])

	_, err = dspgo.ParseSignature("question -> document: dspy.File | None")
	assert.ErrorContains(t, err, `output field "document": dspy.File is an input type`)
}
