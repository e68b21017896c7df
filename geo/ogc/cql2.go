package ogc

import (
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"ioc/api"
)

// Caps on what one filter may cost to parse and to run: the query string is
// capped at 4096 bytes anyway; these bound nesting (stack) and the size of
// the SQL it becomes.
const (
	maxFilterBytes      = 4096
	maxFilterDepth      = 20
	maxFilterPredicates = 64
	maxInList           = 100
)

// errBadFilter is the problem every filter error wraps (400 bad_filter).
var errBadFilter = api.NewProblem(http.StatusBadRequest, "bad_filter", "filter")

// filterError is a 400 with a message that names where the filter is wrong.
func filterError(format string, args ...any) error {
	return api.Problemf(http.StatusBadRequest, errBadFilter.Code, "filter: "+format, args...)
}

// A node of a parsed CQL2 filter (basic-cql2, plus LIKE, IN and BETWEEN).
type node interface{ isNode() }

type (
	// logical is AND or OR of two nodes.
	logical struct {
		op   string
		l, r node
	}
	// negation is NOT x.
	negation struct{ x node }
	// comparison is prop op value, op one of = <> < <= > >=.
	comparison struct {
		prop string
		op   string
		val  literal
	}
	// nullTest is prop IS [NOT] NULL.
	nullTest struct {
		prop string
		not  bool
	}
	// likeTest is prop [NOT] LIKE pattern (% and _ wildcards, \ escapes).
	likeTest struct {
		prop    string
		pattern string
		not     bool
	}
	// inList is prop [NOT] IN (values).
	inList struct {
		prop string
		vals []literal
		not  bool
	}
	// between is prop [NOT] BETWEEN lo AND hi.
	between struct {
		prop   string
		lo, hi literal
		not    bool
	}
)

func (logical) isNode()    {}
func (negation) isNode()   {}
func (comparison) isNode() {}
func (nullTest) isNode()   {}
func (likeTest) isNode()   {}
func (inList) isNode()     {}
func (between) isNode()    {}

// literal kinds.
const (
	litString = iota
	litNumber
	litBool
	litTime
)

type literal struct {
	kind int
	s    string
	n    float64
	b    bool
	t    time.Time
}

func (l literal) String() string {
	switch l.kind {
	case litNumber:
		return strconv.FormatFloat(l.n, 'g', -1, 64)
	case litBool:
		return strconv.FormatBool(l.b)
	case litTime:
		return "TIMESTAMP('" + l.t.Format(time.RFC3339Nano) + "')"
	}
	return "'" + api.Clip(l.s) + "'"
}

// token kinds.
const (
	tokEOF = iota
	tokIdent
	tokQuotedIdent
	tokString
	tokNumber
	tokOp // = <> < <= > >= ( ) ,
)

type token struct {
	kind int
	s    string
	pos  int
}

// lex splits a CQL2 text filter into tokens.
func lex(src string) ([]token, error) {
	var out []token
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '\'':
			var b strings.Builder
			j := i + 1
			for {
				if j >= len(src) {
					return nil, filterError("string starting at %d is not closed", i+1)
				}
				if src[j] == '\'' {
					if j+1 < len(src) && src[j+1] == '\'' {
						b.WriteByte('\'')
						j += 2
						continue
					}
					break
				}
				b.WriteByte(src[j])
				j++
			}
			out = append(out, token{tokString, b.String(), i})
			i = j + 1
		case c == '"':
			j := strings.IndexByte(src[i+1:], '"')
			if j < 0 {
				return nil, filterError("quoted name starting at %d is not closed", i+1)
			}
			out = append(out, token{tokQuotedIdent, src[i+1 : i+1+j], i})
			i += j + 2
		case c == '<' || c == '>':
			if i+1 < len(src) && (src[i+1] == '=' || (c == '<' && src[i+1] == '>')) {
				out = append(out, token{tokOp, src[i : i+2], i})
				i += 2
			} else {
				out = append(out, token{tokOp, src[i : i+1], i})
				i++
			}
		case c == '=' || c == '(' || c == ')' || c == ',':
			out = append(out, token{tokOp, src[i : i+1], i})
			i++
		case c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9'):
			j := i + 1
			for j < len(src) && (src[j] >= '0' && src[j] <= '9' || src[j] == '.' || src[j] == 'e' || src[j] == 'E' ||
				((src[j] == '-' || src[j] == '+') && (src[j-1] == 'e' || src[j-1] == 'E'))) {
				j++
			}
			out = append(out, token{tokNumber, src[i:j], i})
			i = j
		default:
			r, size := utf8.DecodeRuneInString(src[i:])
			if !(unicode.IsLetter(r) || r == '_') {
				return nil, filterError("unexpected %q at %d", api.Clip(string(r)), i+1)
			}
			j := i + size
			for j < len(src) {
				r, size := utf8.DecodeRuneInString(src[j:])
				if !(unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '.' || r == ':') {
					break
				}
				j += size
			}
			out = append(out, token{tokIdent, src[i:j], i})
			i = j
		}
		if len(out) > 4*maxFilterPredicates+2*maxInList {
			return nil, filterError("too long (at most %d predicates)", maxFilterPredicates)
		}
	}
	return append(out, token{tokEOF, "", len(src)}), nil
}

