package proxy

import (
	"encoding/xml"
	"strings"
)

func xmlEscape(s string) string {
	var sb strings.Builder
	_ = xml.EscapeText(&sb, []byte(s))
	return sb.String()
}
