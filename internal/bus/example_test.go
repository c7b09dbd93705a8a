package bus_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nimbus-cloud/nimbus/internal/bus"
)

type hostRequest struct{ FlavorID string }
type hostReply struct{ Host string }

// A scheduler answers calls; the API calls it with the request id of the
// HTTP request it is serving.
func Example() {
	quiet := slog.New(slog.DiscardHandler)
	srv, err := bus.StartServer(bus.ServerConfig{Logger: quiet})
	if err != nil {
		panic(err)
	}
	defer srv.Shutdown()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := bus.Connect(ctx, bus.Config{URL: srv.ClientURL(), Name: "example", Logger: quiet})
	if err != nil {
		panic(err)
	}
	defer b.Close()

	_, err = bus.Handle(b, "scheduler.select_host", "scheduler",
		func(ctx context.Context, req hostRequest) (hostReply, error) {
			if req.FlavorID == "" {
				return hostReply{}, &bus.RemoteError{Code: "bad_flavor", Message: "flavor required"}
			}
			return hostReply{Host: "compute-1"}, nil
		})
	if err != nil {
		panic(err)
	}

	ctx = bus.WithRequestID(ctx, bus.NewRequestID())
	reply, err := bus.Call[hostRequest, hostReply](ctx, b, "scheduler.select_host", hostRequest{FlavorID: "m1.small"})
	fmt.Println(reply.Host, err)

	_, err = bus.Call[hostRequest, hostReply](ctx, b, "scheduler.select_host", hostRequest{})
	var re *bus.RemoteError
	if errors.As(err, &re) {
		fmt.Println(re.Code)
	}
	// Output:
	// compute-1 <nil>
	// bad_flavor
}