type parser struct {
	toks  []token
	i     int
	depth int
	preds int
}

// parseCQL2 parses a cql2-text filter. Its errors are 400 bad_filter.
func parseCQL2(src string) (node, error) {
	if len(src) > maxFilterBytes {
		return nil, filterError("longer than %d bytes", maxFilterBytes)
	}
	if !utf8.ValidString(src) {
		return nil, filterError("not valid UTF-8")
	}
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	n, err := p.or()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		return nil, filterError("unexpected %q at %d", api.Clip(t.s), t.pos+1)
	}
	return n, nil
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

// keyword reports (and consumes) the next token if it is the keyword kw.
func (p *parser) keyword(kw string) bool {
	if t := p.peek(); t.kind == tokIdent && strings.EqualFold(t.s, kw) {
		p.i++
		return true
	}
	return false
}

func (p *parser) op(s string) bool {
	if t := p.peek(); t.kind == tokOp && t.s == s {
		p.i++
		return true
	}
	return false
}

func (p *parser) enter() error {
	if p.depth++; p.depth > maxFilterDepth {
		return filterError("nested deeper than %d", maxFilterDepth)
	}
	return nil
}

func (p *parser) or() (node, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.keyword("OR") {
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = logical{"OR", l, r}
	}
	return l, nil
}

func (p *parser) and() (node, error) {
	l, err := p.factor()
	if err != nil {
		return nil, err
	}
	for p.keyword("AND") {
		r, err := p.factor()
		if err != nil {
			return nil, err
		}
		l = logical{"AND", l, r}
	}
	return l, nil
}

func (p *parser) factor() (node, error) {
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer func() { p.depth-- }()
	if p.keyword("NOT") {
		x, err := p.factor()
		if err != nil {
			return nil, err
		}
		return negation{x}, nil
	}
	if p.op("(") {
		x, err := p.or()
		if err != nil {
			return nil, err
		}
		if !p.op(")") {
			t := p.peek()
			return nil, filterError("want ) at %d", t.pos+1)
		}
		return x, nil
	}
	return p.predicate()
}

var reserved = map[string]bool{"AND": true, "OR": true, "NOT": true, "IS": true, "NULL": true, "LIKE": true,
	"IN": true, "BETWEEN": true, "TRUE": true, "FALSE": true, "TIMESTAMP": true, "DATE": true}

// property reads a property name, if the next token is one.
func (p *parser) property() (string, bool) {
	t := p.peek()
	switch {
	case t.kind == tokQuotedIdent:
		p.i++
		return t.s, true
	case t.kind == tokIdent && !reserved[strings.ToUpper(t.s)]:
		p.i++
		return t.s, true
	}
	return "", false
}

func (p *parser) literal() (literal, error) {
	t := p.next()
	switch t.kind {
	case tokString:
		return literal{kind: litString, s: t.s}, nil
	case tokNumber:
		f, err := strconv.ParseFloat(t.s, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return literal{}, filterError("%q at %d is not a number", api.Clip(t.s), t.pos+1)
		}
		return literal{kind: litNumber, n: f}, nil
	case tokIdent:
		switch strings.ToUpper(t.s) {
		case "TRUE", "FALSE":
			return literal{kind: litBool, b: strings.EqualFold(t.s, "TRUE")}, nil
		case "TIMESTAMP", "DATE":
			if !p.op("(") {
				return literal{}, filterError("want ( after %s at %d", t.s, t.pos+1)
			}
			s := p.next()
			if s.kind != tokString || !p.op(")") {
				return literal{}, filterError("want %s('...') at %d", strings.ToUpper(t.s), t.pos+1)
			}
			var tm time.Time
			var err error
			if strings.EqualFold(t.s, "DATE") {
				tm, err = time.Parse(time.DateOnly, s.s)
			} else {
				tm, err = time.Parse(time.RFC3339Nano, s.s)
			}
			if err != nil {
				return literal{}, filterError("%s(%q) at %d is not a valid instant", strings.ToUpper(t.s), api.Clip(s.s), t.pos+1)
			}
			return literal{kind: litTime, t: tm}, nil
		}
	case tokEOF:
		return literal{}, filterError("ends where a value was expected")
	}
	return literal{}, filterError("want a value at %d, got %q", t.pos+1, api.Clip(t.s))
}

