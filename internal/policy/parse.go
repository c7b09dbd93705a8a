package policy

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// maxNesting bounds how deeply parentheses and "not" may nest, so a hostile
// policy file cannot exhaust the stack. Real policies nest two or three deep.
const maxNesting = 100

// SyntaxError describes a rule that does not parse. oslo.policy logs such
// rules and silently denies everything they guard; Nimbus refuses them so a
// typo in a policy file is seen at load time rather than as a mystery 403.
type SyntaxError struct {
	Rule   string // the rule text
	Offset int    // byte offset in Rule where the problem was found
	Msg    string
}

// Column is the 1-based character (not byte) position of the error.
func (e *SyntaxError) Column() int {
	off := min(max(e.Offset, 0), len(e.Rule))
	return utf8.RuneCountInString(e.Rule[:off]) + 1
}

// Error renders the message with its column and the rule text.
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("syntax error at column %d of %q: %s", e.Column(), e.Rule, e.Msg)
}

// Parse parses a rule in the oslo.policy language; see the package
// documentation for the grammar. The empty string is the rule that always
// passes.
func Parse(rule string) (Rule, error) {
	if rule == "" {
		return alwaysRule{}, nil
	}
	toks, err := lex(rule)
	if err != nil {
		return nil, err
	}
	p := &parser{src: rule, toks: toks}
	if p.peek().kind == tokEOF {
		return nil, p.errorf(0, `blank rule; write "" or "@" to allow everyone, "!" to allow no one`)
	}
	r, err := p.parseOr(0)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		if t.kind == tokRParen {
			return nil, p.errorf(t.pos, `unbalanced ")"`)
		}
		return nil, p.errorf(t.pos, "unexpected %s; checks must be joined with \"and\" or \"or\"", t.describe())
	}
	return r, nil
}

type tokenKind int

const (
	tokEOF tokenKind = iota
	tokLParen
	tokRParen
	tokAnd
	tokOr
	tokNot
	tokCheck
)

type token struct {
	kind  tokenKind
	pos   int    // byte offset of the token in the rule
	text  string // source text, for messages
	check Rule   // for tokCheck
}

func (t token) describe() string {
	switch t.kind {
	case tokEOF:
		return "end of rule"
	case tokCheck:
		return fmt.Sprintf("check %q", t.text)
	}
	return fmt.Sprintf("%q", t.text)
}

// lex splits a rule into tokens the way oslo's tokenizer does — on white
// space, with "(" peeled off the front of a word and ")" off its end — and
// parses each remaining word as a check. Unlike oslo it honours quotes
// around a literal, so a quoted value may hold spaces and parentheses.
func lex(src string) ([]token, error) {
	var toks []token
	p := 0
	for p < len(src) {
		r, size := utf8.DecodeRuneInString(src[p:])
		switch {
		case isSpace(r):
			p += size
			continue
		case r == '(':
			toks = append(toks, token{kind: tokLParen, pos: p, text: "("})
			p++
			continue
		case r == ')':
			toks = append(toks, token{kind: tokRParen, pos: p, text: ")"})
			p++
			continue
		}
		t, next, err := lexWord(src, p)
		if err != nil {
			return nil, err
		}
		toks = append(toks, t)
		p = next
	}
	return append(toks, token{kind: tokEOF, pos: len(src)}), nil
}

// lexWord lexes the keyword or check starting at start and returns the
// offset just past it; any ")" glued to its end is left for lex.
func lexWord(src string, start int) (token, int, error) {
	if isQuote(src[start]) {
		return lexQuotedLeft(src, start)
	}
	end := wordEnd(src, start)
	word := strings.TrimRight(src[start:end], ")")
	end = start + len(word)
	colon := strings.IndexByte(word, ':')
	if colon < 0 {
		t := token{pos: start, text: word}
		switch {
		case strings.EqualFold(word, "and"):
			t.kind = tokAnd
		case strings.EqualFold(word, "or"):
			t.kind = tokOr
		case strings.EqualFold(word, "not"):
			t.kind = tokNot
		case word == "@":
			t.kind, t.check = tokCheck, alwaysRule{}
		case word == "!":
			t.kind, t.check = tokCheck, neverRule{}
		default:
			return token{}, 0, syntaxErrorf(src, start, "check %q has no ':' (expected KIND:VALUE, \"@\" or \"!\")", word)
		}
		return t, end, nil
	}
	kind := word[:colon]
	if kind == "" {
		return token{}, 0, syntaxErrorf(src, start, "empty check name before ':'")
	}
	val, next, err := lexValue(src, start+colon+1, end)
	if err != nil {
		return token{}, 0, err
	}
	check, err := makeCheck(src, start, kind, val)
	if err != nil {
		return token{}, 0, err
	}
	return token{kind: tokCheck, pos: start, text: src[start:next], check: check}, next, nil
}

