package replay

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/castle-destination/castle-destination/mapping"
)

// usersSaveEvery is how often the running replay saves its user cache
// beside the checkpoint (it saves it on an interrupt too).
const usersSaveEvery = time.Minute

// usersPath is where the user cache of the replay whose checkpoint is at
// checkpoint is kept ("" without a checkpoint).
func usersPath(checkpoint string) string {
	if checkpoint == "" {
		return ""
	}
	return checkpoint + ".users"
}

// usersFile keeps a replay's user cache beside its checkpoint. A nil path
// or cache makes every method do nothing.
type usersFile struct {
	path  string
	users *mapping.Users
	mu    sync.Mutex
	saved time.Time
}

func (f *usersFile) off() bool { return f == nil || f.path == "" || f.users == nil }

// load fills the cache from the file, if there is one; a file that cannot
// be read is logged and ignored: the replay goes on without it.
func (f *usersFile) load(log *zap.Logger) {
	if f.off() {
		return
	}
	r, err := os.Open(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	if err == nil {
		err = f.users.Load(r)
		r.Close()
	}
	if err != nil {
		log.Warn("the user cache saved beside the checkpoint cannot be read: resuming without what earlier identify messages said",
			zap.String("file", f.path), zap.Error(err))
		return
	}
	log.Info("resuming with the users earlier identify messages set", zap.String("file", f.path), zap.Int("users", f.users.Len()))
}

// save writes the cache atomically, as the checkpoint is written.
func (f *usersFile) save() error {
	if f.off() {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.saved = time.Now()
	if err := writeAtomic(f.path, f.users.Save); err != nil {
		return fmt.Errorf("user cache: %w", err)
	}
	return nil
}

// remove deletes the file: the replay is done, or a new one starts.
func (f *usersFile) remove() {
	if f == nil || f.path == "" {
		return
	}
	_ = os.Remove(f.path)
}

// due reports whether the periodic save is due.
func (f *usersFile) due() bool {
	if f.off() {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return time.Since(f.saved) >= usersSaveEvery
}
