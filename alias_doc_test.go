package dspgo_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dspgo/dspgo"
)

// TestAliasDocsListTheFields checks that the doc comment of each alias of
// a command type shows that type's fields, in order, since go doc shows
// an alias without them.
func TestAliasDocsListTheFields(t *testing.T) {
	aliases := map[string]reflect.Type{
		"Field":     reflect.TypeFor[dspgo.Field](),
		"Signature": reflect.TypeFor[dspgo.Signature](),
		"Demo":      reflect.TypeFor[dspgo.Demo](),
		"Step":      reflect.TypeFor[dspgo.Step](),
	}
	docs := aliasDocs(t)
	// A field line of the doc's code block: a tab, the name, its type.
	fieldLine := regexp.MustCompile(`(?m)^\t\t([A-Z]\w*)\s`)
	for name, typ := range aliases {
		doc, ok := docs[name]
		require.True(t, ok, "dspgo.%s is an alias with a doc comment", name)
		var listed []string
		for _, m := range fieldLine.FindAllStringSubmatch(doc, -1) {
			listed = append(listed, m[1])
		}
		var fields []string
		for i := range typ.NumField() {
			fields = append(fields, typ.Field(i).Name)
		}
		assert.Equal(t, fields, listed, "the fields the doc of dspgo.%s lists", name)
	}
}

// aliasDocs returns the doc comments of the package's type aliases, by
// name.
func aliasDocs(t *testing.T) map[string]string {
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	fset := token.NewFileSet()
	docs := map[string]string{}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		require.NoError(t, err)
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.TYPE {
				continue
			}
			for _, s := range g.Specs {
				ts := s.(*ast.TypeSpec)
				if ts.Assign.IsValid() && g.Doc != nil {
					docs[ts.Name.Name] = g.Doc.Text()
				}
			}
		}
	}
	return docs
}