// lexQuotedLeft lexes a check whose left side is a quoted literal, as in
// 'member':%(role.name)s.
func lexQuotedLeft(src string, start int) (token, int, error) {
	lit, p, err := lexQuoted(src, start)
	if err != nil {
		return token{}, 0, err
	}
	if p >= len(src) || src[p] != ':' {
		return token{}, 0, syntaxErrorf(src, start, "quoted string %s is not a check; expected ':' after it", src[start:p])
	}
	end := start + len(strings.TrimRight(src[start:wordEnd(src, p)], ")"))
	val, next, err := lexValue(src, p+1, end)
	if err != nil {
		return token{}, 0, err
	}
	right, err := parseTemplate(src, p+1, val)
	if err != nil {
		return token{}, 0, err
	}
	check := &genericCheck{kind: leftString, left: lit, right: right}
	return token{kind: tokCheck, pos: start, text: src[start:next], check: check}, next, nil
}

// rawValue is the right-hand side of a check as written.
type rawValue struct {
	text   string
	quoted bool
}

// lexValue lexes a check's value starting at p. An unquoted value runs to
// wordEnd (already stripped of trailing ")"); a quoted one runs to its
// closing quote, across spaces if need be.
func lexValue(src string, p, wordEnd int) (rawValue, int, error) {
	if p < len(src) && isQuote(src[p]) {
		lit, next, err := lexQuoted(src, p)
		if err != nil {
			return rawValue{}, 0, err
		}
		if next < len(src) && src[next] != ')' {
			if r, _ := utf8.DecodeRuneInString(src[next:]); !isSpace(r) {
				return rawValue{}, 0, syntaxErrorf(src, next, "unexpected %q after closing quote", r)
			}
		}
		return rawValue{text: lit, quoted: true}, next, nil
	}
	if p >= wordEnd {
		return rawValue{}, 0, syntaxErrorf(src, p, "empty value after ':' (write '' to compare with the empty string)")
	}
	return rawValue{text: src[p:wordEnd]}, wordEnd, nil
}

// lexQuoted reads the quoted string at src[start] and returns its contents
// and the offset after the closing quote. There are no escapes.
func lexQuoted(src string, start int) (string, int, error) {
	q := src[start]
	n := strings.IndexByte(src[start+1:], q)
	if n < 0 {
		return "", 0, syntaxErrorf(src, start, "unterminated quoted string")
	}
	return src[start+1 : start+1+n], start + n + 2, nil
}

func wordEnd(src string, p int) int {
	if n := strings.IndexFunc(src[p:], isSpace); n >= 0 {
		return p + n
	}
	return len(src)
}

// makeCheck builds the check KIND:VALUE found at pos.
func makeCheck(src string, pos int, kind string, val rawValue) (Rule, error) {
	valPos := pos + len(kind) + 1
	switch kind {
	case "rule":
		if val.text == "" {
			return nil, syntaxErrorf(src, valPos, "empty rule name")
		}
		return &ruleRef{name: val.text}, nil
	case "role":
		t, err := parseTemplate(src, valPos, val)
		if err != nil {
			return nil, err
		}
		return &roleCheck{role: t}, nil
	case "http", "https":
		return nil, syntaxErrorf(src, pos, "remote %q checks are not supported", kind)
	}
	t, err := parseTemplate(src, valPos, val)
	if err != nil {
		return nil, err
	}
	c := &genericCheck{kind: leftAttr, left: kind, right: t}
	if kind == "True" || kind == "False" {
		c.kind = leftBool
	}
	return c, nil
}

// parseTemplate parses an unquoted value's %(key)s substitutions and %%
// escapes. A quoted value is taken literally.
func parseTemplate(src string, pos int, val rawValue) (template, error) {
	if val.quoted {
		return literalTemplate(val.text), nil
	}
	s := val.text
	var t template
	var lit strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '%' {
			lit.WriteByte(s[i])
			i++
			continue
		}
		if strings.HasPrefix(s[i:], "%%") {
			lit.WriteByte('%')
			i += 2
			continue
		}
		if !strings.HasPrefix(s[i:], "%(") {
			return template{}, syntaxErrorf(src, pos+i, `stray "%%"; write %%(key)s to substitute from the target, %%%% for a literal "%%", or quote the value`)
		}
		n := strings.IndexByte(s[i+2:], ')')
		if n < 0 {
			return template{}, syntaxErrorf(src, pos+i, "unterminated %%(key)s substitution")
		}
		key := s[i+2 : i+2+n]
		if key == "" {
			return template{}, syntaxErrorf(src, pos+i, "empty key in %%()s substitution")
		}
		after := i + 2 + n + 1
		if after >= len(s) || s[after] != 's' {
			return template{}, syntaxErrorf(src, pos+i, "substitution %%(%s) must end in \")s\"", key)
		}
		if lit.Len() > 0 {
			t.parts = append(t.parts, templatePart{text: lit.String()})
			lit.Reset()
		}
		t.parts = append(t.parts, templatePart{text: key, sub: true})
		i = after + 1
	}
	if lit.Len() > 0 || len(t.parts) == 0 {
		t.parts = append(t.parts, templatePart{text: lit.String()})
	}
	return t, nil
}

