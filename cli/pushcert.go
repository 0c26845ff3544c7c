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

const pushCertUsage = "push-cert csr [--out push.csr] | import --cert cert.pem [--key key.pem] | import --p12 cert.p12 [--password-stdin] | show"

// pushCertOptions are the flags of every push-cert subcommand; the usage
// of each says which subcommand reads it.
type pushCertOptions struct {
	out, certFile, keyFile, p12File *string
	pwStdin, allowTopic             *bool
}

func pushCertFlags(fs *flag.FlagSet) pushCertOptions {
	return pushCertOptions{
		out:        fs.String("out", "", "csr: write the CSR to this file (default: stdout)"),
		certFile:   fs.String("cert", "", "import: PEM certificate from Apple"),
		keyFile:    fs.String("key", "", "import: PEM private key (omit when pomona push-cert csr made the CSR: its key stays on the server)"),
		p12File:    fs.String("p12", "", "import: .p12 export with certificate and key"),
		pwStdin:    fs.Bool("password-stdin", false, "import: read the .p12 password from stdin"),
		allowTopic: fs.Bool("allow-topic-change", false, "import: replace a certificate of another topic (enrolled devices stop receiving pushes)"),
	}
}

func pushCertCSR(c *call, o pushCertOptions) error {
	api, err := c.client()
	if err != nil {
		return err
	}
	var resp struct {
		CSR  string `json:"csr"`
		Next string `json:"next"`
	}
	if err := api.Do(c.Ctx, http.MethodPost, "/api/v1/push-certificate/csr", nil, &resp); err != nil {
		return err
	}
	if *o.out != "" {
		if err := os.WriteFile(*o.out, []byte(resp.CSR), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(c.Stdout, "CSR written to %s (its private key stays sealed on the server)\n", *o.out)
	} else {
		fmt.Fprint(c.Stdout, resp.CSR)
	}
	fmt.Fprintln(c.Stderr, "next:", resp.Next)
	return nil
}

func pushCertImport(c *call, o pushCertOptions) error {
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
	default:
		return usagef("give --cert (and --key) or --p12")
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

func pushCertShow(c *call, _ pushCertOptions) error {
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
