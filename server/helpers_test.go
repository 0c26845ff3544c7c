package server_test

import (
	"github.com/pomona-mdm/pomona/server"
	"github.com/pomona-mdm/pomona/store"
)

type (
	serverConfig = server.Config
	storeUser    = store.User
)
