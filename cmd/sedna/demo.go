package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newDemoCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "demo",
		Short: "Run a cloud and two edge nodes through an outage and a restart, and count",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return errors.New("not yet")
		},
	}
}

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
