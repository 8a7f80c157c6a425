package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"
)

// Load reads and parses the configuration file at path. Problems with the
// content are reported as an [*Errors]; files named by the configuration
// are not checked (see [Config.CheckFiles]).
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(data, path)
}

// Parse decodes, defaults and validates a configuration. name is used in
// messages, usually the file's path. On any problem it returns a nil
// *Config and an [*Errors] listing every problem found.
func Parse(data []byte, name string) (*Config, error) {
	c := Default()
	c.name = name
	d := &decoder{sources: c.sources, failed: map[string]bool{}}

	root, perr := parseDocument(data)
	if perr != nil {
		return nil, &Errors{File: name, Problems: []Problem{*perr}}
	}
	if root != nil {
		d.decodeValue(root, reflectValue(c), nil, "", pos{root.Line, root.Column})
	}
	c.present = d.present
	if !d.failed[""] {
		d.validate(c) // a root that is not a map has nothing to validate
	}

	if len(d.problems) > 0 {
		sortProblems(d.problems)
		return nil, &Errors{File: name, Problems: d.problems}
	}
	return c, nil
}

// parseDocument parses data as exactly one YAML document and returns its
// root node, or nil for an empty document.
func parseDocument(data []byte) (root *yaml.Node, perr *Problem) {
	defer func() {
		// yaml.v3 has had panics on hostile input; never let one escape.
		if r := recover(); r != nil {
			root, perr = nil, syntaxError(fmt.Errorf("yaml: %v", r))
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil // empty, or only comments
		}
		return nil, syntaxError(err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, syntaxError(err)
	default:
		return nil, &Problem{Line: next.Line, Column: next.Column,
			Msg: "a second YAML document; the file must hold exactly one"}
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	root = doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return nil, nil // "---" alone
	}
	return root, nil
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError turns a yaml.v3 parse error into a Problem.
func syntaxError(err error) *Problem {
	p := Problem{Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		p.Line, _ = strconv.Atoi(m[1]) // yaml.v3 gives no column
		p.Msg = m[2]
	}
	return &p
}

// pos is a place in the file.
type pos struct{ line, col int }

// decoder walks a yaml.Node tree into a Config, collecting problems.
type decoder struct {
	problems []Problem
	sources  map[string]Source
	present  []string        // leaf keys present, in file order
	failed   map[string]bool // paths whose value could not be decoded
}

func (d *decoder) addf(at pos, path, format string, args ...any) {
	d.problems = append(d.problems, Problem{Line: at.line, Column: at.col, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// fail records a problem with the value at path and marks path as failed so
// that cross-field validation does not report it a second time.
func (d *decoder) fail(at pos, path, format string, args ...any) {
	d.failed[path] = true
	d.addf(at, path, format, args...)
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	networksType = reflect.TypeFor[Networks]()
	headersType  = reflect.TypeFor[map[string]string]()
)

// isContainer reports whether t is a section (struct) or a list of sections.
func isContainer(t reflect.Type) bool {
	switch {
	case t.Kind() == reflect.Struct:
		return true
	case t.Kind() == reflect.Slice && t != networksType:
		return t.Elem().Kind() == reflect.Struct
	}
	return false
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a map"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	}
	switch n.ShortTag() {
	case "!!null":
		return "null"
	case "!!str":
		return fmt.Sprintf("the string %q", n.Value)
	}
	return fmt.Sprintf("%q", n.Value)
}

// decodeValue decodes n into v. f describes the struct field v is (nil for
// list entries and the root); at is where problems about v are reported.
func (d *decoder) decodeValue(n *yaml.Node, v reflect.Value, f *fieldInfo, path string, at pos) {
	if n.Kind == yaml.AliasNode {
		d.fail(at, path, "aliases (*%s) are not supported", n.Value)
		return
	}
	t := v.Type()
	switch {
	case t.Kind() == reflect.Struct:
		d.decodeStruct(n, v, path, at)
	case t == networksType:
		d.decodeNetworks(n, v, path, at)
	case t == headersType:
		d.decodeHeaders(n, v, path, at)
	case t.Kind() == reflect.Slice:
		d.decodeList(n, v, path, at)
	default:
		if n.Kind != yaml.ScalarNode {
			d.fail(at, path, "expected %s, got %s", expected(t, f), kindName(n))
			return
		}
		val, msg := parseScalar(t, f, n.Value, n.ShortTag())
		if msg != "" {
			d.fail(at, path, "%s", msg)
			return
		}
		v.Set(val)
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string, at pos) {
	if n.Kind != yaml.MappingNode {
		d.fail(at, path, "expected a map, got %s", kindName(n))
		return
	}
	info := infoFor(v.Type())
	seen := map[string]pos{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		kat := pos{kn.Line, kn.Column}
		if kn.Kind != yaml.ScalarNode {
			d.addf(kat, path, "a key must be a plain name, got %s", kindName(kn))
			continue
		}
		key := kn.Value
		kpath := join(path, key)
		if first, dup := seen[key]; dup {
			d.addf(kat, kpath, "duplicate key %q (first at line %d)", key, first.line)
			continue
		}
		seen[key] = kat
		fi := info.byKey[key]
		if fi == nil {
			msg := fmt.Sprintf("unknown key %q", key)
			if s := suggest(key, info.keys); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			d.addf(kat, kpath, "%s", msg)
			continue
		}
		if vn.Kind == yaml.ScalarNode && vn.ShortTag() == "!!null" {
			if fi.required {
				d.fail(kat, kpath, "is required%s", fi.hint())
			}
			continue // null counts as absent: the default stays
		}
		src := Source{Line: kn.Line, Column: kn.Column}
		if vn.Kind == yaml.ScalarNode {
			src.Raw = vn.Value
		}
		d.sources[kpath] = src
		if !isContainer(fi.typ) {
			d.present = append(d.present, kpath)
		}
		d.decodeValue(vn, v.Field(fi.index), fi, kpath, kat)
	}
	for _, fi := range info.fields {
		if _, ok := seen[fi.key]; fi.required && !ok {
			d.fail(at, join(path, fi.key), "is required%s", fi.hint())
		}
	}
}

// decodeList decodes a list of sections; each entry starts from its defaults.
func (d *decoder) decodeList(n *yaml.Node, v reflect.Value, path string, at pos) {
	if n.Kind != yaml.SequenceNode {
		d.fail(at, path, "expected a list, got %s", kindName(n))
		return
	}
	list := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		ipath := fmt.Sprintf("%s[%d]", path, i)
		d.sources[ipath] = Source{Line: item.Line, Column: item.Column}
		elem := list.Index(i)
		applyDefaults(elem)
		d.decodeValue(item, elem, nil, ipath, pos{item.Line, item.Column})
	}
	v.Set(list)
}

func (d *decoder) decodeNetworks(n *yaml.Node, v reflect.Value, path string, at pos) {
	if n.Kind != yaml.SequenceNode {
		d.fail(at, path, "expected a list of networks, got %s", kindName(n))
		return
	}
	nets := make(Networks, 0, len(n.Content))
	for i, item := range n.Content {
		ipath := fmt.Sprintf("%s[%d]", path, i)
		iat := pos{item.Line, item.Column}
		d.sources[ipath] = Source{Line: item.Line, Column: item.Column, Raw: item.Value}
		if item.Kind != yaml.ScalarNode || item.ShortTag() == "!!null" {
			d.fail(iat, ipath, "expected a network like 10.0.0.0/8 or 192.0.2.1, got %s", kindName(item))
			continue
		}
		p, msg := parsePrefix(item.Value)
		if msg != "" {
			d.fail(iat, ipath, "%s", msg)
			continue
		}
		nets = append(nets, p)
	}
	v.Set(reflect.ValueOf(nets))
}

func (d *decoder) decodeHeaders(n *yaml.Node, v reflect.Value, path string, at pos) {
	if n.Kind != yaml.MappingNode {
		d.fail(at, path, "expected a map of header names to values, got %s", kindName(n))
		return
	}
	h := make(map[string]string, len(n.Content)/2)
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		kat := pos{kn.Line, kn.Column}
		if kn.Kind != yaml.ScalarNode {
			d.addf(kat, path, "a header name must be a plain name, got %s", kindName(kn))
			continue
		}
		kpath := join(path, kn.Value)
		// HTTP header names are case-insensitive: X-A and x-a collide.
		canon := strings.ToLower(kn.Value)
		if first, dup := seen[canon]; dup {
			d.addf(kat, kpath, "duplicate key %q (first at line %d)", kn.Value, first)
			continue
		}
		seen[canon] = kn.Line
		src := Source{Line: kn.Line, Column: kn.Column}
		if vn.Kind == yaml.ScalarNode {
			src.Raw = vn.Value
		}
		d.sources[kpath] = src
		switch {
		case !validHeaderName(kn.Value):
			d.fail(kat, kpath, "%q is not a valid HTTP header name", kn.Value)
		case vn.Kind != yaml.ScalarNode || vn.ShortTag() == "!!null":
			d.fail(kat, kpath, "expected a header value, got %s", kindName(vn))
		case strings.ContainsAny(vn.Value, "\r\n\x00"):
			d.fail(kat, kpath, "a header value must not contain line breaks or NUL")
		default:
			h[kn.Value] = vn.Value
		}
	}
	v.Set(reflect.ValueOf(h))
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// expected names what a scalar field wants, for type errors.
func expected(t reflect.Type, f *fieldInfo) string {
	switch {
	case t == durationType:
		return "a duration like 30s"
	case f != nil && f.size:
		return "a size like 16KiB"
	case f != nil && len(f.oneof) > 0:
		return "one of " + strings.Join(f.oneof, ", ")
	}
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64:
		return "an integer"
	case reflect.Float64:
		return "a number"
	}
	return "a string"
}

// parseScalar parses a scalar for a field of type t. tag is the YAML tag the
// parser resolved ("!!int", "!!str" …); empty for values from struct tags,
// which skips the YAML type checks. It returns the value or a message.
func parseScalar(t reflect.Type, f *fieldInfo, s, tag string) (reflect.Value, string) {
	v := reflect.New(t).Elem()
	switch {
	case t == durationType:
		dur, msg := parseDuration(s)
		if msg != "" {
			return v, msg
		}
		v.SetInt(int64(dur))
	case f != nil && f.size:
		n, msg := parseSize(s)
		if msg != "" {
			return v, msg
		}
		v.SetInt(n)
	case t.Kind() == reflect.String:
		if f != nil && len(f.oneof) > 0 && !contains(f.oneof, s) {
			return v, fmt.Sprintf("%q is not one of %s", s, strings.Join(f.oneof, ", "))
		}
		v.SetString(s)
	case t.Kind() == reflect.Bool:
		if tag != "" && tag != "!!bool" {
			return v, fmt.Sprintf("expected true or false, got %q", s)
		}
		b, err := strconv.ParseBool(strings.ToLower(s))
		if err != nil {
			return v, fmt.Sprintf("expected true or false, got %q", s)
		}
		v.SetBool(b)
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		// Integers too large for int64 resolve as !!float in YAML.
		digits := isDigits(strings.TrimPrefix(s, "-"))
		n, err := strconv.ParseInt(s, 10, 64)
		if (tag != "" && tag != "!!int" && !(tag == "!!float" && digits)) || (err != nil && !errors.Is(err, strconv.ErrRange)) {
			return v, fmt.Sprintf("expected a decimal integer, got %q", s)
		}
		switch {
		case strings.HasPrefix(s, "-") && (err != nil || n < math.MinInt32):
			return v, fmt.Sprintf("%s must not be negative", s)
		case err != nil || n > math.MaxInt32:
			return v, fmt.Sprintf("%s is too large", s)
		}
		v.SetInt(n)
	case t.Kind() == reflect.Float64:
		x, err := strconv.ParseFloat(s, 64)
		if (tag != "" && tag != "!!int" && tag != "!!float") || err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
			return v, fmt.Sprintf("expected a number, got %q", s)
		}
		v.SetFloat(x)
	default:
		panic("config: no parser for " + t.String())
	}
	if f != nil && f.min.IsValid() && less(v, f.min) {
		if t == durationType && f.min.Int() == 1 {
			return v, fmt.Sprintf("%s must be greater than 0", s)
		}
		return v, fmt.Sprintf("%s must be at least %s", s, f.minText)
	}
	if f != nil && f.max.IsValid() && less(f.max, v) {
		return v, fmt.Sprintf("%s must be at most %s", s, f.maxText)
	}
	if !(f != nil && f.min.IsValid()) && (t.Kind() == reflect.Int || t.Kind() == reflect.Int64) && v.Int() < 0 {
		return v, fmt.Sprintf("%s must not be negative", s)
	}
	return v, ""
}

func less(a, b reflect.Value) bool {
	if a.Kind() == reflect.Float64 {
		return a.Float() < b.Float()
	}
	return a.Int() < b.Int()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// fieldInfo is what the struct tags say about one field.
type fieldInfo struct {
	key      string
	index    int
	typ      reflect.Type
	required bool
	size     bool
	oneof    []string
	def      reflect.Value // invalid when there is no default
	min, max reflect.Value // invalid when unbounded
	minText  string
	maxText  string
}

// hint completes "is required" with the allowed values, if any.
func (f *fieldInfo) hint() string {
	if len(f.oneof) == 0 {
		return ""
	}
	return " (one of " + strings.Join(f.oneof, ", ") + ")"
}

type structInfo struct {
	fields []*fieldInfo
	byKey  map[string]*fieldInfo
	keys   []string
}

var infoCache sync.Map // reflect.Type -> *structInfo

// infoFor returns the decoding information of struct type t. Bad tags are
// programming errors and panic (TestTags builds every type).
func infoFor(t reflect.Type) *structInfo {
	if si, ok := infoCache.Load(t); ok {
		return si.(*structInfo)
	}
	si := &structInfo{byKey: map[string]*fieldInfo{}}
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		key := sf.Tag.Get("yaml")
		if key == "" || !sf.IsExported() {
			continue
		}
		f := &fieldInfo{
			key:      key,
			index:    i,
			typ:      sf.Type,
			required: sf.Tag.Get("required") == "true",
			size:     sf.Tag.Get("conf") == "size",
			minText:  sf.Tag.Get("min"),
			maxText:  sf.Tag.Get("max"),
		}
		if o := sf.Tag.Get("oneof"); o != "" {
			f.oneof = strings.Split(o, ",")
		}
		bound := &fieldInfo{size: f.size} // parse bounds without checking them
		if def, ok := sf.Tag.Lookup("default"); ok {
			f.def = mustParse(sf, def, f)
		}
		if f.minText != "" {
			f.min = mustParse(sf, f.minText, bound)
		}
		if f.maxText != "" {
			f.max = mustParse(sf, f.maxText, bound)
		}
		si.fields = append(si.fields, f)
		si.byKey[key] = f
		si.keys = append(si.keys, key)
	}
	actual, _ := infoCache.LoadOrStore(t, si)
	return actual.(*structInfo)
}

func mustParse(sf reflect.StructField, s string, f *fieldInfo) reflect.Value {
	v, msg := parseScalar(sf.Type, f, s, "")
	if msg != "" {
		panic(fmt.Sprintf("config: bad tag on %s: %s", sf.Name, msg))
	}
	return v
}

// applyDefaults sets every field of struct v that has a default, recursing
// into sections. Lists start empty.
func applyDefaults(v reflect.Value) {
	info := infoFor(v.Type())
	for _, f := range info.fields {
		fv := v.Field(f.index)
		switch {
		case f.def.IsValid():
			fv.Set(f.def)
		case fv.Kind() == reflect.Struct:
			applyDefaults(fv)
		}
	}
}

func reflectValue(c *Config) reflect.Value { return reflect.ValueOf(c).Elem() }

// suggest returns the candidate closest to key if it is close enough to be
// a likely typo, else "".
func suggest(key string, candidates []string) string {
	best, bestDist := "", 1<<30
	for _, c := range candidates {
		if dist := editDistance(strings.ToLower(key), c); dist < bestDist {
			best, bestDist = c, dist
		}
	}
	limit := 2
	if len(key) <= 4 {
		limit = 1
	}
	if bestDist <= limit {
		return best
	}
	return ""
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and transpositions of adjacent bytes each cost 1.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 30 // not a typo of any key; keep the cost bounded
	}
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
