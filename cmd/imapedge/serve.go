package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/imapedge/imapedge/cmd/imapedge/config"
	"github.com/imapedge/imapedge/policy"
	"github.com/imapedge/imapedge/proxy"
	"github.com/imapedge/imapedge/routing"
	"github.com/imapedge/imapedge/tlsconf"
)

// loadConfig reads and validates the config file, including that every
// file it names can be read.
func loadConfig(path string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if ps := cfg.CheckFiles(); len(ps) > 0 {
		return nil, &config.Errors{File: path, Problems: ps}
	}
	return cfg, nil
}

func cmdCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("check", stderr)
	path := fs.String("config", "proxy.yaml", "config `file` to check")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	// Certificates and backend TLS settings must load, too.
	if _, err := buildTLS(cfg); err != nil {
		return err
	}
	if _, err := buildBackends(cfg); err != nil {
		return err
	}
	for _, k := range cfg.NotEnforced() {
		fmt.Fprintf(stdout, "%s: %s: accepted, not enforced yet\n", *path, k)
	}
	fmt.Fprintf(stdout, "%s: ok\n", *path)
	return nil
}

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	path := fs.String("config", "proxy.yaml", "config `file`")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*path)
	if err != nil {
		return err
	}
	log, closeLog, err := buildLogger(cfg.Log, stdout, stderr)
	if err != nil {
		return err
	}
	defer closeLog()
	audit, closeAudit, err := buildAudit(cfg.Audit, stdout, stderr)
	if err != nil {
		return err
	}
	defer closeAudit()
	for _, k := range cfg.NotEnforced() {
		log.Warn("config key accepted but not enforced yet", zap.String("key", k))
	}
	rt, err := build(cfg, log)
	if err != nil {
		return err
	}
	rt.srv.SetAudit(audit)
	if err := rt.srv.Start(); err != nil {
		return err
	}
	defer rt.srv.Close()
	if cfg.Admin.Address != "" {
		stopAdmin, err := startAdmin(cfg.Admin.Address, rt.srv, log)
		if err != nil {
			return err
		}
		defer stopAdmin()
	}
	log.Info("imapedge started", zap.String("version", version), zap.String("config", *path))
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			log.Info("shutting down")
			return nil
		case <-hup:
			if err := rt.reload(*path, log); err != nil {
				log.Error("reload failed, keeping the running config", zap.Error(err))
			} else {
				log.Info("reloaded", zap.String("config", *path))
			}
		}
	}
}

// runtime is a wired proxy with what a reload needs.
type runtime struct {
	srv   *proxy.Server
	certs *tlsconf.Store
	table *routing.Table
}

// build turns a config into a ready (not yet listening) proxy.
func build(cfg *config.Config, log *zap.Logger) (*runtime, error) {
	certs, err := buildTLS(cfg)
	if err != nil {
		return nil, err
	}
	backends, err := buildBackends(cfg)
	if err != nil {
		return nil, err
	}
	table, err := routing.NewTable(backends, buildRoutes(cfg), cfg.Routing.DefaultPool)
	if err != nil {
		return nil, err
	}
	pol := buildPolicy(cfg)
	var ls []proxy.Listener
	for _, l := range cfg.Listeners {
		ls = append(ls, proxy.Listener{Name: l.Name, Address: l.Address, TLS: string(l.TLS), Compress: string(l.Compress)})
	}
	srv, err := proxy.New(proxy.Options{
		Listeners:        ls,
		Certs:            certs,
		HandshakeTimeout: cfg.TLS.HandshakeTimeout,
		Routes:           table,
		Policy:           pol,
		Log:              log,
	})
	if err != nil {
		return nil, err
	}
	return &runtime{srv: srv, certs: certs, table: table}, nil
}

// reload re-reads the config: certificates, backends and routes change
// without touching running sessions. Listener and policy changes need a
// restart for now.
func (rt *runtime) reload(path string, log *zap.Logger) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	if rt.certs != nil {
		if err := rt.certs.Reload(); err != nil {
			return err
		}
	}
	backends, err := buildBackends(cfg)
	if err != nil {
		return err
	}
	return rt.table.Replace(backends, buildRoutes(cfg), cfg.Routing.DefaultPool)
}

func buildTLS(cfg *config.Config) (*tlsconf.Store, error) {
	if len(cfg.TLS.Certificates) == 0 {
		return nil, nil
	}
	var files []tlsconf.CertFile
	for _, c := range cfg.TLS.Certificates {
		files = append(files, tlsconf.CertFile{CertFile: c.CertFile, KeyFile: c.KeyFile})
	}
	return tlsconf.NewStore(files, cfg.TLS.MinTLSVersion())
}

func buildBackends(cfg *config.Config) ([]*routing.Backend, error) {
	var out []*routing.Backend
	for _, b := range cfg.Backends {
		rb := &routing.Backend{
			Name:                b.Name,
			Address:             b.Address,
			TLS:                 routing.TLSMode(b.TLS),
			Pool:                b.Pool,
			Weight:              b.Weight,
			ConnectTimeout:      b.ConnectTimeout,
			LoginTimeout:        b.LoginTimeout,
			AllowPlaintextLogin: b.AllowPlaintextLogin,
			ForwardClient:       string(b.ForwardClient),
		}
		if rb.TLS != routing.TLSNone {
			tc, err := tlsconf.ClientConfig(tlsconf.Client{
				CAFile:             b.CAFile,
				ServerName:         b.ServerName,
				InsecureSkipVerify: b.InsecureSkipVerify,
				ClientCertFile:     b.ClientCertFile,
				ClientKeyFile:      b.ClientKeyFile,
			}, b.Address)
			if err != nil {
				return nil, fmt.Errorf("backend %q: %w", b.Name, err)
			}
			rb.TLSConfig = tc
		}
		out = append(out, rb)
	}
	return out, nil
}

