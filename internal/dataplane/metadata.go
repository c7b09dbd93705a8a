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
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler:           guestMetadataHandler(a.cfg.MetadataHandler, routerID),
	}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Warn("metadata proxy stopped", "router", routerID, "err", err)
		}
	}()
	a.metadata[rns] = &metadataServer{srv: srv, ino: ino}
	return nil
}

// metadataWorkTimeout bounds the lookups behind one guest's request.
const metadataWorkTimeout = 10 * time.Second

// guestMetadataHandler passes a guest's request to h with the guest's
// address and the router as headers (the guest's own are replaced: they
// are not trusted). The work runs on its own deadline, not on the
// connection: a client that half-closes its side once the request is
// sent (busybox nc does, as the guest image's agent uses it) makes Go's
// server cancel the request's context at once, and the lookups behind
// the answer would fail whenever they take longer than that race.
func guestMetadataHandler(h http.Handler, routerID string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		r.Header.Set("X-Forwarded-For", host)
		r.Header.Set(MetadataRouterHeader, routerID)
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), metadataWorkTimeout)
		defer cancel()
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}
