package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sedna-go/sedna/broker/access"
)

func newRabbitMQCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rabbitmq",
		Short: "Set up a RabbitMQ cluster as the cloud broker",
	}
	var (
		credentials, cloudUser string
		nodes, operators       []string
		viewers                []string
		rmq                    access.RabbitMQ
	)
	perms := &cobra.Command{
		Use:   "permissions",
		Short: "Print the rabbitmqctl commands that authorize each user as the embedded broker would",
		Long: `Print the rabbitmqctl commands that give each user of a RabbitMQ cluster
serving as the cloud broker what the embedded broker gives it: a node writes
its own status, frames and acknowledgements and reads its own downlink and
broadcasts, nothing of another node's (topic permissions with {username}
expansion); an operator or admin sends requests on its own topic, messages
to nodes' app/ and kubeedge/ topics, labels and broadcasts, and reads all
but other users' replies; a viewer sends requests and reads; the cloud
manager's user may do everything.

The users come from a Sedna credentials file (their roles; the password
hashes are not RabbitMQ's) or from the flags. Create each user first, with
its password: rabbitmqctl add_user NAME (docs/SCALE.md).`,
		Example: `  sedna rabbitmq permissions --credentials credentials.yaml --cloud-user cloud | sh
  sedna rabbitmq permissions --node edge1 --node edge.3 --operator ops`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			type entry struct {
				name string
				role access.UserRole
			}
			var users []entry
			if credentials != "" {
				c, err := access.LoadCredentials(credentials)
				if err != nil {
					return err
				}
				for _, u := range c.Users {
					users = append(users, entry{u.Username, u.Role})
				}
			}
			for _, n := range nodes {
				users = append(users, entry{n, access.UserNode})
			}
			for _, n := range operators {
				users = append(users, entry{n, access.UserOperator})
			}
			for _, n := range viewers {
				users = append(users, entry{n, access.UserViewer})
			}
			if len(users) == 0 && cloudUser == "" {
				return errors.New("no users: give --credentials, --node, --operator, --viewer or --cloud-user")
			}
			var lines []string
			if cloudUser != "" {
				lines = append(lines, "# "+cloudUser+": the cloud manager")
				for _, c := range rmq.CloudPermissions(cloudUser) {
					lines = append(lines, c.String())
				}
			}
			for _, u := range users {
				cmds, err := rmq.Permissions(u.name, u.role)
				if err != nil {
					return err
				}
				lines = append(lines, fmt.Sprintf("# %s: %s", u.name, u.role))
				for _, c := range cmds {
					lines = append(lines, c.String())
				}
			}
			fmt.Fprintln(cmd.OutOrStdout(), strings.Join(lines, "\n"))
			return nil
		},
	}
	f := perms.Flags()
	f.StringVar(&credentials, "credentials", "", "a Sedna credentials file: its users, by role")
	f.StringVar(&cloudUser, "cloud-user", "", "the cloud manager's RabbitMQ user (every right)")
	f.StringSliceVar(&nodes, "node", nil, "a node's user (its name), repeatable")
	f.StringSliceVar(&operators, "operator", nil, "an operator's user, repeatable")
	f.StringSliceVar(&viewers, "viewer", nil, "a viewer's user, repeatable")
	f.StringVar(&rmq.VHost, "vhost", "/", "the vhost of RabbitMQ's MQTT plugin (mqtt.vhost)")
	f.StringVar(&rmq.Exchange, "exchange", "amq.topic", "the exchange of RabbitMQ's MQTT plugin (mqtt.exchange)")
	cmd.AddCommand(perms)
	return cmd
}
