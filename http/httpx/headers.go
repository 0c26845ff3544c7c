package httpx

import (
	"net"
	"net/http"
)

// PageHeaders sets the security headers of every HTML page Pomona serves
// (the console and the device sign-in pages): the page's
// Content-Security-Policy csp, no framing (X-Frame-Options DENY, with
// frame-ancestors in csp), no MIME sniffing, the Referrer-Policy referrer,
// and no caching (pages carry CSRF tokens and personal data).
func PageHeaders(w http.ResponseWriter, csp, referrer string) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", referrer)
	h.Set("Cache-Control", "no-store")
}

// ClientIP is the address of r's client without the port: r.RemoteAddr,
// which RealIP has already set to the client behind trusted proxies.
func ClientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Attachment answers body as a download: Content-Type contentType, saved
// as filename (a name Pomona made: it is not quoted further).
func Attachment(w http.ResponseWriter, contentType, filename string, body []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Disposition", `attachment; filename="`+filename+`"`)
	w.Write(body)
}
