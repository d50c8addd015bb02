package xovi

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/linkharvest/linkharvest/providers"
)

// The XML form's element names are the JSON form's keys. Neither the root
// element's name nor a row element's name is documented (PHP cannot name
// an element after a numeric key, so converters write <item>, <row>,
// <key_0>, …): both are taken whatever they are. A row becomes a JSON
// object of its child elements, in document order, each value the
// element's text as a string (XML has no types; "85" stays "85"), a
// repeated name an array, a nested element an object. Attributes are
// not part of the documented shape and are ignored.

// xnode is an element: its local name, its text, its child elements.
type xnode struct {
	name string
	text []byte
	kids []*xnode
}

// maxDepth bounds nesting: the documented answer is four levels deep.
const maxDepth = 64

// parseXML reads the envelope from an XML answer.
func parseXML(body []byte) (*envelope, error) {
	root, err := xmlTree(body)
	if err != nil {
		return nil, providers.BadBody(Name, err)
	}
	// Tolerate one wrapper element around the envelope.
	if !isEnvelope(root) && len(root.kids) == 1 && isEnvelope(root.kids[0]) {
		root = root.kids[0]
	}
	env := &envelope{total: -1}
	if n := child(root, "apiErrorCode"); n != nil {
		env.hasCode = true
		env.codeRaw = strings.TrimSpace(string(n.text))
		env.code, env.codeOK = providers.Atoi(env.codeRaw)
		env.codeOK = env.codeOK && env.code == 0
	}
	if n := child(root, "apiErrorMessage"); n != nil {
		env.message = providers.Str(string(n.text))
	}
	if n := child(root, "resultCount"); n != nil {
		if v, ok := providers.Atoi(strings.TrimSpace(string(n.text))); ok && v >= 0 {
			env.total = v
		}
	}
	if meta := child(root, "apiMeta"); env.total < 0 && meta != nil {
		if n := child(meta, "resultCount"); n != nil {
			if v, ok := providers.Atoi(strings.TrimSpace(string(n.text))); ok && v >= 0 {
				env.total = v
			}
		}
	}
	res := child(root, "apiResult")
	if res == nil {
		return env, nil
	}
	env.result = true
	if len(res.kids) == 0 {
		if t := strings.TrimSpace(string(res.text)); t != "" && t != "0" && t != "false" {
			env.badResult = errors.New("apiResult holds text, not rows")
		}
		return env, nil
	}
	env.rows = make([]json.RawMessage, len(res.kids))
	for i, k := range res.kids {
		var b bytes.Buffer
		if len(k.kids) == 0 && len(bytes.TrimSpace(k.text)) == 0 {
			b.WriteString("{}") // an empty row element
		} else {
			writeJSON(&b, k)
		}
		env.rows[i] = b.Bytes()
	}
	return env, nil
}

func isEnvelope(n *xnode) bool {
	for _, name := range []string{"apiErrorCode", "apiErrorMessage", "apiResult"} {
		if child(n, name) != nil {
			return true
		}
	}
	return false
}

// child returns n's first child element named name.
func child(n *xnode, name string) *xnode {
	for _, k := range n.kids {
		if k.name == name {
			return k
		}
	}
	return nil
}

// xmlTree reads the document's root element. The root must be closed: a
// truncated answer is an error, not a short page.
func xmlTree(body []byte) (*xnode, error) {
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = true
	d.Entity = xml.HTMLEntity // &raquo; and friends, should one come unescaped
	d.CharsetReader = charsetReader
	var stack []*xnode
	var root *xnode
	for {
		tok, err := d.Token()
		if err == io.EOF {
			if root == nil {
				return nil, errors.New("no root element")
			}
			return nil, io.ErrUnexpectedEOF
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) >= maxDepth {
				return nil, fmt.Errorf("elements nested deeper than %d", maxDepth)
			}
			n := &xnode{name: t.Name.Local}
			if len(stack) == 0 {
				root = n
			} else {
				p := stack[len(stack)-1]
				p.kids = append(p.kids, n)
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return root, nil // what follows the root is of no interest
			}
		case xml.CharData:
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.text = append(p.text, t...)
			}
		}
	}
}

// charsetReader decodes the 8-bit charsets a PHP service may declare
// (ISO-8859-1 and its aliases); UTF-8 needs none.
func charsetReader(label string, in io.Reader) (io.Reader, error) {
	switch strings.ToLower(strings.TrimSpace(label)) {
	case "utf8":
		return in, nil
	case "iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "us-ascii", "ascii":
		b, err := io.ReadAll(in)
		if err != nil {
			return nil, err
		}
		r := make([]rune, len(b))
		for i, c := range b {
			r[i] = rune(c)
		}
		return strings.NewReader(string(r)), nil
	}
	return nil, fmt.Errorf("charset %q is not supported", label)
}

// writeJSON writes an element as JSON: text for a leaf, an object of its
// children otherwise.
func writeJSON(b *bytes.Buffer, n *xnode) {
	if len(n.kids) == 0 {
		writeString(b, string(n.text))
		return
	}
	// Group children by name in order of first appearance.
	var names []string
	groups := map[string][]*xnode{}
	for _, k := range n.kids {
		if _, ok := groups[k.name]; !ok {
			names = append(names, k.name)
		}
		groups[k.name] = append(groups[k.name], k)
	}
	writeList(b, '{', '}', len(names), func(i int) {
		writeString(b, names[i])
		b.WriteByte(':')
		if g := groups[names[i]]; len(g) == 1 {
			writeJSON(b, g[0])
		} else {
			writeList(b, '[', ']', len(g), func(j int) { writeJSON(b, g[j]) })
		}
	})
}

// writeList writes n items between open and end, comma-separated.
func writeList(b *bytes.Buffer, open, end byte, n int, item func(i int)) {
	b.WriteByte(open)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		item(i)
	}
	b.WriteByte(end)
}

// writeString writes s as a JSON string, leaving <, > and & as they are.
func writeString(b *bytes.Buffer, s string) {
	var buf bytes.Buffer
	e := json.NewEncoder(&buf)
	e.SetEscapeHTML(false)
	_ = e.Encode(s) // a string always encodes
	b.Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}
