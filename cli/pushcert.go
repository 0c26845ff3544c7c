package cli

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/pomona-mdm/pomona/apiclient"
)

const pushUsage = "push-cert csr [--out push.csr] | import --cert cert.pem [--key key.pem] | import --p12 cert.p12 [--password-stdin] | show"

func runPushCert(env *Env, args []string) error {
	sub, args, err := subcommand(args, pushUsage)
	if err != nil {
		return err
	}
	var cf clientFlags
	fs := newFlags(env, "push-cert "+sub, pushUsage)
	cf.register(fs)
	out := fs.String("out", "", "csr: write the CSR to this file (default: stdout)")
	certFile := fs.String("cert", "", "import: PEM certificate from Apple")
	keyFile := fs.String("key", "", "import: PEM private key (omit when pomona push-cert csr made the CSR: its key stays on the server)")
	p12File := fs.String("p12", "", "import: .p12 export with certificate and key")
	pwStdin := fs.Bool("password-stdin", false, "import: read the .p12 password from stdin")
	allowTopic := fs.Bool("allow-topic-change", false, "import: replace a certificate of another topic (enrolled devices stop receiving pushes)")
	if _, err := parse(env, fs, args); err != nil {
		return err
	}
	c, err := cf.client(env)
	if err != nil {
		return err
	}
	switch sub {
	case "csr":
		var resp struct {
			CSR  string `json:"csr"`
			Next string `json:"next"`
		}
		if err := c.Do(env.Ctx, http.MethodPost, "/api/v1/push-certificate/csr", nil, &resp); err != nil {
			return err
		}
		if *out != "" {
			if err := os.WriteFile(*out, []byte(resp.CSR), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "CSR written to %s (its private key stays sealed on the server)\n", *out)
		} else {
			fmt.Fprint(env.Stdout, resp.CSR)
		}
		fmt.Fprintln(env.Stderr, "next:", resp.Next)
		return nil
	case "import":
		body := map[string]any{"allow_topic_change": *allowTopic}
		switch {
		case *p12File != "":
			b, err := os.ReadFile(*p12File)
			if err != nil {
				return err
			}
			body["pkcs12"] = base64.StdEncoding.EncodeToString(b)
			if *pwStdin {
				pw, _, err := readPassword(env, true, false, false)
				if err != nil {
					return err
				}
				body["password"] = pw
			}
		case *certFile != "":
			b, err := os.ReadFile(*certFile)
			if err != nil {
				return err
			}
			body["certificate"] = string(b)
			if *keyFile != "" {
				k, err := os.ReadFile(*keyFile)
				if err != nil {
					return err
				}
				body["private_key"] = string(k)
			}
		default:
			return usagef("give --cert (and --key) or --p12")
		}
		var pc pushView
		if err := c.Do(env.Ctx, http.MethodPut, "/api/v1/push-certificate", body, &pc); err != nil {
			var ae *apiclient.Error
			if errors.As(err, &ae) && ae.Code == "topic_change" {
				// The API names its parameter; say the flag instead.
				msg := strings.TrimSuffix(ae.Message, " (allow_topic_change=true)")
				return fmt.Errorf("%s\ngive --allow-topic-change to replace it anyway: devices enrolled under the old topic stop receiving pushes until they enroll again", msg)
			}
			return err
		}
		return showPush(env, &cf, &pc)
	case "show":
		var pc pushView
		if err := c.Do(env.Ctx, http.MethodGet, "/api/v1/push-certificate", nil, &pc); err != nil {
			return err
		}
		return showPush(env, &cf, &pc)
	}
	return usagef("unknown subcommand %q\nUsage: pomona %s", sub, pushUsage)
}

type pushView struct {
	Topic         string    `json:"topic"`
	Subject       string    `json:"subject"`
	Issuer        string    `json:"issuer"`
	IssuedByApple bool      `json:"issued_by_apple"`
	NotAfter      time.Time `json:"not_after"`
	DaysLeft      int       `json:"days_left"`
	Warnings      []string  `json:"warnings"`
}

func showPush(env *Env, cf *clientFlags, p *pushView) error {
	if cf.json {
		return printJSON(env.Stdout, p)
	}
	fmt.Fprintf(env.Stdout, "topic     %s\nsubject   %s\nissuer    %s\nexpires   %s (%d days)\n", p.Topic, p.Subject, p.Issuer,
		p.NotAfter.Local().Format("2006-01-02"), p.DaysLeft)
	if len(p.Warnings) > 0 {
		fmt.Fprintf(env.Stdout, "warnings  %s\n", strings.Join(p.Warnings, "\n          "))
	}
	return nil
}
