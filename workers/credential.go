package workers

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
)

// Credential is the user an external worker runs as.
type Credential struct {
	// Name is the user's name, or its UID when it has none.
	Name string
	UID  uint32
	GID  uint32
	// Groups are the user's supplementary groups.
	Groups []uint32
	// Home is the user's home directory, the worker's HOME.
	Home string
}

// Settings are what a process's configuration says of its external
// workers, the same for an edge agent and the cloud manager.
type Settings struct {
	// User runs them: a user name, UID or UID:GID. Default: the process's
	// own user, or DefaultUser when that is root; never root.
	User string `json:"user,omitempty"`
	// PassEnv names variables of the process's environment that workers
	// get (beside PATH, LANG, LC_*, TZ and TMPDIR).
	PassEnv []string `json:"passEnv,omitempty"`
}

// DefaultUser is whom workers run as when the agent runs as root and no
// user is configured: never root itself. A dedicated user is better
// (`useradd --system sedna-worker`, then workers.user: sedna-worker).
const DefaultUser = "nobody"

// ErrRoot: a worker would run as root.
var ErrRoot = errors.New("workers: a worker never runs as root")

// RunAs resolves who external workers run as, for an agent whose
// configuration names spec ("" for the default): a user name, a UID, or
// UID:GID. An agent that runs as root runs its workers as spec, or as
// DefaultUser; one that does not can only run them as itself, and spec
// must then be empty or itself. Root is refused.
func RunAs(spec string) (*Credential, error) {
	if os.Geteuid() != 0 {
		self, err := lookup(strconv.Itoa(os.Geteuid()))
		if err != nil {
			return nil, err
		}
		if spec != "" {
			want, err := lookup(spec)
			if err != nil {
				return nil, err
			}
			if want.UID != self.UID {
				return nil, fmt.Errorf("workers: to run workers as %s (uid %d) the agent must run as root; it runs as uid %d", spec, want.UID, self.UID)
			}
		}
		return self, nil
	}
	if spec == "" {
		spec = DefaultUser
	}
	c, err := lookup(spec)
	if err != nil {
		return nil, err
	}
	if c.UID == 0 {
		return nil, fmt.Errorf("%w: workers.user %q is root", ErrRoot, spec)
	}
	return c, nil
}

// lookup resolves a user name, a UID, or UID:GID.
func lookup(spec string) (*Credential, error) {
	name, gidText, hasGID := strings.Cut(spec, ":")
	var u *user.User
	var err error
	if _, numErr := strconv.ParseUint(name, 10, 32); numErr == nil {
		u, err = user.LookupId(name)
		if err != nil {
			// A UID with no entry in the user database is still a user.
			u = &user.User{Uid: name, Gid: name, Username: name, HomeDir: "/"}
			err = nil
		}
	} else {
		u, err = user.Lookup(name)
	}
	if err != nil {
		return nil, fmt.Errorf("workers: user %q: %w", spec, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("workers: user %q has uid %q", spec, u.Uid)
	}
	if hasGID {
		u.Gid = gidText
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("workers: user %q: group %q is not a number", spec, u.Gid)
	}
	c := &Credential{Name: u.Username, UID: uint32(uid), GID: uint32(gid), Home: u.HomeDir}
	if !hasGID {
		if ids, err := u.GroupIds(); err == nil {
			for _, id := range ids {
				if g, err := strconv.ParseUint(id, 10, 32); err == nil && uint32(g) != c.GID {
					c.Groups = append(c.Groups, uint32(g))
				}
			}
		}
	}
	if c.Home == "" {
		c.Home = "/"
	}
	return c, nil
}

// passedEnv are the variables of the agent's own environment a worker
// gets; nothing else of it (the agent's credentials, say) reaches it.
var passedEnv = []string{"PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR"}

// baseEnv is the environment a worker starts from: the passed variables
// of the agent's, those named by extra, and HOME and USER of the user it
// runs as.
func baseEnv(c *Credential, extra []string) []string {
	var env []string
	for _, k := range append(append([]string{}, passedEnv...), extra...) {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	if _, ok := os.LookupEnv("PATH"); !ok {
		env = append(env, "PATH=/usr/local/bin:/usr/bin:/bin")
	}
	if c != nil {
		env = append(env, "HOME="+c.Home, "USER="+c.Name, "LOGNAME="+c.Name)
	}
	return env
}
