package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sedna-go/sedna/broker/access"
)

// rabbitUserFlags are the users the rabbitmq commands take, by role.
type rabbitUserFlags struct {
	credentials, cloudUser string
	nodes, operators       []string
	viewers                []string
	prefix                 string
	count, first           int
	rmq                    access.RabbitMQ
}

func (u *rabbitUserFlags) add(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&u.credentials, "credentials", "", "a Sedna credentials file: its users, by role")
	f.StringVar(&u.cloudUser, "cloud-user", "", "the cloud manager's RabbitMQ user (every right)")
	f.StringSliceVar(&u.nodes, "node", nil, "a node's user (its name), repeatable")
	f.StringVar(&u.prefix, "node-prefix", "", "with --nodes: nodes named PREFIX-0000 and up (as sedna sim hollow names them)")
	f.IntVar(&u.count, "nodes", 0, "with --node-prefix: how many nodes")
	f.IntVar(&u.first, "first", 0, "with --node-prefix: the number of the first node")
	f.StringSliceVar(&u.operators, "operator", nil, "an operator's user, repeatable")
	f.StringSliceVar(&u.viewers, "viewer", nil, "a viewer's user, repeatable")
	f.StringVar(&u.rmq.VHost, "vhost", "/", "the vhost of RabbitMQ's MQTT plugin (mqtt.vhost)")
	f.StringVar(&u.rmq.Exchange, "exchange", "amq.topic", "the exchange of RabbitMQ's MQTT plugin (mqtt.exchange)")
}

// rabbitUser is one user and the rabbitmqctl commands of its rights.
type rabbitUser struct {
	name, what string
	cmds       []access.RabbitMQCommand
}

// users lists the users the flags name, the cloud manager's first, each
// with its permissions.
func (u *rabbitUserFlags) users() ([]rabbitUser, error) {
	type entry struct {
		name string
		role access.UserRole
	}
	var es []entry
	if u.credentials != "" {
		c, err := access.LoadCredentials(u.credentials)
		if err != nil {
			return nil, err
		}
		for _, x := range c.Users {
			es = append(es, entry{x.Username, x.Role})
		}
	}
	for _, n := range u.nodes {
		es = append(es, entry{n, access.UserNode})
	}
	if (u.prefix == "") != (u.count <= 0) {
		return nil, errors.New("--node-prefix and --nodes go together")
	}
	for i := range u.count {
		es = append(es, entry{fmt.Sprintf("%s-%04d", u.prefix, u.first+i), access.UserNode})
	}
	for _, n := range u.operators {
		es = append(es, entry{n, access.UserOperator})
	}
	for _, n := range u.viewers {
		es = append(es, entry{n, access.UserViewer})
	}
	if len(es) == 0 && u.cloudUser == "" {
		return nil, errors.New("no users: give --credentials, --node, --node-prefix, --operator, --viewer or --cloud-user")
	}
	var out []rabbitUser
	if u.cloudUser != "" {
		out = append(out, rabbitUser{u.cloudUser, "the cloud manager", u.rmq.CloudPermissions(u.cloudUser)})
	}
	for _, e := range es {
		cmds, err := u.rmq.Permissions(e.name, e.role)
		if err != nil {
			return nil, err
		}
		out = append(out, rabbitUser{e.name, string(e.role), cmds})
	}
	return out, nil
}

func newRabbitMQCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rabbitmq",
		Short: "Set up a RabbitMQ cluster as the cloud broker",
	}
	var pf rabbitUserFlags
	perms := &cobra.Command{
		Use:   "permissions",
		Short: "Print the rabbitmqctl commands that authorize each user as the embedded broker would",
		Long: `Print the rabbitmqctl commands that give each user of a RabbitMQ cluster
serving as the cloud broker what the embedded broker gives it: a node writes
its own status, frames and acknowledgements and reads its own downlink (its
frames and the cloud's status requests) and broadcasts, nothing of another
node's (topic permissions with {username} expansion); an operator or admin
sends requests on its own topic, messages to nodes' app/ and kubeedge/
topics, labels and broadcasts, and reads all but other users' replies; a
viewer sends requests and reads; the cloud manager's user may do
everything.

The users come from a Sedna credentials file (their roles; the password
hashes are not RabbitMQ's) or from the flags. Create each user first, with
its password: rabbitmqctl add_user NAME, or all at once with sedna rabbitmq
users (docs/SCALE.md).`,
		Example: `  sedna rabbitmq permissions --credentials credentials.yaml --cloud-user cloud | sh
  sedna rabbitmq permissions --node edge1 --node edge.3 --operator ops`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			users, err := pf.users()
			if err != nil {
				return err
			}
			var lines []string
			for _, u := range users {
				lines = append(lines, fmt.Sprintf("# %s: %s", u.name, u.what))
				for _, c := range u.cmds {
					lines = append(lines, c.String())
				}
			}
			fmt.Fprintln(cmd.OutOrStdout(), strings.Join(lines, "\n"))
			return nil
		},
	}
	pf.add(perms)

	var uf rabbitUserFlags
	var passwordFile string
	users := &cobra.Command{
		Use:   "users",
		Short: "Print a RabbitMQ definitions file that adds users with their passwords and permissions",
		Long: `Print a RabbitMQ definitions file (JSON) that adds the users the flags name,
each with the password of --password-file (or SEDNA_PASSWORD) and the
permissions sedna rabbitmq permissions prints for its role, in one step:
rabbitmqctl import_definitions FILE. A thousand users take about a second
that way, where rabbitmqctl add_user takes about half a second each. The
passwords are hashed as RabbitMQ hashes them (salted SHA-256): keep the
file as a secret.`,
		Example: `  sedna rabbitmq users --cloud-user cloud --operator ops --node-prefix hollow --nodes 10000 --password-file pw > users.json
  rabbitmqctl import_definitions users.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pw, err := secretOf(passwordFile, "SEDNA_PASSWORD")
			if err != nil {
				return err
			}
			if pw == "" {
				return errors.New("no password: --password-file or SEDNA_PASSWORD")
			}
			list, err := uf.users()
			if err != nil {
				return err
			}
			us := make([]access.RabbitMQUser, len(list))
			for i, u := range list {
				us[i] = access.RabbitMQUser{Name: u.name, Password: pw, Permissions: u.cmds}
			}
			raw, err := access.RabbitMQDefinitions(us)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), string(raw))
			return err
		},
	}
	uf.add(users)
	users.Flags().StringVar(&passwordFile, "password-file", "", "the users' password (or env SEDNA_PASSWORD)")
	cmd.AddCommand(perms, users)
	return cmd
}
