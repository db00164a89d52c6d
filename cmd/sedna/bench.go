package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newBenchCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "bench",
		Short: "Benchmark the bridge and the broker side by side with mosquitto",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return errors.New("not yet")
		},
	}
}
