package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// authHandler answers nginx's auth_http requests (request headers
// Auth-User, Auth-Pass, Auth-Protocol, Auth-Login-Attempt, Client-IP, ...)
// by sending every user to server:port.
func authHandler(server string, port int) http.Handler {
	p := strconv.Itoa(port)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Auth-Status", "OK")
		h.Set("Auth-Server", server)
		h.Set("Auth-Port", p)
		w.WriteHeader(http.StatusOK)
	})
}

// authServer is a running auth_http responder.
type authServer struct {
	Addr string
	srv  *http.Server
	done chan struct{}
}

// startAuthHTTP listens on listen (a 127.0.0.1 address) and serves
// authHandler until Close.
func startAuthHTTP(listen, server string, port int) (*authServer, error) {
	if err := loopbackOnly(listen); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, err
	}
	a := &authServer{
		Addr: ln.Addr().String(),
		srv: &http.Server{
			Handler:           authHandler(server, port),
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      10 * time.Second,
			IdleTimeout:       10 * time.Second,
		},
		done: make(chan struct{}),
	}
	go func() {
		defer close(a.done)
		a.srv.Serve(ln)
	}()
	return a, nil
}

// Close stops the responder.
func (a *authServer) Close() {
	a.srv.Close()
	<-a.done
}

func loopbackOnly(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if host != "127.0.0.1" {
		return fmt.Errorf("%s: only 127.0.0.1 addresses are used", addr)
	}
	return nil
}

// authHTTPMain is `imapedge-bench authhttp`.
func authHTTPMain(args []string) error {
	fs := flag.NewFlagSet("authhttp", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on (127.0.0.1 only)")
	server := fs.String("server", "127.0.0.1", "Auth-Server: the IMAP backend's address")
	port := fs.Int("port", 0, "Auth-Port: the IMAP backend's port")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *port <= 0 || *port > 65535 {
		return errors.New("authhttp: -port is required")
	}
	if net.ParseIP(*server) == nil {
		return fmt.Errorf("authhttp: -server must be an IP address (nginx wants one), got %q", *server)
	}
	a, err := startAuthHTTP(*listen, *server, *port)
	if err != nil {
		return err
	}
	fmt.Printf("auth_http responder listening on http://%s/auth, answering Auth-Server %s Auth-Port %d\n", a.Addr, *server, *port)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	a.Close()
	return nil
}
