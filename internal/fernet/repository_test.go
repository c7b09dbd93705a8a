package fernet

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

func setupRepo(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "fernet-keys")
	if err := Setup(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// repoFiles returns the key numbers in dir and each key's encoding.
func repoFiles(t *testing.T, dir string) ([]int, map[int]string) {
	t.Helper()
	indexes, err := listKeyIndexes(dir)
	if err != nil {
		t.Fatal(err)
	}
	contents := make(map[int]string)
	for _, i := range indexes {
		b, err := os.ReadFile(filepath.Join(dir, strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		contents[i] = string(b)
	}
	return indexes, contents
}

func mustLoad(t *testing.T, dir string) *KeySet {
	t.Helper()
	ks, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func mustRotate(t *testing.T, dir string, max int) {
	t.Helper()
	if err := Rotate(dir, max); err != nil {
		t.Fatal(err)
	}
}

func TestSetup(t *testing.T) {
	dir := setupRepo(t)
	indexes, contents := repoFiles(t, dir)
	if !slices.Equal(indexes, []int{0, 1}) {
		t.Fatalf("keys = %v, want [0 1]", indexes)
	}
	if contents[0] == contents[1] {
		t.Fatal("staged and primary keys are equal")
	}
	if runtime.GOOS != "windows" {
		info, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o700 {
			t.Errorf("dir mode = %v, want 0700", info.Mode().Perm())
		}
		for _, i := range indexes {
			info, err := os.Stat(filepath.Join(dir, strconv.Itoa(i)))
			if err != nil {
				t.Fatal(err)
			}
			if info.Mode().Perm() != 0o600 {
				t.Errorf("key %d mode = %v, want 0600", i, info.Mode().Perm())
			}
		}
	}
	for i, s := range contents {
		if len(s) != 44 {
			t.Errorf("key %d = %q, want 44 characters like Keystone", i, s)
		}
		if _, err := ParseKey(s); err != nil {
			t.Errorf("key %d: %v", i, err)
		}
	}

	// Idempotent: a second Setup changes nothing, even after rotations.
	if err := Setup(dir); err != nil {
		t.Fatal(err)
	}
	if _, again := repoFiles(t, dir); !mapsEqual(again, contents) {
		t.Fatal("second Setup rewrote keys")
	}
	mustRotate(t, dir, 3)
	mustRotate(t, dir, 3)
	indexes, contents = repoFiles(t, dir)
	if err := Setup(dir); err != nil {
		t.Fatal(err)
	}
	if again, c := repoFiles(t, dir); !slices.Equal(again, indexes) || !mapsEqual(c, contents) {
		t.Fatal("Setup on a rotated repository changed it")
	}
}

func mapsEqual(a, b map[int]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestRotateSequence pins Keystone's fernet_rotate semantics with
// max_active_keys = 3: {0,1} → {0,1,2} → {0,2,3} → {0,3,4}, the old staged
// key becoming the new primary each time.
func TestRotateSequence(t *testing.T) {
	dir := setupRepo(t)
	want := [][]int{{0, 1, 2}, {0, 2, 3}, {0, 3, 4}, {0, 4, 5}}
	for step, w := range want {
		_, before := repoFiles(t, dir)
		mustRotate(t, dir, DefaultMaxActiveKeys)
		indexes, after := repoFiles(t, dir)
		if !slices.Equal(indexes, w) {
			t.Fatalf("rotation %d: keys = %v, want %v", step+1, indexes, w)
		}
		primary := indexes[len(indexes)-1]
		if after[primary] != before[0] {
			t.Fatalf("rotation %d: primary %d is not the previous staged key", step+1, primary)
		}
		if after[0] == before[0] {
			t.Fatalf("rotation %d: staged key was not replaced", step+1)
		}
		for _, i := range indexes[1 : len(indexes)-1] {
			if after[i] != before[i] {
				t.Fatalf("rotation %d: secondary %d changed", step+1, i)
			}
		}
		ks := mustLoad(t, dir)
		if ks.PrimaryIndex != primary || ks.Primary.Encode() != after[primary] {
			t.Fatalf("rotation %d: Load primary = %d", step+1, ks.PrimaryIndex)
		}
	}
	if names, _ := os.ReadDir(dir); len(names) != 4 { // 0, 4, 5 and .lock
		t.Fatalf("leftover files: %v", names)
	}
}

func TestRotateLargerMax(t *testing.T) {
	dir := setupRepo(t)
	want := [][]int{{0, 1, 2}, {0, 1, 2, 3}, {0, 1, 2, 3, 4}, {0, 2, 3, 4, 5}, {0, 3, 4, 5, 6}}
	for step, w := range want {
		mustRotate(t, dir, 5)
		if indexes, _ := repoFiles(t, dir); !slices.Equal(indexes, w) {
			t.Fatalf("rotation %d: keys = %v, want %v", step+1, indexes, w)
		}
	}
	// Lowering max_active_keys prunes down on the next rotation.
	mustRotate(t, dir, 3)
	if indexes, _ := repoFiles(t, dir); !slices.Equal(indexes, []int{0, 6, 7}) {
		t.Fatalf("keys = %v, want [0 6 7]", indexes)
	}
}

func TestRotateRejects(t *testing.T) {
	dir := setupRepo(t)
	for _, max := range []int{-1, 0, 1, 2} {
		if err := Rotate(dir, max); err == nil {
			t.Errorf("Rotate(max %d) succeeded", max)
		}
	}
	empty := t.TempDir()
	if err := Rotate(empty, 3); !errors.Is(err, ErrNotSetUp) {
		t.Errorf("Rotate(empty) = %v, want ErrNotSetUp", err)
	}
	if err := Rotate(filepath.Join(empty, "missing"), 3); err == nil {
		t.Error("Rotate(missing dir) succeeded")
	}
	if indexes, _ := repoFiles(t, dir); !slices.Equal(indexes, []int{0, 1}) {
		t.Fatalf("rejected rotations changed keys: %v", indexes)
	}
}

// TestTokenLifetimeAcrossRotations works out what Keystone's semantics
// mean for a token with max_active_keys = 3. A token encrypted with
// primary key N stays valid while N is a secondary, i.e. through exactly
// one rotation, and becomes invalid on the second, when N is purged.
// A token from the staged key (issued by a node that rotated earlier) is
// valid immediately and survives two rotations.
func TestTokenLifetimeAcrossRotations(t *testing.T) {
	dir := setupRepo(t)
	now := time.Now()

	before := mustLoad(t, dir) // {0,1}: primary 1
	tok1, err := before.Encrypt([]byte("issued under key 1"), now)
	if err != nil {
		t.Fatal(err)
	}
	// A peer that already rotated encrypts with our staged key 0, which
	// becomes key 2.
	tokStaged, err := Encrypt(before.Keys[1], []byte("issued under staged key"), now)
	if err != nil {
		t.Fatal(err)
	}
	decrypts := func(ks *KeySet, tok string) bool {
		_, _, err := ks.Decrypt(tok, 0, now)
		if err != nil && err != ErrInvalidToken {
			t.Fatalf("unexpected error %v", err)
		}
		return err == nil
	}
	if !decrypts(before, tok1) || !decrypts(before, tokStaged) {
		t.Fatal("fresh tokens do not decrypt")
	}

	mustRotate(t, dir, 3) // {0,1,2}: key 1 is now a secondary
	after1 := mustLoad(t, dir)
	if !decrypts(after1, tok1) {
		t.Fatal("token from key 1 rejected after one rotation")
	}
	if !decrypts(after1, tokStaged) {
		t.Fatal("token from staged key rejected after it became primary")
	}
	tok2, err := after1.Encrypt([]byte("issued under key 2"), now)
	if err != nil {
		t.Fatal(err)
	}

	mustRotate(t, dir, 3) // {0,2,3}: key 1 purged
	after2 := mustLoad(t, dir)
	if decrypts(after2, tok1) {
		t.Fatal("token from key 1 still accepted after two rotations")
	}
	if !decrypts(after2, tokStaged) || !decrypts(after2, tok2) {
		t.Fatal("token from key 2 rejected while key 2 is a secondary")
	}

	mustRotate(t, dir, 3) // {0,3,4}: key 2 purged
	after3 := mustLoad(t, dir)
	if decrypts(after3, tokStaged) || decrypts(after3, tok2) {
		t.Fatal("token from key 2 still accepted after it was purged")
	}
}

func TestLoadOrder(t *testing.T) {
	dir := setupRepo(t)
	for range 3 {
		mustRotate(t, dir, 5)
	}
	// {0,1,2,3,4}: primary 4, staged 0, secondaries 3, 2, 1.
	_, contents := repoFiles(t, dir)
	ks := mustLoad(t, dir)
	var got []string
	for _, k := range ks.Keys {
		got = append(got, k.Encode())
	}
	want := []string{contents[4], contents[0], contents[3], contents[2], contents[1]}
	if !slices.Equal(got, want) {
		t.Fatal("Keys not ordered primary, staged, secondaries newest first")
	}
	if ks.PrimaryIndex != 4 || ks.Primary != ks.Keys[0] {
		t.Fatalf("primary = %d", ks.PrimaryIndex)
	}
}

func TestLoadIgnoresOtherFiles(t *testing.T) {
	dir := setupRepo(t)
	for _, name := range []string{"01", "-1", "+2", "README", ".tmp-key-123", "1.bak"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("junk"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "7"), 0o700); err != nil {
		t.Fatal(err)
	}
	ks := mustLoad(t, dir)
	if ks.PrimaryIndex != 1 || len(ks.Keys) != 2 {
		t.Fatalf("primary %d, %d keys", ks.PrimaryIndex, len(ks.Keys))
	}
	// Rotation cleans up temp files left by a crashed writer only.
	mustRotate(t, dir, 3)
	if _, err := os.Stat(filepath.Join(dir, ".tmp-key-123")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("stale temp file survived rotation")
	}
	if _, err := os.Stat(filepath.Join(dir, "README")); err != nil {
		t.Error("rotation removed an unrelated file")
	}
}

func TestLoadSymlinkedKeys(t *testing.T) {
	// Kubernetes secret volumes present keys as symlinks into ..data/.
	src := setupRepo(t)
	dir := filepath.Join(t.TempDir(), "mounted")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"0", "1"} {
		if err := os.Symlink(filepath.Join(src, name), filepath.Join(dir, name)); err != nil {
			t.Skipf("symlinks unsupported: %v", err)
		}
	}
	if ks := mustLoad(t, dir); ks.PrimaryIndex != 1 {
		t.Fatalf("primary = %d", ks.PrimaryIndex)
	}
}

func TestLoadNotSetUp(t *testing.T) {
	write := func(dir string, index int) {
		k := mustGenerate(t)
		if err := writeKeyFile(dir, index, k); err != nil {
			t.Fatal(err)
		}
	}
	empty := t.TempDir()
	onlyStaged := t.TempDir()
	write(onlyStaged, 0)
	onlyPrimary := t.TempDir()
	write(onlyPrimary, 1)
	write(onlyPrimary, 2)
	for name, dir := range map[string]string{"empty": empty, "only staged": onlyStaged, "no staged": onlyPrimary} {
		if _, err := Load(dir); !errors.Is(err, ErrNotSetUp) {
			t.Errorf("%s: err = %v, want ErrNotSetUp", name, err)
		}
	}
	if _, err := Load(filepath.Join(empty, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing dir: err = %v", err)
	}
}

func TestLoadRejectsBadKeyFile(t *testing.T) {
	dir := setupRepo(t)
	if err := os.WriteFile(filepath.Join(dir, "5"), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil {
		t.Fatal("Load accepted a corrupt key file")
	}
}

func TestLoadRejectsInsecurePermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits on windows")
	}
	for _, tc := range []struct {
		name string
		path string // relative to the repository
		mode fs.FileMode
	}{
		{"world-readable key", "1", 0o644},
		{"group-readable staged key", "0", 0o640},
		{"group-writable key", "1", 0o620},
		{"world-writable dir", ".", 0o777},
		{"group-writable dir", ".", 0o770},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := setupRepo(t)
			path := filepath.Join(dir, tc.path)
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			_, err := Load(dir)
			var perr *PermissionError
			if !errors.As(err, &perr) || !errors.Is(err, ErrInsecurePermissions) {
				t.Fatalf("err = %v, want *PermissionError", err)
			}
			if filepath.Clean(perr.Path) != filepath.Clean(path) || perr.Mode.Perm() != tc.mode {
				t.Fatalf("PermissionError = %+v", perr)
			}
		})
	}
	// A world-readable (but not writable) directory is fine: the key
	// files themselves are 0600.
	dir := setupRepo(t)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mustLoad(t, dir)
}

// TestLoadDuringRotation loads in a loop while another goroutine rotates:
// every intermediate state of a rotation is a valid repository, so Load
// must never fail, and its primary must never go backwards.
func TestLoadDuringRotation(t *testing.T) {
	dir := setupRepo(t)
	const rotations = 50
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 4 {
		wg.Go(func() {
			last := 0
			for {
				select {
				case <-done:
					return
				default:
				}
				ks, err := Load(dir)
				if err != nil {
					errs <- err
					return
				}
				if ks.PrimaryIndex < last {
					errs <- errors.New("primary went backwards")
					return
				}
				last = ks.PrimaryIndex
				if len(ks.Keys) > DefaultMaxActiveKeys+1 {
					// Between promotion and purge a reader can see one
					// extra key; never more.
					errs <- errors.New("too many keys")
					return
				}
			}
		})
	}
	for range rotations {
		mustRotate(t, dir, DefaultMaxActiveKeys)
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if ks := mustLoad(t, dir); ks.PrimaryIndex != 1+rotations {
		t.Fatalf("primary = %d, want %d", ks.PrimaryIndex, 1+rotations)
	}
}

// TestConcurrentRotate checks the lock: concurrent rotations must each
// promote a distinct key, never overwrite one.
func TestConcurrentRotate(t *testing.T) {
	if !haveRepositoryLock {
		t.Skip("no flock on " + runtime.GOOS + "; concurrent rotation is unsupported")
	}
	dir := setupRepo(t)
	const workers, each = 4, 10
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				if err := Rotate(dir, DefaultMaxActiveKeys); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	indexes, _ := repoFiles(t, dir)
	last := 1 + workers*each
	if !slices.Equal(indexes, []int{0, last - 1, last}) {
		t.Fatalf("keys = %v, want [0 %d %d]", indexes, last-1, last)
	}
}