var flipped = map[string]string{"=": "=", "<>": "<>", "<": ">", "<=": ">=", ">": "<", ">=": "<="}

func (p *parser) predicate() (node, error) {
	if p.preds++; p.preds > maxFilterPredicates {
		return nil, filterError("more than %d predicates", maxFilterPredicates)
	}
	start := p.peek()
	prop, ok := p.property()
	if !ok {
		// A value first: value op property.
		lit, err := p.literal()
		if err != nil {
			return nil, err
		}
		t := p.next()
		op, isOp := flipped[t.s]
		if t.kind != tokOp || !isOp {
			return nil, filterError("want a comparison operator at %d", t.pos+1)
		}
		prop, ok := p.property()
		if !ok {
			return nil, filterError("a comparison needs a property (queryable) at %d", start.pos+1)
		}
		return comparison{prop, op, lit}, nil
	}
	if t := p.peek(); t.kind == tokOp {
		if _, isOp := flipped[t.s]; isOp {
			p.i++
			lit, err := p.literal()
			if err != nil {
				return nil, err
			}
			return comparison{prop, t.s, lit}, nil
		}
	}
	if p.keyword("IS") {
		not := p.keyword("NOT")
		if !p.keyword("NULL") {
			return nil, filterError("want NULL after IS at %d", p.peek().pos+1)
		}
		return nullTest{prop, not}, nil
	}
	not := p.keyword("NOT")
	switch {
	case p.keyword("LIKE"):
		t := p.next()
		if t.kind != tokString {
			return nil, filterError("LIKE wants a 'pattern' at %d", t.pos+1)
		}
		return likeTest{prop, t.s, not}, nil
	case p.keyword("IN"):
		if !p.op("(") {
			return nil, filterError("IN wants (values) at %d", p.peek().pos+1)
		}
		var vals []literal
		for {
			v, err := p.literal()
			if err != nil {
				return nil, err
			}
			if vals = append(vals, v); len(vals) > maxInList {
				return nil, filterError("IN lists at most %d values", maxInList)
			}
			if p.op(")") {
				break
			}
			if !p.op(",") {
				return nil, filterError("want , or ) at %d", p.peek().pos+1)
			}
		}
		return inList{prop, vals, not}, nil
	case p.keyword("BETWEEN"):
		lo, err := p.literal()
		if err != nil {
			return nil, err
		}
		if !p.keyword("AND") {
			return nil, filterError("BETWEEN wants AND at %d", p.peek().pos+1)
		}
		hi, err := p.literal()
		if err != nil {
			return nil, err
		}
		return between{prop, lo, hi, not}, nil
	}
	t := p.peek()
	if t.kind == tokEOF {
		return nil, filterError("ends after %q", api.Clip(prop))
	}
	return nil, filterError("want an operator after %q at %d, got %q", api.Clip(prop), t.pos+1, api.Clip(t.s))
}

// Queryable types (JSON Schema types and formats in /queryables).
const (
	typeString   = "string"
	typeInteger  = "integer"
	typeNumber   = "number"
	typeBoolean  = "boolean"
	typeDateTime = "date-time"
)

// queryable is a property a filter may name, and the SQL column behind it.
type queryable struct {
	name, title string
	typ         string
	enum        []string
	column      string // SQL over the collection's table alias, e.g. i.status
}

// condition is a compiled filter: SQL whose values go through arg. It
// satisfies alerts.Condition, ingest.Condition and geo.Condition.
type condition struct {
	build func(arg func(any) string) (string, error)
}

func (c condition) SQL(arg func(any) string) (string, error) { return c.build(arg) }

// compile checks n against the queryables and returns it as a condition.
// Every value is bound through arg; only queryables' columns reach the SQL.
func compile(n node, qs []queryable) (condition, error) {
	byName := make(map[string]*queryable, len(qs))
	for i := range qs {
		byName[qs[i].name] = &qs[i]
	}
	// Check everything first, so a bad filter is a 400 before any query.
	if err := check(n, byName); err != nil {
		return condition{}, err
	}
	return condition{func(arg func(any) string) (string, error) { return toSQL(n, byName, arg), nil }}, nil
}

