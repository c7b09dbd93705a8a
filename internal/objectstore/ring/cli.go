package ring

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

// The Cmd functions implement `nimbus ring <verb>`: each loads the builder
// file, applies one change, saves it atomically and returns text for the
// operator in the spirit of swift-ring-builder, so the cobra wiring stays a
// thin shell and the behaviour is testable here.

// RingPathFor names the ring file that goes with a builder file, Swift's
// convention: object.builder → object.ring.gz.
func RingPathFor(builderPath string) string {
	return strings.TrimSuffix(builderPath, ".builder") + ".ring.gz"
}

// CmdCreate makes a new, empty builder file. It refuses to overwrite one,
// because a lost builder means rebuilding the ring and moving nearly all data.
func CmdCreate(builderPath string, partPower, replicas, minPartHours int) (string, error) {
	if _, err := os.Stat(builderPath); err == nil {
		return "", fmt.Errorf("create %s: builder file already exists", builderPath)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("create %s: %w", builderPath, err)
	}
	b, err := NewBuilder(partPower, replicas, minPartHours)
	if err != nil {
		return "", fmt.Errorf("create %s: %w", builderPath, err)
	}
	if err := b.Save(builderPath); err != nil {
		return "", err
	}
	return fmt.Sprintf("Created %s: %d partitions (part power %d), %d replicas, min_part_hours %d\n",
		builderPath, b.Partitions(), partPower, replicas, minPartHours), nil
}

// CmdAdd adds a device given in swift-ring-builder's syntax,
// "r1z1-10.0.0.1:6200/sdb1[_meta]", with a weight.
func CmdAdd(builderPath, spec string, weight float64) (string, error) {
	d, err := ParseDeviceSpec(spec)
	if err != nil {
		return "", err
	}
	d.Weight = weight
	var out string
	err = modify(builderPath, func(b *Builder) error {
		id, err := b.AddDevice(d)
		if err != nil {
			return err
		}
		d.ID = id
		out = fmt.Sprintf("Device %s with %.2f weight got id %d\n", d, weight, id)
		return nil
	})
	return out, err
}

// CmdRemove marks every device matching a search value
// (d<id>r<region>z<zone>-<ip>:<port>/<device>_<meta>, parts optional) for
// removal at the next rebalance.
func CmdRemove(builderPath, searchValue string) (string, error) {
	var out strings.Builder
	err := modify(builderPath, func(b *Builder) error {
		ids, err := b.find(searchValue)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := b.RemoveDevice(id); err != nil {
				return err
			}
			fmt.Fprintf(&out, "Device %s marked for removal and will be removed next rebalance\n", b.devs[b.index(id)].Device)
		}
		return nil
	})
	return out.String(), err
}

// CmdSetWeight sets the weight of every device matching a search value;
// weight 0 drains them.
func CmdSetWeight(builderPath, searchValue string, weight float64) (string, error) {
	var out strings.Builder
	err := modify(builderPath, func(b *Builder) error {
		ids, err := b.find(searchValue)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := b.SetWeight(id, weight); err != nil {
				return err
			}
			fmt.Fprintf(&out, "Device %s weight set to %.2f\n", b.devs[b.index(id)].Device, weight)
		}
		return nil
	})
	return out.String(), err
}

// CmdSetMinPartHours changes the minimum hours between moves of a partition.
func CmdSetMinPartHours(builderPath string, hours int) (string, error) {
	err := modify(builderPath, func(b *Builder) error { return b.SetMinPartHours(hours) })
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("The minimum number of hours before a partition can be reassigned is now set to %d\n", hours), nil
}

// CmdPretendMinPartHoursPassed lets the next rebalance move any partition,
// for an operator who knows replication has finished.
func CmdPretendMinPartHoursPassed(builderPath string) (string, error) {
	err := modify(builderPath, func(b *Builder) error { b.PretendMinPartHoursPassed(); return nil })
	if err != nil {
		return "", err
	}
	return "All partitions may be reassigned at the next rebalance\n", nil
}

