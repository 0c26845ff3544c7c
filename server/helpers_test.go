package server_test

import (
	"net/http"
	"strings"

	"github.com/pomona-mdm/pomona/server"
	"github.com/pomona-mdm/pomona/store"
)

type (
	serverConfig = server.Config
	storeUser    = store.User
)

func newRequest(method, url, body string) (*http.Request, error) {
	return http.NewRequest(method, url, strings.NewReader(body))
}
