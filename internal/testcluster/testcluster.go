// Package testcluster starts the cloud tier's test cluster for tests:
// three RabbitMQ nodes (MQTT plugin, quorum queues) and three etcd
// members on loopback, through deploy/testcluster/cluster.sh, the script
// an operator uses by hand (docs/SCALE.md). Starting it takes about half a
// minute: a test package starts one and shares it.
package testcluster

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/sedna-go/sedna/broker/access"
)

// Cluster is a running test cluster.
type Cluster struct {
	// Dir holds its data, logs and Erlang cookie.
	Dir string
	// MQTT are the RabbitMQ nodes' MQTT listeners (tcp://127.0.0.1:port),
	// node 1 first.
	MQTT []string
	// AMQP are their AMQP listeners (amqp://127.0.0.1:port), node 1 first.
	AMQP []string
	// Etcd are the etcd members' client URLs, member 1 first.
	Etcd   []string
	script string
}

// Script is the path of deploy/testcluster/cluster.sh in this source tree.
func Script() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "deploy", "testcluster", "cluster.sh")
}

// Available says why the cluster cannot start on this machine (nil: it
// can): Debian's rabbitmq-server and etcd-server must be installed, as
// `make test` does.
func Available() error {
	var missing []string
	if _, err := os.Stat("/usr/lib/rabbitmq/bin/rabbitmq-server"); err != nil {
		missing = append(missing, "rabbitmq-server")
	}
	if _, err := exec.LookPath("etcd"); err != nil {
		missing = append(missing, "etcd-server")
	}
	if _, err := exec.LookPath("etcdctl"); err != nil {
		missing = append(missing, "etcd-client")
	}
	if len(missing) > 0 {
		return fmt.Errorf("testcluster: Debian packages %s are not installed (make deps installs them)", strings.Join(missing, ", "))
	}
	return nil
}

// Start starts a cluster whose state is kept in dir, on free loopback
// ports. Stop it with Stop.
func Start(dir string) (*Cluster, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	ports, err := freePorts(17)
	if err != nil {
		return nil, err
	}
	list := func(p []int) string {
		s := make([]string, len(p))
		for i, v := range p {
			s[i] = strconv.Itoa(v)
		}
		return strings.Join(s, " ")
	}
	c := &Cluster{Dir: dir, script: Script()}
	env := []string{
		"MQTT_PORTS=" + list(ports[0:3]), "AMQP_PORTS=" + list(ports[3:6]), "DIST_PORTS=" + list(ports[6:9]),
		"EPMD_PORT=" + strconv.Itoa(ports[9]), "ETCD_CLIENT_PORTS=" + list(ports[10:13]), "ETCD_PEER_PORTS=" + list(ports[13:16]),
	}
	out, err := c.run(env, "start", dir)
	if err != nil {
		_, _ = c.run(nil, "stop", dir)
		return nil, err
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		switch k {
		case "SEDNA_RABBITMQ_URLS":
			c.MQTT = strings.Split(v, ",")
		case "SEDNA_RABBITMQ_AMQP":
			c.AMQP = strings.Split(v, ",")
		case "SEDNA_ETCD_ENDPOINTS":
			c.Etcd = strings.Split(v, ",")
		}
	}
	if len(c.MQTT) != 3 || len(c.AMQP) != 3 || len(c.Etcd) != 3 {
		_, _ = c.run(nil, "stop", dir)
		return nil, fmt.Errorf("testcluster: cluster.sh start printed no URLs:\n%s", out)
	}
	return c, nil
}

// freePorts returns n ports free on 127.0.0.1 now.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			_ = l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func (c *Cluster) run(env []string, args ...string) ([]byte, error) {
	cmd := exec.Command("bash", append([]string{c.script}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("testcluster: cluster.sh %s: %w\n%s%s", strings.Join(args, " "), err, out.Bytes(), errb.Bytes())
	}
	return out.Bytes(), nil
}

// Stop stops every node and member (gracefully) and their epmd.
func (c *Cluster) Stop() error {
	_, err := c.run(nil, "stop", c.Dir)
	return err
}

// URLs is MQTT as one comma-separated list, the form a bridge's and the
// cloud's broker URL take.
func (c *Cluster) URLs() string { return strings.Join(c.MQTT, ",") }

// KillRabbit kills RabbitMQ node n (1..3) with SIGKILL.
func (c *Cluster) KillRabbit(n int) error {
	_, err := c.run(nil, "kill-rabbit", c.Dir, strconv.Itoa(n))
	return err
}

// StartRabbit starts RabbitMQ node n again and waits until it serves.
func (c *Cluster) StartRabbit(n int) error {
	_, err := c.run(nil, "start-rabbit", c.Dir, strconv.Itoa(n))
	return err
}

// KillEtcd kills etcd member n (1..3) with SIGKILL.
func (c *Cluster) KillEtcd(n int) error {
	_, err := c.run(nil, "kill-etcd", c.Dir, strconv.Itoa(n))
	return err
}

// StartEtcd starts etcd member n again and waits until it is healthy.
func (c *Cluster) StartEtcd(n int) error {
	_, err := c.run(nil, "start-etcd", c.Dir, strconv.Itoa(n))
	return err
}

// AddUser adds a RabbitMQ user with every right on the default vhost (and
// tag, e.g. "administrator", if not empty).
func (c *Cluster) AddUser(name, password, tag string) error {
	_, err := c.run(nil, "user", c.Dir, name, password, tag)
	return err
}

// Ctl runs rabbitmqctl against node n (1..3, as KillRabbit) and returns
// its output.
func (c *Cluster) Ctl(n int, args ...string) (string, error) {
	out, err := c.run(nil, append([]string{"ctl", c.Dir, strconv.Itoa(n)}, args...)...)
	return string(out), err
}

// User is a RabbitMQ user to import: its name, password, and the
// rabbitmqctl commands of its permissions (set_permissions and
// set_topic_permissions, as access.RabbitMQ makes them; nil: every right).
type User struct {
	Name, Password string
	Permissions    [][]string
}

// ImportUsers adds many users at once, through one definitions file
// (rabbitmqctl import_definitions): a thousand users take a second, where
// one rabbitmqctl call per user takes about half a second each.
func (c *Cluster) ImportUsers(users []User) error {
	us := make([]access.RabbitMQUser, len(users))
	for i, u := range users {
		us[i] = access.RabbitMQUser{Name: u.Name, Password: u.Password}
		for _, p := range u.Permissions {
			us[i].Permissions = append(us[i].Permissions, access.RabbitMQCommand(p))
		}
	}
	raw, err := access.RabbitMQDefinitions(us)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(c.Dir, "definitions-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(raw); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	_, err = c.Ctl(1, "import_definitions", f.Name())
	return err
}