func buildRoutes(cfg *config.Config) []routing.Route {
	var out []routing.Route
	for _, r := range cfg.Routing.Routes {
		out = append(out, routing.Route{User: r.User, Domain: r.Domain, Backend: r.Backend, Pool: r.Pool})
	}
	return out
}

func buildPolicy(cfg *config.Config) *policy.Policy {
	p := policy.Default()
	p.PlaintextAuthNetworks = cfg.Policy.PlaintextAuthNetworks
	p.Preauth = policy.Preauth{
		Timeout:        cfg.Policy.Preauth.Timeout,
		MaxLine:        int(cfg.Policy.Preauth.MaxLine),
		MaxLiteral:     int(cfg.Policy.Preauth.MaxLiteral),
		MaxBadCommands: cfg.Policy.Preauth.MaxBadCommands,
	}
	p.IdleTimeout = cfg.Policy.IdleTimeout
	p.FailureMaxDelay = cfg.Policy.AuthFailures.MaxDelay
	if p.FailureMaxDelay < p.FailureBaseDelay {
		p.FailureBaseDelay = p.FailureMaxDelay
	}
	return p
}

// flushOnly is a log file for zapcore.BufferedWriteSyncer: its
// once-a-second flush writes the buffered lines but does not fsync(2)
// the file, which on a busy disk can stall for far longer than a second
// (nginx and Dovecot do not fsync their logs either). The file is synced
// once when the log is closed.
type flushOnly struct{ f *os.File }

func (w flushOnly) Write(p []byte) (int, error) { return w.f.Write(p) }
func (flushOnly) Sync() error                   { return nil }

// buildAudit makes the audit event stream: flat JSON objects, one per
// line, never sampled, flushed at least once a second and on exit. It
// returns a nil logger when audit.commands is false.
func buildAudit(ac config.Audit, stdout, stderr io.Writer) (*zap.Logger, func(), error) {
	if !ac.Commands {
		return nil, func() {}, nil
	}
	var ws zapcore.WriteSyncer
	closeFile := func() {}
	switch ac.Output {
	case "", "stdout":
		ws = zapcore.AddSync(stdout)
	case "stderr":
		ws = zapcore.AddSync(stderr)
	default:
		f, err := os.OpenFile(ac.Output, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, nil, fmt.Errorf("audit.output: %w", err)
		}
		ws = flushOnly{f}
		closeFile = func() { f.Sync(); f.Close() }
	}
	buf := &zapcore.BufferedWriteSyncer{WS: ws, Size: 256 << 10, FlushInterval: time.Second}
	enc := newFastJSON(auditEncoderConfig(), &nanoCache)
	log := zap.New(zapcore.NewCore(enc, buf, zapcore.DebugLevel), zap.ErrorOutput(zapcore.AddSync(stderr)))
	return log, func() { buf.Stop(); closeFile() }, nil
}

// logEncoderConfig is the operational log's format: zap's production
// keys, ISO 8601 times in milliseconds.
func logEncoderConfig() zapcore.EncoderConfig {
	c := zap.NewProductionEncoderConfig()
	c.TimeKey = "ts"
	c.EncodeTime = iso8601Encoder
	return c
}

// auditEncoderConfig is the audit stream's format: no level or message
// key (the event field says what happened), RFC 3339 times with
// nanoseconds.
func auditEncoderConfig() zapcore.EncoderConfig {
	return zapcore.EncoderConfig{
		TimeKey:        "ts",
		EncodeTime:     rfc3339NanoEncoder,
		EncodeDuration: zapcore.MillisDurationEncoder,
		LineEnding:     zapcore.DefaultLineEnding,
	}
}

// startAdmin serves /metrics, /healthz and /readyz on address.
func startAdmin(address string, srv *proxy.Server, log *zap.Logger) (func(), error) {
	ln, err := net.Listen("tcp", address)
	if err != nil {
		return nil, fmt.Errorf("admin.address: %w", err)
	}
	hs := &http.Server{Handler: srv.AdminHandler(), ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	log.Info("admin listening", zap.String("address", ln.Addr().String()))
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		hs.Shutdown(ctx)
	}, nil
}

// buildLogger makes the operational logger. Sampling is off: session
// lines must never be dropped.
func buildLogger(lc config.Log, stdout, stderr io.Writer) (*zap.Logger, func(), error) {
	var level zapcore.Level
	if err := level.UnmarshalText([]byte(lc.Level)); err != nil {
		return nil, nil, err
	}
	encCfg := logEncoderConfig()
	var enc zapcore.Encoder
	if lc.Format == "console" {
		encCfg.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	} else {
		enc = newFastJSON(encCfg, &isoCache)
	}
	var ws zapcore.WriteSyncer
	closeFn := func() {}
	switch lc.Output {
	case "", "stderr":
		ws = zapcore.AddSync(stderr)
	case "stdout":
		ws = zapcore.AddSync(stdout)
	default:
		f, err := os.OpenFile(lc.Output, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, nil, fmt.Errorf("log.output: %w", err)
		}
		ws = flushOnly{f}
		closeFn = func() { f.Sync(); f.Close() }
	}
	// Buffered: a busy edge logs two or three lines per session, and a
	// write(2) each is measurable per login. Flushed every second, when
	// the buffer fills, and on exit.
	buf := &zapcore.BufferedWriteSyncer{WS: ws, Size: 64 << 10, FlushInterval: time.Second}
	log := zap.New(zapcore.NewCore(enc, buf, level), zap.ErrorOutput(zapcore.AddSync(stderr)))
	return log, func() { log.Sync(); buf.Stop(); closeFn() }, nil
}
