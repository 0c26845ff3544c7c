package cli

// commands is the command table: every `pomona` command and subcommand,
// its synopsis, usage line, flags and run func. Main walks it; `pomona
// help` lists the top level by name and `pomona <group> --help` a group's
// children in this order. TestHelpOnEveryCommand runs --help and -h on
// every node.
func commands() []*command {
	return []*command{
		{name: "serve", synopsis: "run the server", usage: "serve [flags]", flags: runServe},
		{name: "tenant", synopsis: "manage tenants: add, list, show, update, branding, delete", children: []*command{
			{name: "add", synopsis: "create a tenant with its company domains", api: true, flags: tenantAdd,
				usage: `tenant add "<name>" --domain <domain> [--domain <domain>...] [--second-factor=false]`},
			{name: "list", synopsis: "list the tenants", api: true, run: tenantList,
				usage: "tenant list"},
			{name: "show", synopsis: "show one tenant", api: true, run: tenantShow,
				usage: "tenant show <id or domain>"},
			{name: "update", synopsis: "rename a tenant, add or remove domains, change the second-factor rule", api: true, flags: tenantUpdate,
				usage: "tenant update <id or domain> [--name N] [--add-domain D] [--remove-domain D] [--second-factor=true|false]"},
			{name: "branding", synopsis: "the sign-in pages' logo, accent colour, contact line and privacy link", api: true, flags: tenantBranding,
				usage: `tenant branding <id or domain> [--accent-color '#rrggbb'] [--contact "text"] [--privacy-url https://…] [--logo logo.png | --remove-logo]`},
			{name: "delete", synopsis: "delete a tenant (--cascade: with its users, unenrolling their devices; --yes confirms)", api: true, flags: tenantDelete,
				usage: "tenant delete <id or domain> [--cascade [--yes]]"},
		}},
		{name: "user", synopsis: "manage users: add, list, show, update, enable, disable, set-password, reset-2fa, reauthenticate, delete, import", children: []*command{
			{name: "add", synopsis: "create a user", api: true, flags: userAdd,
				usage: "user add <email> [--tenant T] [--name N] [--managed-apple-id A] [--password-stdin | --generate-password] [--disabled]"},
			{name: "list", synopsis: "list users", api: true, flags: userList,
				usage: "user list [--tenant T] [--email E] [--limit N]"},
			{name: "show", synopsis: "show one user", api: true, run: userShow,
				usage: "user show <id or email>"},
			{name: "update", synopsis: "change a user's name or Managed Apple Account", api: true, flags: userUpdate,
				usage: "user update <id or email> [--email E] [--name N] [--managed-apple-id A]"},
			{name: "enable", synopsis: "let a user sign in again", api: true, run: userEnable(true),
				usage: "user enable <id or email>"},
			{name: "disable", synopsis: "stop a user signing in", api: true, run: userEnable(false),
				usage: "user disable <id or email>"},
			{name: "set-password", synopsis: "set a user's password", api: true, flags: userSetPassword,
				usage: "user set-password <id or email> [--password-stdin | --generate-password]"},
			{name: "reset-2fa", synopsis: "remove a user's second factor (they set up a new one at the next sign-in)", api: true, run: userReset2FA,
				usage: "user reset-2fa <id or email>"},
			{name: "reauthenticate", synopsis: "make the user's devices sign in again", api: true, run: userReauthenticate,
				usage: "user reauthenticate <id or email>"},
			{name: "delete", synopsis: "delete a user, unenrolling their devices (--yes confirms)", api: true, flags: userDelete,
				usage: "user delete <id or email> [--yes]"},
			{name: "import", synopsis: "create or update users from a CSV file", api: true, flags: userImport,
				usage: "user import <users.csv> [--tenant T] [--workers N] [--skip-existing] [--errors failed.csv]"},
		}},
		// The subcommands of apikey, admin, push-cert and device accept
		// their group's flags and show its usage line (one shared flag set
		// before the table; kept so that no command line changes meaning).
		{name: "apikey", synopsis: "manage admin API keys: create, list, revoke", children: []*command{
			{name: "create", synopsis: "create a key (printed once)", api: true, flags: with(apikeyFlags, apikeyCreate), usage: apikeyUsage},
			{name: "list", synopsis: "list the keys", api: true, flags: with(apikeyFlags, apikeyList), usage: apikeyUsage},
			{name: "revoke", synopsis: "revoke a key", api: true, flags: with(apikeyFlags, apikeyRevoke), usage: apikeyUsage},
		}},
		{name: "admin", synopsis: "web-console accounts: create (prints a one-time setup link), list, reset", children: []*command{
			{name: "create", synopsis: "create a console account and print its one-time setup link", api: true, flags: with(adminFlags, adminCreate), usage: adminUsage},
			{name: "list", synopsis: "list the console accounts", api: true, flags: with(adminFlags, adminList), usage: adminUsage},
			{name: "reset", synopsis: "reset an account's password and second factor (prints a new setup link)", api: true, flags: with(adminFlags, adminReset), usage: adminUsage},
		}},
		{name: "discovery", synopsis: "check a company domain's discovery redirect, print redirect snippets", children: []*command{
			{name: "check", synopsis: "ask a company domain for its enrollment service, as a device does", api: true, flags: discoveryCheck,
				usage: "discovery check <domain> [--user someone@domain] [--model-family iPhone|iPad|Mac] [--expect-base-url URL] [--resolve host:port:addr:port] [--trust-ca ca.pem]"},
			{name: "snippet", synopsis: "print web-server snippets for the company domain's redirect", api: true, flags: discoverySnippet,
				usage: "discovery snippet nginx|apache|caddy|json [--domain D]"},
		}},
		{name: "push-cert", synopsis: "the APNs push certificate: csr, import, show", children: []*command{
			{name: "csr", synopsis: "create the certificate signing request for Apple's Push Certificates Portal", api: true, flags: with(pushCertFlags, pushCertCSR), usage: pushCertUsage},
			{name: "import", synopsis: "import the certificate Apple issued", api: true, flags: with(pushCertFlags, pushCertImport), usage: pushCertUsage},
			{name: "show", synopsis: "show the current certificate", api: true, flags: with(pushCertFlags, pushCertShow), usage: pushCertUsage},
		}},
		{name: "device", synopsis: "enrolled devices: list, show, command, commands, push, unenroll", children: []*command{
			{name: "list", synopsis: "list devices", api: true, flags: with(deviceFlags, deviceList), usage: deviceUsage},
			{name: "show", synopsis: "show one device", api: true, flags: with(deviceFlags, deviceShow), usage: deviceUsage},
			{name: "command", synopsis: "queue an MDM command", api: true, flags: with(deviceFlags, deviceCommand), usage: deviceUsage},
			{name: "commands", synopsis: "a device's command history", api: true, flags: with(deviceFlags, deviceCommands), usage: deviceUsage},
			{name: "push", synopsis: "wake a device with a push notification", api: true, flags: with(deviceFlags, devicePush), usage: deviceUsage},
			{name: "unenroll", synopsis: "remove the enrollment from a device", api: true, flags: with(deviceFlags, deviceUnenroll), usage: deviceUsage},
		}},
		abmCommand(),
		{name: "audit", synopsis: "show the audit log of admin changes", api: true, flags: runAudit,
			usage: "audit [--actor A] [--action A] [--target T] [--limit N]"},
		{name: "store", synopsis: "move a deployment between SQLite and PostgreSQL: migrate", children: []*command{
			{name: "migrate", synopsis: "copy every record from one database to another (empty) one", flags: storeMigrate, usage: storeMigrateUsage},
		}},
		{name: "sim", synopsis: "a simulated iPhone, iPad or Mac: enroll (checks a deployment from the outside)", children: []*command{
			{name: "enroll", synopsis: "enroll one simulated device against a deployment, step by step", flags: simEnroll,
				usage: "sim enroll --user someone@company.example [--server https://mdm.example.com] [--password-stdin | --password P] [--totp-secret KEY] [--model-family iPhone|iPad|Mac] [--poll 30s] [--managed-devices-only abm-cert.pem]\n" +
					"       pomona sim run --domain company.example --devices N [--server URL] [--families iPhone,iPad,Mac] [--apns-listen 127.0.0.1:2197] [--duration 10m]"},
			{name: "run", synopsis: "a fleet of simulated devices against a deployment", api: true, flags: simRun,
				usage: "sim run --domain company.example --devices N [--families iPhone,iPad,Mac] [--apns-listen 127.0.0.1:2197] [--state ./pomona-sim] [--duration 0]"},
		}},
		{name: "bench", synopsis: "load benchmark: simulated devices against a server it starts on loopback", flags: runBench,
			usage: "bench [--devices 300] [--seed N] [--checkins 10] [--commands 2] [--concurrency 8] [--store sqlite|postgres --db URL] [--in-process | --server https://127.0.0.1:PORT --api-key K [--server-pid PID]] [--json]"},
		// The operator's commands for installing and keeping a server.
		{name: "version", synopsis: "print the version and build information (also --version)", flags: runVersion,
			usage: "version [--json]"},
		{name: "healthcheck", synopsis: "exit 0 when the local server answers /readyz (for container health checks)", flags: runHealthcheck,
			usage: "healthcheck [--listen ADDR] [--tls auto|acme|off] [--path /readyz]"},
		{name: "backup", synopsis: "copy the SQLite store of a running server: backup --to FILE", flags: runBackup,
			usage: "backup --to FILE [--data DIR | --db sqlite://PATH]"},
		{name: "restore", synopsis: "put a backup into a data directory: restore --from FILE --data DIR", flags: runRestore,
			usage: "restore --from FILE --data DIR [--force]"},
	}
}
