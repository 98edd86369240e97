package awsemu

import (
	"bytes"
	"encoding/xml"
	"net/http"
	"strings"
)

// writeResponse writes <ActionResponse xmlns=...><ActionResult>body</ActionResult><ResponseMetadata/></...>.
func writeResponse(w http.ResponseWriter, ns, action string, body any) {
	var buf bytes.Buffer
	buf.WriteString(`<` + action + `Response xmlns="` + ns + `">`)
	enc := xml.NewEncoder(&buf)
	if err := enc.EncodeElement(body, xml.StartElement{Name: xml.Name{Local: action + "Result"}}); err != nil {
		writeError(w, ns, http.StatusInternalServerError, "Receiver", "InternalFailure", err.Error())
		return
	}
	_ = enc.Flush()
	buf.WriteString(`<ResponseMetadata><RequestId>` + requestID() + `</RequestId></ResponseMetadata></` + action + `Response>`)
	w.Header().Set("Content-Type", "text/xml")
	_, _ = w.Write(buf.Bytes())
}

// writeError writes an AWS Query error: <ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/>.
func writeError(w http.ResponseWriter, ns string, status int, typ, code, message string) {
	var b strings.Builder
	b.WriteString(`<ErrorResponse`)
	if ns != "" {
		b.WriteString(` xmlns="` + ns + `"`)
	}
	b.WriteString(`><Error><Type>` + typ + `</Type><Code>` + code + `</Code><Message>`)
	_ = xml.EscapeText(&b, []byte(message))
	b.WriteString(`</Message></Error><RequestId>` + requestID() + `</RequestId></ErrorResponse>`)
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

func requestID() string {
	return randomHex(8) + "-" + randomHex(4) + "-" + randomHex(4) + "-" + randomHex(12)
}
