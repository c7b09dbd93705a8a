package main

import (
	"fmt"
	"strconv"

	"github.com/nimbus-cloud/nimbus/internal/objectstore/ring"
	"github.com/spf13/cobra"
)

// ringCmd is `nimbus ring`, the object storage ring builder, with
// swift-ring-builder's verbs and device syntax.
func ringCmd() *cobra.Command {
	r := &cobra.Command{Use: "ring", Short: "Build object storage rings (account, container, object)"}
	// run adapts a ring.Cmd* function: it prints what the function says.
	run := func(f func(args []string) (string, error)) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			out, err := f(args)
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), out)
			return nil
		}
	}
	ints := func(args []string) ([]int, error) {
		out := make([]int, len(args))
		for i, a := range args {
			n, err := strconv.Atoi(a)
			if err != nil {
				return nil, fmt.Errorf("%q is not a whole number", a)
			}
			out[i] = n
		}
		return out, nil
	}
	weight := func(s string) (float64, error) {
		w, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return 0, fmt.Errorf("weight %q is not a number", s)
		}
		return w, nil
	}
	r.AddCommand(
		&cobra.Command{Use: "create BUILDER PART_POWER REPLICAS MIN_PART_HOURS", Short: "Create a new builder file",
			Args: cobra.ExactArgs(4), RunE: run(func(a []string) (string, error) {
				n, err := ints(a[1:])
				if err != nil {
					return "", err
				}
				return ring.CmdCreate(a[0], n[0], n[1], n[2])
			})},
		&cobra.Command{Use: "add BUILDER r<region>z<zone>-<ip>:<port>/<device>[_<meta>] WEIGHT", Short: "Add a device",
			Args: cobra.ExactArgs(3), RunE: run(func(a []string) (string, error) {
				w, err := weight(a[2])
				if err != nil {
					return "", err
				}
				return ring.CmdAdd(a[0], a[1], w)
			})},
		&cobra.Command{Use: "remove BUILDER SEARCH", Short: "Remove the devices matching d<id>r<region>z<zone>-<ip>:<port>/<device>",
			Args: cobra.ExactArgs(2), RunE: run(func(a []string) (string, error) { return ring.CmdRemove(a[0], a[1]) })},
		&cobra.Command{Use: "set-weight BUILDER SEARCH WEIGHT", Short: "Set the weight of the matching devices",
			Args: cobra.ExactArgs(3), RunE: run(func(a []string) (string, error) {
				w, err := weight(a[2])
				if err != nil {
					return "", err
				}
				return ring.CmdSetWeight(a[0], a[1], w)
			})},
		&cobra.Command{Use: "rebalance BUILDER [RING]", Short: "Reassign partitions and write the ring (BUILDER minus .builder plus .ring.gz)",
			Args: cobra.RangeArgs(1, 2), RunE: run(func(a []string) (string, error) {
				out := ""
				if len(a) == 2 {
					out = a[1]
				}
				return ring.CmdRebalance(a[0], out)
			})},
		&cobra.Command{Use: "show BUILDER", Short: "Show the builder's devices, partitions and balance",
			Args: cobra.ExactArgs(1), RunE: run(func(a []string) (string, error) { return ring.CmdShow(a[0]) })},
	)
	return r
}
