package cli

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/pomona-mdm/pomona/apiclient"
)

// pomona push-cert csr|import|show: the APNs push certificate
// (/api/v1/push-certificate).

func pushCertCSR(fs *flag.FlagSet) func(*call) error {
	out := fs.String("out", "", "write the CSR to this file (default: stdout)")
	return func(c *call) error {
		api, err := c.client()
		if err != nil {
			return err
		}
		// With --json: {"csr": PEM text, "next": what to do with it,
		// "file": --out when given}.
		var resp struct {
			CSR  string `json:"csr"`
			Next string `json:"next"`
			File string `json:"file,omitempty"`
		}
		if err := api.Do(c.Ctx, http.MethodPost, "/api/v1/push-certificate/csr", nil, &resp); err != nil {
			return err
		}
		if *out != "" {
			if err := os.WriteFile(*out, []byte(resp.CSR), 0o644); err != nil {
				return err
			}
			resp.File = *out
		}
		switch {
		case c.json():
			return printJSON(c.Stdout, resp)
		case *out != "":
			fmt.Fprintf(c.Stdout, "CSR written to %s (its private key stays sealed on the server)\n", *out)
		default:
			fmt.Fprint(c.Stdout, resp.CSR)
		}
		fmt.Fprintln(c.Stderr, "next:", resp.Next)
		return nil
	}
}

func pushCertImport(fs *flag.FlagSet) func(*call) error {
	o := pushCertOptions{
		certFile:   fs.String("cert", "", "PEM certificate from Apple"),
		keyFile:    fs.String("key", "", "PEM private key (omit when pomona push-cert csr made the CSR: its key stays on the server)"),
		p12File:    fs.String("p12", "", ".p12 export with certificate and key"),
		pwStdin:    fs.Bool("password-stdin", false, "read the .p12 password from stdin"),
		allowTopic: fs.Bool("allow-topic-change", false, "replace a certificate of another topic (enrolled devices stop receiving pushes)"),
	}
	return func(c *call) error { return pushCertImportRun(c, o) }
}

// pushCertOptions are the flags of push-cert import.
type pushCertOptions struct {
	certFile, keyFile, p12File *string
	pwStdin, allowTopic        *bool
}

func pushCertImportRun(c *call, o pushCertOptions) error {
	if *o.p12File == "" && *o.certFile == "" {
		return usagef("give --cert (and --key) or --p12")
	}
	api, err := c.client()
	if err != nil {
		return err
	}
	body := map[string]any{"allow_topic_change": *o.allowTopic}
	switch {
	case *o.p12File != "":
		b, err := os.ReadFile(*o.p12File)
		if err != nil {
			return err
		}
		body["pkcs12"] = base64.StdEncoding.EncodeToString(b)
		if *o.pwStdin {
			pw, _, err := readPassword(c.Env, true, false, false)
			if err != nil {
				return err
			}
			body["password"] = pw
		}
	case *o.certFile != "":
		b, err := os.ReadFile(*o.certFile)
		if err != nil {
			return err
		}
		body["certificate"] = string(b)
		if *o.keyFile != "" {
			k, err := os.ReadFile(*o.keyFile)
			if err != nil {
				return err
			}
			body["private_key"] = string(k)
		}
	}
	var pc pushView
	if err := api.Do(c.Ctx, http.MethodPut, "/api/v1/push-certificate", body, &pc); err != nil {
		var ae *apiclient.Error
		if errors.As(err, &ae) && ae.Code == "topic_change" {
			// The API names its parameter; say the flag instead.
			msg := strings.TrimSuffix(ae.Message, " (allow_topic_change=true)")
			return fmt.Errorf("%s\ngive --allow-topic-change to replace it anyway: devices enrolled under the old topic stop receiving pushes until they enroll again", msg)
		}
		return err
	}
	return showPush(c, &pc)
}

func pushCertShow(c *call) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	var pc pushView
	if err := api.Do(c.Ctx, http.MethodGet, "/api/v1/push-certificate", nil, &pc); err != nil {
		return err
	}
	return showPush(c, &pc)
}

// pushView is the API form of the push certificate.
type pushView struct {
	Topic         string    `json:"topic"`
	Subject       string    `json:"subject"`
	Issuer        string    `json:"issuer"`
	IssuedByApple bool      `json:"issued_by_apple"`
	NotAfter      time.Time `json:"not_after"`
	DaysLeft      int       `json:"days_left"`
	Warnings      []string  `json:"warnings"`
}

func showPush(c *call, p *pushView) error {
	if c.json() {
		return printJSON(c.Stdout, p)
	}
	fmt.Fprintf(c.Stdout, "topic     %s\nsubject   %s\nissuer    %s\nexpires   %s (%d days)\n", p.Topic, p.Subject, p.Issuer,
		p.NotAfter.Local().Format("2006-01-02"), p.DaysLeft)
	if len(p.Warnings) > 0 {
		fmt.Fprintf(c.Stdout, "warnings  %s\n", strings.Join(p.Warnings, "\n          "))
	}
	return nil
}
