package dataplane

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"
)

// metadataServer serves Config.MetadataHandler on a socket inside one router
// namespace; the router's nftables redirect guests' 169.254.169.254:80 to it.
type metadataServer struct {
	srv *http.Server
	ino uint64 // the namespace the socket lives in; a recreated one differs
}

func (s *metadataServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}

// MetadataRouterHeader carries the router a metadata request came through;
// with X-Forwarded-For (the guest's fixed IP) it identifies the instance.
const MetadataRouterHeader = "X-Nimbus-Router-ID"

func (a *Agent) ensureMetadata(_ context.Context, rns, routerID string) error {
	if a.cfg.MetadataHandler == nil {
		return nil
	}
	ino, err := netnsInode(rns)
	if err != nil {
		return err
	}
	if s := a.metadata[rns]; s != nil {
		if s.ino == ino {
			return nil
		}
		// Someone recreated the namespace: the old socket is in the old one.
		s.close()
		delete(a.metadata, rns)
	}
	l, err := ListenInNetns(rns, "tcp", net.JoinHostPort("0.0.0.0", strconv.Itoa(a.cfg.MetadataPort)))
	if err != nil {
		return err
	}
	h := a.cfg.MetadataHandler
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Headers from the guest are not trusted: replace them.
			host, _, _ := net.SplitHostPort(r.RemoteAddr)
			r.Header.Set("X-Forwarded-For", host)
			r.Header.Set(MetadataRouterHeader, routerID)
			h.ServeHTTP(w, r)
		}),
	}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Warn("metadata proxy stopped", "router", routerID, "err", err)
		}
	}()
	a.metadata[rns] = &metadataServer{srv: srv, ino: ino}
	return nil
}
