package compute

import (
	"slices"
	"testing"
)

// TestStatusVMStates checks the SQL narrowing of the status filter
// against status itself: every (vm_state, task_state) pair whose status
// is S must have its vm_state among statusVMStates[S], or a list filtered
// by S would miss servers.
func TestStatusVMStates(t *testing.T) {
	vms := []string{vmActive, vmBuilding, vmPaused, vmSuspended, vmStopped, vmResized, vmError, vmDeleted, vmRescued,
		vmShelvedOffloaded, "soft-delete", "shelved", "bogus"}
	tasks := []string{"", taskScheduling, taskSpawning, taskDeleting, taskRebooting, taskRebootingHard, taskPowerOff, taskPowerOn,
		taskPausing, taskUnpausing, taskSuspending, taskResuming, taskRebuilding, taskResizePrep, taskResizeFinish,
		taskResizeReverting, taskResizeConfirming, taskSnapshot, taskShelving, taskUnshelving, taskRescuing, taskUnrescuing,
		taskBackup, "reboot_pending", "reboot_started", "reboot_pending_hard", "reboot_started_hard",
		"rebuild_block_device_mapping", "rebuild_spawning", "resize_migrating", "resize_migrated", "migrating", "updating_password"}
	for _, vm := range vms {
		for _, task := range tasks {
			st := status(vm, task)
			if !knownStatuses[st] {
				t.Fatalf("status(%q, %q) = %q, not a known status", vm, task, st)
			}
			if st == "UNKNOWN" {
				if vmStatesOf([]string{st}) != nil {
					t.Fatalf("UNKNOWN narrowed to %v", vmStatesOf([]string{st}))
				}
				continue
			}
			if !slices.Contains(vmStatesOf([]string{st}), vm) {
				t.Fatalf("status(%q, %q) = %s, but statusVMStates[%s] = %v", vm, task, st, st, statusVMStates[st])
			}
		}
	}
	for st := range knownStatuses {
		if _, ok := statusVMStates[st]; !ok && st != "UNKNOWN" {
			t.Fatalf("status %s cannot be narrowed", st)
		}
	}
}
