package abm

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// OAuthTokens are the credentials inside a server token: OAuth 1.0a
// consumer and access credentials for GET /session, and when the access
// token stops working (a year after download; renew by downloading a new
// server token for the same MDM server).
type OAuthTokens struct {
	ConsumerKey       string    `json:"consumer_key"`
	ConsumerSecret    string    `json:"consumer_secret"`
	AccessToken       string    `json:"access_token"`
	AccessSecret      string    `json:"access_secret"`
	AccessTokenExpiry time.Time `json:"access_token_expiry"`
}

func (t *OAuthTokens) complete() error {
	var missing []string
	for name, v := range map[string]string{"consumer_key": t.ConsumerKey, "consumer_secret": t.ConsumerSecret,
		"access_token": t.AccessToken, "access_secret": t.AccessSecret} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return fmt.Errorf("missing %s", strings.Join(missing, ", "))
	}
	return nil
}

// OAuthAuthorization is the Authorization header of a request signed with
// HMAC-SHA1 (RFC 5849 §3.1–3.5, the method Apple requires for /session)
// at now with nonce (random when empty). Query parameters of rawURL take
// part in the signature.
func OAuthAuthorization(method, rawURL string, t *OAuthTokens, now time.Time, nonce string) (string, error) {
	if nonce == "" {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return "", err
		}
		nonce = hex.EncodeToString(b)
	}
	p := map[string]string{
		"oauth_consumer_key":     t.ConsumerKey,
		"oauth_token":            t.AccessToken,
		"oauth_signature_method": "HMAC-SHA1",
		"oauth_timestamp":        strconv.FormatInt(now.Unix(), 10),
		"oauth_nonce":            nonce,
		"oauth_version":          "1.0",
	}
	sig, err := OAuthSignature(method, rawURL, p, t.ConsumerSecret, t.AccessSecret)
	if err != nil {
		return "", err
	}
	p["oauth_signature"] = sig
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + `="` + oauthEscape(p[k]) + `"`
	}
	return "OAuth " + strings.Join(parts, ", "), nil
}

// OAuthSignature is the HMAC-SHA1 signature (base64) of a request with the
// protocol parameters oauth (without oauth_signature): the signature base
// string of RFC 5849 §3.4.1 (method, base string URI, normalised
// parameters from the query and oauth) keyed with the two secrets (§3.4.2).
func OAuthSignature(method, rawURL string, oauth map[string]string, consumerSecret, tokenSecret string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("oauth: %q is not an absolute URL", rawURL)
	}
	var pairs [][2]string
	for k, vs := range u.Query() {
		for _, v := range vs {
			pairs = append(pairs, [2]string{oauthEscape(k), oauthEscape(v)})
		}
	}
	for k, v := range oauth {
		if k == "oauth_signature" || k == "realm" {
			continue
		}
		pairs = append(pairs, [2]string{oauthEscape(k), oauthEscape(v)})
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i][0] != pairs[j][0] {
			return pairs[i][0] < pairs[j][0]
		}
		return pairs[i][1] < pairs[j][1]
	})
	norm := make([]string, len(pairs))
	for i, p := range pairs {
		norm[i] = p[0] + "=" + p[1]
	}
	// Base string URI (§3.4.1.2): scheme and host lower-case, default
	// ports left out, no query or fragment.
	host := strings.ToLower(u.Host)
	scheme := strings.ToLower(u.Scheme)
	host = strings.TrimSuffix(host, map[string]string{"https": ":443", "http": ":80"}[scheme])
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	base := strings.ToUpper(method) + "&" + oauthEscape(scheme+"://"+host+path) + "&" + oauthEscape(strings.Join(norm, "&"))
	mac := hmac.New(sha1.New, []byte(oauthEscape(consumerSecret)+"&"+oauthEscape(tokenSecret)))
	mac.Write([]byte(base))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// ParseOAuthAuthorization reads the parameters of an "OAuth …"
// Authorization header (RFC 5849 §3.5.1). The stand-in uses it to check
// requests the way Apple does.
func ParseOAuthAuthorization(h string) (map[string]string, error) {
	rest, ok := strings.CutPrefix(h, "OAuth ")
	if !ok {
		return nil, errors.New("oauth: the Authorization header is not OAuth")
	}
	out := map[string]string{}
	for _, part := range strings.Split(rest, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok || len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
			return nil, fmt.Errorf("oauth: malformed parameter %q", part)
		}
		val, err := url.PathUnescape(v[1 : len(v)-1])
		if err != nil {
			return nil, fmt.Errorf("oauth: %s: %v", k, err)
		}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("oauth: %s given twice", k)
		}
		out[k] = val
	}
	return out, nil
}

// oauthEscape is RFC 5849 §3.6 percent-encoding: everything but
// ALPHA / DIGIT / "-" / "." / "_" / "~", upper-case hex.
func oauthEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}
