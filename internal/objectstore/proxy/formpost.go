package proxy

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Form posts (Swift's formpost middleware): a browser uploads files
// straight into a container with an HTML form signed by a temp URL key.
// The signature covers the path, redirect, max_file_size,
// max_file_count and expires fields, which must come before the files.

// formMaxValueLength bounds a non-file form field, as Swift's.
const formMaxValueLength = 4096

// isFormPost reports whether q is a form post to a container or prefix.
func (p *Proxy) isFormPost(q *request) bool {
	if p.cfg.Middlewares.DisableFormPost || q.r.Method != http.MethodPost || q.container == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(q.r.Header.Get("Content-Type"))
	return err == nil && mt == "multipart/form-data"
}

// formError is a form problem: 400 (invalid) or 401 (unauthorized).
type formError struct {
	status int
	msg    string
}

func (e *formError) Error() string { return e.msg }

// formPost stores the form's files and answers with Swift's texts, or a
// 303 to the form's redirect with status and message.
func (p *Proxy) formPost(q *request) error {
	_, params, _ := mime.ParseMediaType(q.r.Header.Get("Content-Type"))
	if params["boundary"] == "" {
		return errText(http.StatusBadRequest, "FormPost: invalid starting boundary")
	}
	status, message, attrs, err := p.formUploads(q, multipart.NewReader(q.r.Body, params["boundary"]))
	var fe *formError
	switch {
	case errors.As(err, &fe) && fe.status == http.StatusUnauthorized:
		return errText(http.StatusUnauthorized, "FormPost: "+pyTitle(fe.msg))
	case errors.As(err, &fe):
		return errText(http.StatusBadRequest, "FormPost: "+fe.msg)
	case err != nil:
		return err
	}
	if status == "" {
		status, message = statusLine(http.StatusBadRequest), "no files to process"
	}
	redirect := attrs["redirect"]
	if redirect == "" {
		body := status
		if message != "" {
			body += "\r\nFormPost: " + pyTitle(message)
		}
		code, _ := strconv.Atoi(status[:3])
		writeBody(q.w, q.r, code, "text/plain", body)
		return nil
	}
	if strings.Contains(redirect, "?") {
		redirect += "&"
	} else {
		redirect += "?"
	}
	redirect += "status=" + url.PathEscape(status) + "&message=" + url.PathEscape(message)
	q.w.Header().Set("Location", redirect)
	writeBody(q.w, q.r, http.StatusSeeOther, "text/html; charset=UTF-8",
		`<html><body><p><a href="`+xmlEscape(redirect)+`">Click to continue...</a></p></body></html>`)
	return nil
}

// formUploads reads the form: fields into attrs, each file stored as
// <path><filename>. It stops at the first file that fails.
func (p *Proxy) formUploads(q *request, mr *multipart.Reader) (status, message string, attrs map[string]string, err error) {
	attrs = map[string]string{}
	files := 0
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return status, message, attrs, nil
		}
		if err != nil {
			return "", "", attrs, &formError{http.StatusBadRequest, "invalid starting boundary"}
		}
		if part.FileName() == "" {
			v, _ := io.ReadAll(io.LimitReader(part, formMaxValueLength))
			_, _ = io.Copy(io.Discard, part)
			if name := part.FormName(); name != "" {
				attrs[strings.ToLower(name)] = strings.TrimRight(string(v), "\r\n-")
			}
			continue
		}
		files++
		maxCount, err := strconv.Atoi(orZero(attrs["max_file_count"]))
		if err != nil {
			return "", "", attrs, &formError{http.StatusBadRequest, "max_file_count not an integer"}
		}
		if files > maxCount {
			return "", "", attrs, &formError{http.StatusBadRequest, "max_file_count exceeded"}
		}
		code, err := p.formFile(q, attrs, part)
		if err != nil {
			return "", "", attrs, err
		}
		status = statusLine(code)
		if code/100 != 2 {
			return status, message, attrs, nil
		}
	}
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

// formFile checks the signature and stores one file.
func (p *Proxy) formFile(q *request, attrs map[string]string, part *multipart.Part) (int, error) {
	maxSize, err := strconv.ParseInt(orZero(attrs["max_file_size"]), 10, 64)
	if err != nil {
		return 0, &formError{http.StatusBadRequest, "max_file_size not an integer"}
	}
	expires, err := strconv.ParseInt(orZero(attrs["expires"]), 10, 64)
	if err != nil {
		return 0, &formError{http.StatusBadRequest, "expired not an integer"}
	}
	if expires < time.Now().Unix() {
		return 0, &formError{http.StatusUnauthorized, "form expired"}
	}
	keys, _, err := p.signingKeys(q)
	if err != nil {
		return 0, err
	}
	body := q.r.URL.Path + "\n" + attrs["redirect"] + "\n" + orZero(attrs["max_file_size"]) + "\n" +
		orZero(attrs["max_file_count"]) + "\n" + orZero(attrs["expires"])
	digest, hexSig, ok := parseSignature(attrs["signature"])
	if !ok || !p.cfg.Middlewares.digestAllowed(digest) || !signatureValid(digest, hexSig, body, keys) {
		return 0, &formError{http.StatusUnauthorized, "invalid signature"}
	}
	obj := q.object + part.FileName()
	names := [3]string{q.account, q.container, obj}
	h := http.Header{}
	ct := part.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	if v, ok := attrs["x_delete_at"]; ok {
		if _, err := strconv.ParseInt(v, 10, 64); err != nil {
			return 0, &formError{http.StatusBadRequest, "x_delete_at not an integer: Unix timestamp required."}
		}
		h.Set("X-Delete-At", v)
	}
	if v, ok := attrs["x_delete_after"]; ok {
		if _, err := strconv.ParseInt(v, 10, 64); err != nil {
			return 0, &formError{http.StatusBadRequest, "x_delete_after not an integer: Number of seconds required."}
		}
		h.Set("X-Delete-After", v)
	}
	capped := &cappedReader{r: part, left: maxSize}
	if err := p.checkQuotas(q, names, -1); err != nil {
		return errorStatus(err), nil
	}
	status, _, _, err := p.storeObject(q, names, h, capped, -1)
	if capped.exceeded {
		return 0, &formError{http.StatusBadRequest, "max_file_size exceeded"}
	}
	if err != nil {
		return errorStatus(err), nil
	}
	return status, nil
}

// cappedReader fails once more than left bytes are read.
type cappedReader struct {
	r        io.Reader
	left     int64
	exceeded bool
}

func (c *cappedReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.left -= int64(n)
	if c.left < 0 {
		c.exceeded = true
		return 0, fmt.Errorf("form file: %w", errFormTooLarge)
	}
	return n, err
}

var errFormTooLarge = errors.New("max_file_size exceeded")

// pyTitle capitalizes each word as Python's str.title, which Swift
// applies to form post messages ("Form Expired").
func pyTitle(s string) string {
	b := []byte(strings.ToLower(s))
	for i := range b {
		if (i == 0 || b[i-1] == ' ') && b[i] >= 'a' && b[i] <= 'z' {
			b[i] -= 'a' - 'A'
		}
	}
	return string(b)
}