// CmdRebalance rebalances, saves the builder, then writes the ring file
// (RingPathFor(builderPath) when ringPath is empty). The builder is saved
// first: if writing the ring fails, rerunning writes the same ring, whereas
// a ring without its builder could not be reproduced.
func CmdRebalance(builderPath, ringPath string) (string, error) {
	if ringPath == "" {
		ringPath = RingPathFor(builderPath)
	}
	b, err := LoadBuilder(builderPath)
	if err != nil {
		return "", err
	}
	res, err := b.Rebalance()
	if err != nil {
		return "", fmt.Errorf("rebalance %s: %w", builderPath, err)
	}
	if err := b.Save(builderPath); err != nil {
		return "", err
	}
	if err := b.WriteRing(ringPath); err != nil {
		return "", err
	}
	var out strings.Builder
	if res.Moved == 0 && res.Removed == 0 {
		fmt.Fprintf(&out, "No partitions could be reassigned. Either none need to be or none can be due to min_part_hours [%d].\n", b.minPartHours)
	} else {
		fmt.Fprintf(&out, "Reassigned %d (%.2f%%) partition replicas. Balance is now %.2f. Dispersion is now %.2f.\n",
			res.Moved, 100*float64(res.Moved)/float64(res.Total), res.Balance, res.Dispersion)
	}
	if res.Removed > 0 {
		fmt.Fprintf(&out, "Removed %d devices.\n", res.Removed)
	}
	if res.Pending > 0 {
		fmt.Fprintf(&out, "%d partition replicas could not move yet; rebalance again in %s (min_part_hours %d).\n",
			res.Pending, fmtDuration(b.MinPartHoursRemaining()), b.minPartHours)
	}
	fmt.Fprintf(&out, "Wrote %s (build version %d).\n", ringPath, b.buildVersion)
	return out.String(), nil
}

// CmdShow describes the builder: parameters, balance, dispersion and a
// device table with each device's partitions and balance.
func CmdShow(builderPath string) (string, error) {
	b, err := LoadBuilder(builderPath)
	if err != nil {
		return "", err
	}
	return b.describe(filepath.Base(builderPath)), nil
}

func (b *Builder) describe(name string) string {
	var out strings.Builder
	regions, zones := map[int]bool{}, map[[2]int]bool{}
	live := 0
	for _, d := range b.devs {
		if d.Removed {
			continue
		}
		live++
		regions[d.Region] = true
		zones[[2]int{d.Region, d.Zone}] = true
	}
	fmt.Fprintf(&out, "%s, build version %d\n", name, b.buildVersion)
	fmt.Fprintf(&out, "%d partitions, %d replicas, %d regions, %d zones, %d devices, %.2f balance, %.2f dispersion\n",
		b.Partitions(), b.replicas, len(regions), len(zones), live, b.Balance(), b.Dispersion())
	fmt.Fprintf(&out, "The minimum number of hours before a partition can be reassigned is %d (%s remaining)\n",
		b.minPartHours, fmtDuration(b.MinPartHoursRemaining()))
	if b.lastRebal.IsZero() {
		out.WriteString("Never rebalanced\n")
	} else {
		fmt.Fprintf(&out, "Last rebalance %s\n", b.lastRebal.UTC().Format(time.RFC3339))
	}
	out.WriteString("Devices:\n")
	tw := tabwriter.NewWriter(&out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "id\tregion\tzone\tip address:port\tname\tweight\tpartitions\tbalance\tflags\tmeta\t")
	counts, ideal := b.partCounts(), b.weightIdeal()
	for _, d := range b.devs {
		flags := ""
		if d.Removed {
			flags = "DEL"
		}
		fmt.Fprintf(tw, "%d\t%d\t%d\t%s\t%s\t%.2f\t%d\t%.2f\t%s\t%s\t\n", d.ID, d.Region, d.Zone, d.Host(), d.Name,
			d.Weight, counts[d.ID], deviceBalance(counts[d.ID], ideal[d.ID]), flags, d.Meta)
	}
	tw.Flush()
	// tabwriter pads the last cells; trailing blanks only upset diffs.
	lines := strings.Split(out.String(), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(lines, "\n")
}

// modify loads a builder, applies fn and saves it only if fn succeeded, so
// a rejected change leaves the file untouched.
func modify(builderPath string, fn func(*Builder) error) error {
	b, err := LoadBuilder(builderPath)
	if err != nil {
		return err
	}
	if err := fn(b); err != nil {
		return fmt.Errorf("%s: %w", builderPath, err)
	}
	return b.Save(builderPath)
}

func fmtDuration(d time.Duration) string {
	d = d.Round(time.Second)
	return fmt.Sprintf("%d:%02d:%02d", int(d.Hours()), int(d.Minutes())%60, int(d.Seconds())%60)
}