func lookup(byName map[string]*queryable, prop string) (*queryable, error) {
	q, ok := byName[prop]
	if !ok {
		names := make([]string, 0, len(byName))
		for n := range byName {
			names = append(names, n)
		}
		slices.Sort(names)
		return nil, filterError("%q is not a queryable (see /queryables: %s)", api.Clip(prop), strings.Join(names, ", "))
	}
	return q, nil
}

// value converts a literal to q's type.
func value(q *queryable, l literal) (any, error) {
	switch q.typ {
	case typeString:
		if l.kind == litString {
			return l.s, nil
		}
	case typeInteger, typeNumber:
		if l.kind == litNumber {
			return l.n, nil
		}
	case typeBoolean:
		if l.kind == litBool {
			return l.b, nil
		}
	case typeDateTime:
		switch l.kind {
		case litTime:
			return l.t, nil
		case litString:
			if t, err := time.Parse(time.RFC3339Nano, l.s); err == nil {
				return t, nil
			}
			if t, err := time.Parse(time.DateOnly, l.s); err == nil {
				return t, nil
			}
			// GDAL writes date-times as 'YYYY/MM/DD HH:MM:SS[+ZZ]'.
			for _, layout := range []string{"2006/01/02 15:04:05.999Z07", "2006/01/02 15:04:05.999", "2006/01/02 15:04:05Z07", "2006/01/02 15:04:05"} {
				if t, err := time.Parse(layout, l.s); err == nil {
					return t, nil
				}
			}
		}
	}
	return nil, filterError("%s is a %s; %s is not one", q.name, q.typ, l)
}

func check(n node, byName map[string]*queryable) error {
	switch x := n.(type) {
	case logical:
		if err := check(x.l, byName); err != nil {
			return err
		}
		return check(x.r, byName)
	case negation:
		return check(x.x, byName)
	case comparison:
		q, err := lookup(byName, x.prop)
		if err != nil {
			return err
		}
		if q.typ == typeBoolean && x.op != "=" && x.op != "<>" {
			return filterError("%s is a boolean: only = and <>", q.name)
		}
		_, err = value(q, x.val)
		return err
	case nullTest:
		_, err := lookup(byName, x.prop)
		return err
	case likeTest:
		q, err := lookup(byName, x.prop)
		if err != nil {
			return err
		}
		if q.typ != typeString {
			return filterError("LIKE needs a string property; %s is a %s", q.name, q.typ)
		}
		return nil
	case inList:
		q, err := lookup(byName, x.prop)
		if err != nil {
			return err
		}
		for _, v := range x.vals {
			if _, err := value(q, v); err != nil {
				return err
			}
		}
		return nil
	case between:
		q, err := lookup(byName, x.prop)
		if err != nil {
			return err
		}
		if q.typ == typeBoolean {
			return filterError("BETWEEN needs an ordered property; %s is a boolean", q.name)
		}
		if _, err := value(q, x.lo); err != nil {
			return err
		}
		_, err = value(q, x.hi)
		return err
	}
	return fmt.Errorf("ogc: unknown filter node %T", n)
}

// toSQL writes a checked node; check has already validated every value.
func toSQL(n node, byName map[string]*queryable, arg func(any) string) string {
	not := func(b bool) string {
		if b {
			return "NOT "
		}
		return ""
	}
	v := func(q *queryable, l literal) string {
		x, _ := value(q, l)
		return arg(x) + sqlCast[q.typ]
	}
	switch x := n.(type) {
	case logical:
		return "(" + toSQL(x.l, byName, arg) + " " + x.op + " " + toSQL(x.r, byName, arg) + ")"
	case negation:
		return "(NOT " + toSQL(x.x, byName, arg) + ")"
	case comparison:
		q := byName[x.prop]
		return q.column + " " + x.op + " " + v(q, x.val)
	case nullTest:
		return byName[x.prop].column + " IS " + not(x.not) + "NULL"
	case likeTest:
		return byName[x.prop].column + " " + not(x.not) + "LIKE " + arg(x.pattern) + "::text"
	case inList:
		q := byName[x.prop]
		ps := make([]string, len(x.vals))
		for i, l := range x.vals {
			ps[i] = v(q, l)
		}
		return q.column + " " + not(x.not) + "IN (" + strings.Join(ps, ", ") + ")"
	case between:
		q := byName[x.prop]
		return q.column + " " + not(x.not) + "BETWEEN " + v(q, x.lo) + " AND " + v(q, x.hi)
	}
	return "FALSE"
}

// sqlCast types each bound value, so PostgreSQL compares an integer
// column with 1.5 as numbers instead of refusing the parameter.
var sqlCast = map[string]string{typeString: "::text", typeInteger: "::float8", typeNumber: "::float8",
	typeBoolean: "::boolean", typeDateTime: "::timestamptz"}