// parser is a recursive-descent parser over the token list. Its grammar
// gives "not" the tightest binding, then "and", then "or" — the same trees
// oslo's shift-reduce parser builds.
type parser struct {
	src  string
	toks []token
	i    int
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

func (p *parser) errorf(pos int, format string, args ...any) error {
	return syntaxErrorf(p.src, pos, format, args...)
}

func syntaxErrorf(src string, pos int, format string, args ...any) error {
	return &SyntaxError{Rule: src, Offset: pos, Msg: fmt.Sprintf(format, args...)}
}

// parseOr parses and_expr { "or" and_expr }.
func (p *parser) parseOr(depth int) (Rule, error) {
	first, err := p.parseAnd(depth)
	if err != nil {
		return nil, err
	}
	operands := []Rule{first}
	for p.peek().kind == tokOr {
		op := p.next()
		if err := p.expectOperand(op); err != nil {
			return nil, err
		}
		r, err := p.parseAnd(depth)
		if err != nil {
			return nil, err
		}
		operands = append(operands, r)
	}
	if len(operands) == 1 {
		return first, nil
	}
	return &orRule{operands: operands}, nil
}

// parseAnd parses not_expr { "and" not_expr }.
func (p *parser) parseAnd(depth int) (Rule, error) {
	first, err := p.parseNot(depth)
	if err != nil {
		return nil, err
	}
	operands := []Rule{first}
	for p.peek().kind == tokAnd {
		op := p.next()
		if err := p.expectOperand(op); err != nil {
			return nil, err
		}
		r, err := p.parseNot(depth)
		if err != nil {
			return nil, err
		}
		operands = append(operands, r)
	}
	if len(operands) == 1 {
		return first, nil
	}
	return &andRule{operands: operands}, nil
}

// parseNot parses "not" not_expr | primary.
func (p *parser) parseNot(depth int) (Rule, error) {
	if p.peek().kind != tokNot {
		return p.parsePrimary(depth)
	}
	op := p.next()
	if depth >= maxNesting {
		return nil, p.errorf(op.pos, "rule nests deeper than %d levels", maxNesting)
	}
	if err := p.expectOperand(op); err != nil {
		return nil, err
	}
	r, err := p.parseNot(depth + 1)
	if err != nil {
		return nil, err
	}
	return &notRule{operand: r}, nil
}

// parsePrimary parses "(" or_expr ")" | check.
func (p *parser) parsePrimary(depth int) (Rule, error) {
	t := p.next()
	switch t.kind {
	case tokCheck:
		return t.check, nil
	case tokLParen:
		if depth >= maxNesting {
			return nil, p.errorf(t.pos, "rule nests deeper than %d levels", maxNesting)
		}
		if p.peek().kind == tokRParen {
			return nil, p.errorf(t.pos, "empty parentheses")
		}
		r, err := p.parseOr(depth + 1)
		if err != nil {
			return nil, err
		}
		if closing := p.next(); closing.kind != tokRParen {
			if closing.kind == tokEOF {
				return nil, p.errorf(t.pos, `unbalanced "(": no matching ")"`)
			}
			return nil, p.errorf(closing.pos, "unexpected %s; checks must be joined with \"and\" or \"or\"", closing.describe())
		}
		return r, nil
	case tokRParen:
		return nil, p.errorf(t.pos, `unexpected ")"`)
	case tokEOF:
		return nil, p.errorf(t.pos, "unexpected end of rule; expected a check")
	}
	return nil, p.errorf(t.pos, "unexpected %s; expected a check", t.describe())
}

// expectOperand reports a dangling operator: one followed by nothing it
// can apply to.
func (p *parser) expectOperand(op token) error {
	switch t := p.peek(); t.kind {
	case tokEOF, tokRParen, tokAnd, tokOr:
		return p.errorf(op.pos, "dangling %q: expected a check after it, found %s", strings.ToLower(op.text), t.describe())
	}
	return nil
}
