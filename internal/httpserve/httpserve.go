// Package httpserve serves a process's Prometheus /metrics, its health
// (/healthz: the process is up; /readyz: it can do its work) and, when
// asked for, Go's /debug/pprof/ on one address, for the edge agent and
// the cloud manager.
package httpserve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Route is a handler served beside /metrics.
type Route struct {
	Pattern string
	Handler http.Handler
}

// Server is a running metrics endpoint.
type Server struct {
	srv *http.Server
	ln  net.Listener
	wg  sync.WaitGroup
}

// Start listens on addr and serves reg's metrics on /metrics and, with
// profiles, Go's profiles on /debug/pprof/. Profiles show the process's
// memory (credentials included) and let anyone who can reach them load
// its CPU: they are served on a loopback address only, and refused on any
// other.
//
// /healthz answers 200 while the process serves HTTP at all; /readyz
// answers 200 when ready returns nil and 503 with its reason otherwise
// (each reason on a line), as Kubernetes' probes and load balancers read
// them.
//
// routes adds handlers by pattern (the cloud's dashboard).
func Start(addr string, reg *prometheus.Registry, profiles bool, ready func() error, log *slog.Logger, routes ...Route) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	for _, r := range routes {
		mux.Handle(r.Pattern, r.Handler)
	}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		var err error
		if ready != nil {
			err = ready()
		}
		if err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "not ready: "+err.Error()+"\n")
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	if profiles {
		if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
			_ = ln.Close()
			return nil, fmt.Errorf("metrics: profiles are served on a loopback address only, not on %s", addr)
		}
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	s := &Server{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "error", err)
		}
	}()
	return s, nil
}

// Addr is the address it listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops it, waiting up to 2 s for requests in progress.
func (s *Server) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	s.wg.Wait()
}
